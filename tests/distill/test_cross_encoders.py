"""Cross-encoder training on sentence-transformers' trainer, on a tiny model: it learns what it is shown."""

import copy

import numpy as np
import torch

from manga_distill_assets.distill.artifacts import load_model, save_model
from manga_distill_assets.distill.cross_encoders import (
    LONGEST_PAIR,
    RerankTraining,
    encode_pairs,
    match_teacher_layers,
    pair_length,
    pair_scores,
    train_student_reranker,
    train_teacher_reranker,
)
from manga_distill_assets.distill.intermediate import IntermediateLoss
from manga_distill_assets.distill.layer_match import uniform_layer_map
from manga_distill_assets.distill.training import TrainingConfig
from manga_distill_assets.distill.training.data import encode
from tests.distill.tiny import tiny_teacher, tiny_tokenizer

QUERIES = ["where is my order", "any good romance series", "how do i get a refund"]
RELEVANT = ["track my order please", "a fun comedy to read tonight", "refund my order please"]


def pairs():
    queries, docs, grades = [], [], []
    for i, query in enumerate(QUERIES):
        for j, doc in enumerate(RELEVANT):
            queries.append(query)
            docs.append(doc)
            grades.append(3 if i == j else 0)
    return queries, docs, grades


def test_the_teacher_learns_to_score_graded_pairs_in_order(tmp_path):
    queries, docs, grades = pairs()
    settings = RerankTraining(epochs=100, learning_rate=3e-3, batch_size=9, max_length=32, warmup_ratio=0.0)
    result = train_teacher_reranker(
        tiny_teacher(num_labels=1), tiny_tokenizer(tmp_path), queries, docs, grades, settings, tmp_path / "t"
    )
    scores = pair_scores(result.model, result.tokenizer, queries, docs).reshape(3, 3)
    assert (scores.argmax(axis=1) == np.arange(3)).all()
    assert result.steps == 100


def test_the_student_learns_the_teachers_margins(tmp_path):
    queries = QUERIES
    lists = [[RELEVANT[i], *[doc for j, doc in enumerate(RELEVANT) if j != i]] for i in range(3)]
    teacher = [[4.0, -2.0, -3.0]] * 3
    settings = RerankTraining(epochs=100, learning_rate=3e-3, batch_size=3, max_length=32, warmup_ratio=0.0)
    result = train_student_reranker(
        tiny_teacher(num_labels=1, layers=2),
        tiny_tokenizer(tmp_path),
        queries,
        lists,
        teacher,
        settings,
        tmp_path / "s",
        listwise_weight=0.5,
        temperature=2.0,
    )
    for query, docs in zip(queries, lists, strict=True):
        scores = pair_scores(result.model, result.tokenizer, [query] * 3, docs)
        assert scores.argmax() == 0


def matching_loss(student, teacher, projections, tokenizer, queries, docs) -> float:
    """The intermediate loss of `student` on the pairs, through `projections`, computed here from the two
    models' outputs on `encode_pairs` batches."""
    loss = IntermediateLoss(uniform_layer_map(2, 4), 32, 32, 2, 4)
    loss.projections.load_state_dict(projections.state_dict())
    batch = encode_pairs(tokenizer, queries, docs, max_length=32)
    with torch.no_grad():
        outputs = [
            model(**batch, output_hidden_states=True, output_attentions=True) for model in (student, teacher)
        ]
        return float(loss(*outputs, batch["attention_mask"])["loss"])


def test_training_rows_of_pairs_hold_both_segments_cut_as_encode_pairs_cuts_them(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    query, doc = "where is my order", "track my order please " * 20
    (row,) = encode(tokenizer, [(query, doc)], max_length=16)
    expected = encode_pairs(tokenizer, [query], [doc], max_length=16)
    assert row["input_ids"] == expected["input_ids"][0].tolist()
    assert row["token_type_ids"] == expected["token_type_ids"][0].tolist()
    assert 0 in row["token_type_ids"] and 1 in row["token_type_ids"]


def test_layer_matching_on_pairs_brings_the_students_states_to_the_teachers(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    teacher = tiny_teacher(num_labels=1)
    student = tiny_teacher(num_labels=1, layers=2, hidden=32, heads=2, seed=1)
    before = copy.deepcopy(student)
    queries, docs, _ = pairs()
    config = TrainingConfig(
        tmp_path / "m", epochs=40, learning_rate=3e-3, batch_size=9, max_length=32, warmup_ratio=0.0
    )
    result = match_teacher_layers(student, teacher, tokenizer, queries, docs, config)
    trained = matching_loss(result.model, teacher, result.projections, tokenizer, queries, docs)
    untrained = matching_loss(before, teacher, result.projections, tokenizer, queries, docs)
    assert trained < 0.5 * untrained
    assert result.optimizer_steps == 40


def test_layer_matching_trains_the_student_without_dropout_and_gives_its_rates_back(tmp_path):
    student = tiny_teacher(num_labels=1, layers=2, seed=1)
    rates_seen: list[tuple[bool, float]] = []
    for module in student.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.3
            module.register_forward_hook(lambda m, _i, _o: rates_seen.append((m.training, m.p)))
    queries, docs, _ = pairs()
    config = TrainingConfig(tmp_path / "m", epochs=1, learning_rate=1e-3, batch_size=9, max_length=32)
    match_teacher_layers(student, tiny_teacher(num_labels=1), tiny_tokenizer(tmp_path), queries, docs, config)
    assert rates_seen and all(training for training, _ in rates_seen)
    assert {rate for _, rate in rates_seen} == {0.0}
    assert {m.p for m in student.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}


def test_pairs_are_cut_from_the_longer_side_so_a_short_query_stays_whole(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    short = encode_pairs(tokenizer, ["where is my order"], ["track my order please " * 20], max_length=16)
    query_ids = tokenizer("where is my order", add_special_tokens=False)["input_ids"]
    assert short["input_ids"].shape[1] == 16
    assert short["input_ids"][0, 1 : 1 + len(query_ids)].tolist() == query_ids


def test_a_query_longer_than_the_pair_limit_is_cut_rather_than_refused(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    encoded = encode_pairs(tokenizer, ["where is my order " * 20], ["refund"], max_length=16)
    assert encoded["input_ids"].shape[1] == 16


def test_a_trained_model_is_scored_on_pairs_cut_at_its_training_length_after_a_save(tmp_path):
    queries, docs, grades = pairs()
    settings = RerankTraining(epochs=1, batch_size=9, max_length=12)
    result = train_teacher_reranker(
        tiny_teacher(num_labels=1), tiny_tokenizer(tmp_path), queries, docs, grades, settings, tmp_path / "t"
    )
    _, tokenizer = load_model(save_model(result.model, result.tokenizer, tmp_path / "saved"))
    encoded = encode_pairs(tokenizer, ["where is my order"], ["track my order please " * 20])
    assert encoded["input_ids"].shape[1] == 12


def test_a_tokenizer_without_a_length_is_capped_at_the_longest_pair(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    tokenizer.model_max_length = int(1e30)  # what transformers holds when a tokenizer names no length
    assert pair_length(tokenizer) == LONGEST_PAIR


def test_min_steps_goes_round_a_small_set_again(tmp_path):
    queries, docs, grades = pairs()  # 9 pairs: 3 steps an epoch at batch 3
    settings = RerankTraining(epochs=1, batch_size=3, max_length=32, min_steps=7)
    model, tokenizer = tiny_teacher(num_labels=1), tiny_tokenizer(tmp_path)
    result = train_teacher_reranker(model, tokenizer, queries, docs, grades, settings, tmp_path / "run")
    assert result.steps == 7


def test_min_steps_never_shortens_what_the_epochs_give():
    assert RerankTraining(epochs=3, batch_size=3, min_steps=7).max_steps(rows=9) == -1  # 9 steps
    assert RerankTraining(epochs=3, batch_size=3, min_steps=10).max_steps(rows=9) == 10


def test_a_reranker_trained_in_bf16_comes_back_scoring_in_fp32_like_its_stored_weights(tmp_path):
    queries, docs, grades = pairs()
    settings = RerankTraining(epochs=1, batch_size=3, max_length=32, precision="bf16")
    result = train_teacher_reranker(
        tiny_teacher(num_labels=1), tiny_tokenizer(tmp_path), queries, docs, grades, settings, tmp_path / "t"
    )
    stored, _ = load_model(save_model(result.model, result.tokenizer, tmp_path / "saved"))

    encoded = encode_pairs(result.tokenizer, queries, docs)
    with torch.no_grad():
        returned, reloaded = result.model.eval()(**encoded).logits, stored.eval()(**encoded).logits
    assert returned.dtype == torch.float32
    assert torch.allclose(returned, reloaded, atol=1e-6)


def test_precision_reaches_the_trainer_the_same_run_in_bf16_and_fp32_trains_different_weights(tmp_path):
    queries, docs, grades = pairs()
    trained = {}
    for precision in ("fp32", "bf16"):
        settings = RerankTraining(epochs=3, batch_size=3, max_length=32, precision=precision)
        result = train_teacher_reranker(
            tiny_teacher(num_labels=1),
            tiny_tokenizer(tmp_path),
            queries,
            docs,
            grades,
            settings,
            tmp_path / precision,
        )
        trained[precision] = pair_scores(result.model, result.tokenizer, queries, docs)
    assert not np.allclose(trained["fp32"], trained["bf16"], atol=1e-4)
