"""The reranker group materialised for real with the smoke preset: report, parity, cache, user file."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from transformers import BertConfig, DistilBertConfig, DistilBertForSequenceClassification

from manga_distill_assets.assets.reranker import models
from manga_distill_assets.assets.reranker.config import PrunedWidth, RerankTeacherConfig
from manga_distill_assets.assets.reranker.serving import gate_problems
from manga_distill_assets.definitions import defs
from manga_distill_assets.distill.artifacts import save_model
from manga_distill_assets.distill.training.config import resolve_precision
from manga_distill_assets.presets import smoke_run_config
from manga_distill_assets.resources.rerank_source import RerankPairsSource
from tests.assets.harness import Graph, recent_days, write_day
from tests.distill.tiny import TINY_VOCAB, tiny_teacher, tiny_tokenizer

RERANKER_ASSETS = (
    "rerank_queries",
    "reranker_teacher",
    "teacher_rerank_scores",
    "reranker_student",
    "reranker_onnx",
    "reranker_eval",
)


def materialize(graph: Graph, *keys: str):
    smoke = smoke_run_config().ops
    return dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets(*keys),
        instance=graph.instance,
        resources=graph.resources,
        run_config=dg.RunConfig(ops={key: smoke[key] for key in keys if key in smoke}),
    )


def land(graph: Graph, day: str, texts: list[str]) -> None:
    """Land `day` and rebuild the latest 30-day window (the partition the reranker reads)."""
    write_day(graph.log_root, day, texts)
    graph.materialize("raw_queries", partition_key=day)
    graph.materialize("unlabeled_queries", partition_key=recent_days(1)[0])


def read_from(graph: Graph, path: Path, rows: list[tuple]) -> None:
    """Write `rows` (query_id, query, doc_id, doc, grade, split) to the CSV at `path` and point the graph's
    `rerank_source` at it."""
    pd.DataFrame(rows, columns=["query_id", "query", "doc_id", "doc", "grade", "split"]).to_csv(
        path, index=False
    )
    graph.resources["rerank_source"] = RerankPairsSource(path=str(path))
    graph.rebuild()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    graph = Graph(tmp_path_factory.mktemp("reranker"))
    first, second = recent_days(2)
    graph.materialize("labeled_intents")
    land(graph, first, ["jjk box set", "berserk deluxe hardcover", "where is my order"])
    result = materialize(graph, *RERANKER_ASSETS)
    return graph, result, second


def test_eval_reports_bm25_teacher_student_and_int8_with_retention_and_speed_up(built):
    _, result, _ = built
    report = result.output_for_node("reranker_eval")
    assert set(report) >= {"bm25", "teacher", "student", "student_onnx_int8"}
    for name in ("bm25", "teacher", "student", "student_onnx_int8"):
        assert 0.0 <= report[name]["ndcg_at_3"] <= 1.0
        assert set(report[name]) >= {"ndcg_at_10", "mrr_at_10", "retention_ndcg_at_3"}
    teacher, int8 = report["teacher"], report["student_onnx_int8"]
    assert int8["retention_ndcg_at_3"] == pytest.approx(int8["ndcg_at_3"] / teacher["ndcg_at_3"])
    assert int8["speedup_p50"] == pytest.approx(
        teacher["latency_ms"]["p50_ms"] / int8["latency_ms"]["p50_ms"]
    )
    assert report["student"]["params"] < teacher["params"]
    assert report["candidates"] == 8
    assert int8["parity"]["passed"] and int8["parity"]["matmuls_kept_fp32"] >= 0


def test_the_student_keeps_four_teacher_layers_at_the_width_asked_and_a_pruned_vocabulary(built):
    graph, _, _ = built
    metadata = graph.metadata("reranker_student")
    assert (metadata["layers"], metadata["hidden_size"]) == (4, 192)
    assert (metadata["attention_heads"], metadata["intermediate_size"]) == (6, 768)
    assert metadata["vocabulary"] < metadata["vocabulary_before"]
    assert metadata["parameters"] < graph.metadata("reranker_teacher")["parameters"]


def test_the_student_matches_the_teachers_layers_on_the_transfer_pairs_when_asked(built):
    graph, _, _ = built
    metadata = graph.metadata("reranker_student")
    assert metadata["layer_matching_steps"] > 0
    assert metadata["layer_matching_loss"] > 0


def test_teacher_and_student_record_the_precision_they_trained_in(built):
    graph, _, _ = built
    expected = resolve_precision("auto")
    assert graph.metadata("reranker_teacher")["precision"] == expected
    assert graph.metadata("reranker_student")["precision"] == expected


def test_the_gate_fails_an_int8_graph_below_the_parity_floors_and_says_to_serve_the_pytorch_student():
    ranks_like_pytorch = {"retention_ndcg_at_3": 0.97, "parity": {"passed": True}}
    ranks_unlike = {
        "retention_ndcg_at_3": 0.97,
        "parity": {"passed": False, "top3_agreement": 0.86, "kendall_tau": 0.89},
    }
    assert gate_problems(ranks_like_pytorch, retention_floor=0.95) == []
    (problem,) = gate_problems(ranks_unlike, retention_floor=0.95)
    assert "must not be served" in problem and "86.0%" in problem and "Serve the PyTorch student" in problem
    assert len(gate_problems({**ranks_unlike, "retention_ndcg_at_3": 0.9}, retention_floor=0.95)) == 2


def test_onnx_parity_reports_top3_agreement_and_kendall_tau_for_both_graphs(built):
    _, result, _ = built
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "reranker_onnx_parity"]
    assert check.passed
    for variant in ("fp32", "int8"):
        assert 0.0 <= check.metadata[f"{variant}_top3_agreement"].value <= 1.0
        assert -1.0 <= check.metadata[f"{variant}_kendall_tau"].value <= 1.0
    assert check.metadata["fp32_kendall_tau"].value > 0.99


def requested(graph: Graph) -> set[str]:
    """The reranker assets one automation tick would request now."""
    result = dg.evaluate_automation_conditions(defs=graph.defs, instance=graph.instance)
    return {key for key in RERANKER_ASSETS if result.get_num_requested(dg.AssetKey(key))}


def test_the_group_reads_the_pairs_the_teacher_the_query_log_and_the_general_student():
    graph = defs.resolve_asset_graph()

    def parents(key: str) -> set[str]:
        return {parent.to_user_string() for parent in graph.get(dg.AssetKey(key)).parent_keys}

    assert parents("teacher_rerank_scores") == {"reranker_teacher", "rerank_queries", "unlabeled_queries"}
    assert parents("reranker_student") == {
        "reranker_teacher",
        "teacher_rerank_scores",
        "rerank_queries",
        "general_student",
    }
    assert parents("reranker_eval") == {
        "rerank_queries",
        "reranker_teacher",
        "reranker_student",
        "reranker_onnx",
    }


def test_a_settled_group_requests_nothing(built):
    graph, _, _ = built
    assert requested(graph) == set()


def test_scores_come_from_the_cache_and_a_new_day_scores_only_its_new_pairs(built):
    graph, _, second = built
    before = graph.metadata("teacher_rerank_scores")
    materialize(graph, "teacher_rerank_scores")
    again = graph.metadata("teacher_rerank_scores")
    assert again["scored"] == 0 and again["cached"] == before["pairs"]
    assert requested(graph) == set()
    land(graph, second, ["chainsaw man omnibus"])
    assert requested(graph) == {"teacher_rerank_scores"}
    materialize(graph, "teacher_rerank_scores")
    assert requested(graph) == {"reranker_student"}
    after = graph.metadata("teacher_rerank_scores")
    assert after["queries_log"] == before["queries_log"] + 1
    assert after["scored"] == after["pairs"] - before["pairs"] > 0


def test_unchanged_content_keeps_the_pairs_data_version(built):
    graph, _, _ = built
    version = graph.data_version("rerank_queries")
    materialize(graph, "rerank_queries")
    assert graph.data_version("rerank_queries") == version


def test_a_user_file_is_loaded_its_unrankable_queries_counted_and_a_bad_one_refused(tmp_path):
    graph = Graph(tmp_path)
    rows = [
        ("q1", "jjk box set", "d1", "Jujutsu Kaisen box set", 3, "train"),
        ("q1", "jjk box set", "d2", "One Piece paperback", 0, "train"),
        ("q2", "horror manga", "d2", "One Piece paperback", 1, "test"),
        ("q2", "horror manga", "d3", "Uzumaki, horror manga by Junji Ito", 2, "test"),
    ]
    unrankable = [("q3", "romance", "d1", "Jujutsu Kaisen box set", 0, "train")]
    read_from(graph, tmp_path / "good.csv", [*rows, *unrankable])
    frame = graph.materialize("rerank_queries").output_for_node("rerank_queries")
    assert len(frame) == 4 and {"bm25_score", "bm25_rank"} <= set(frame.columns)
    assert frame.loc[frame["doc_id"] == "d3", "bm25_rank"].item() == 0
    assert graph.metadata("rerank_queries")["skipped"]["queries_with_one_candidate"] == 1
    read_from(graph, tmp_path / "bad.csv", [*rows, rows[0]])
    result = graph.materialize("rerank_queries", raise_on_error=False)
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "appears more than once" in failure.step_failure_data.error.message


def test_a_file_of_binary_judgements_trains_the_teacher_towards_1_for_its_relevant_pairs(tmp_path):
    graph = Graph(tmp_path)
    rows = [
        (f"q{i}", query, doc_id, doc, int(doc_id == relevant), split)
        for i, (query, relevant, split) in enumerate(
            [("jjk box set", "d1", "train"), ("horror manga", "d2", "train"), ("uzumaki", "d2", "validation")]
        )
        for doc_id, doc in [("d1", "Jujutsu Kaisen box set"), ("d2", "Uzumaki, horror manga by Junji Ito")]
    ]
    read_from(graph, tmp_path / "clicks.csv", rows)
    materialize(graph, "rerank_queries", "reranker_teacher")
    assert graph.metadata("reranker_teacher")["target_top_grade"] == 1


def test_a_file_without_train_rows_stops_the_teacher_saying_what_to_give_it(tmp_path):
    graph = Graph(tmp_path)
    rows = [
        (f"q{i}", query, doc_id, doc, grade, split)
        for i, (query, split) in enumerate([("jjk box set", "validation"), ("horror manga", "test")])
        for doc_id, doc, grade in [("d1", "Jujutsu Kaisen box set", 3 - i), ("d2", "Uzumaki", 1 + i)]
    ]
    read_from(graph, tmp_path / "no_train.csv", rows)
    graph.materialize("rerank_queries")
    result = graph.materialize("reranker_teacher", raise_on_error=False)
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "no train rows" in failure.step_failure_data.user_failure_data.description
    assert "registered_cross_encoder" in failure.step_failure_data.user_failure_data.description


def test_a_registered_cross_encoder_is_used_as_is_and_a_classifier_is_refused(tmp_path):
    graph = Graph(tmp_path)
    rows = [
        (f"q{i}", query, doc_id, doc, grade, split)
        for i, (query, split) in enumerate([("jjk box set", "train"), ("horror manga", "validation")])
        for doc_id, doc, grade in [
            ("d1", "Jujutsu Kaisen box set", 3 - i),
            ("d2", "Uzumaki horror manga", 1 + i),
        ]
    ]
    read_from(graph, tmp_path / "pairs.csv", rows)
    graph.materialize("rerank_queries")
    tokenizer = tiny_tokenizer(tmp_path)
    for outputs, succeeds in ((1, True), (3, False)):
        folder = save_model(
            tiny_teacher(num_labels=outputs), tokenizer, tmp_path / f"cross_encoder_{outputs}"
        )
        result = dg.materialize(
            list(graph.defs.assets),
            selection=dg.AssetSelection.assets("reranker_teacher"),
            instance=graph.instance,
            resources=graph.resources,
            run_config=dg.RunConfig(
                ops={"reranker_teacher": RerankTeacherConfig(registered_cross_encoder=str(folder))}
            ),
            raise_on_error=False,
        )
        assert result.success is succeeds
    assert graph.metadata("reranker_teacher")["registered"] is True
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "has 3 outputs" in failure.step_failure_data.error.message


def _student_of_registered(tmp_path: Path, teacher, width: PrunedWidth):
    """`reranker_student` at `width` on a two-query user file, distilled from `teacher` registered as is."""
    graph = Graph(tmp_path)
    rows = [
        (f"q{i}", query, doc_id, doc, grade, split)
        for i, (query, split) in enumerate([("jjk box set", "train"), ("horror manga", "validation")])
        for doc_id, doc, grade in [("d1", "Jujutsu Kaisen box set", 3), ("d2", "Uzumaki horror manga", 1)]
    ]
    read_from(graph, tmp_path / "pairs.csv", rows)
    graph.materialize("labeled_intents")
    land(graph, recent_days(1)[0], ["jjk box set"])
    folder = save_model(teacher, tiny_tokenizer(tmp_path), tmp_path / "cross_encoder")
    student = (
        smoke_run_config()
        .ops["reranker_student"]
        .model_copy(update={"width": width, "teacher_layers": [0, 2]})
    )
    result = dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets(*RERANKER_ASSETS[:4]),
        instance=graph.instance,
        resources=graph.resources,
        run_config=dg.RunConfig(
            ops={
                "reranker_teacher": RerankTeacherConfig(registered_cross_encoder=str(folder)),
                "reranker_student": student,
            }
        ),
        raise_on_error=False,
    )
    return graph, result


def test_a_width_of_part_of_a_head_fails_the_student_naming_the_knob(tmp_path):
    _, result = _student_of_registered(
        tmp_path,
        tiny_teacher(num_labels=1),
        PrunedWidth(hidden_size=12),  # heads 8 wide
    )
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    assert "multiple of 8" in description and "width" in description


def test_a_teacher_without_bert_layout_keeps_its_width_and_says_so(tmp_path):
    config = DistilBertConfig(
        vocab_size=len(TINY_VOCAB), dim=32, n_layers=4, n_heads=4, hidden_dim=64, num_labels=1
    )
    teacher = DistilBertForSequenceClassification(config).eval()
    graph, result = _student_of_registered(tmp_path, teacher, PrunedWidth())
    assert result.success
    metadata = graph.metadata("reranker_student")
    assert metadata["hidden_size"] == 32
    assert "DistilBertForSequenceClassification" in metadata["width_not_pruned"]


def test_a_pruned_student_under_the_fallback_floor_is_trained_again_at_the_teachers_width(
    tmp_path, monkeypatch
):
    measured = models.validation_ndcg_at_3

    def pruned_ranks_nothing(model, tokenizer, rerank_queries) -> float:
        return 0.0 if model.config.hidden_size < 32 else measured(model, tokenizer, rerank_queries)

    monkeypatch.setattr(models, "validation_ndcg_at_3", pruned_ranks_nothing)
    graph, result = _student_of_registered(tmp_path, tiny_teacher(num_labels=1), PrunedWidth())
    assert result.success
    metadata = graph.metadata("reranker_student")
    teacher = graph.metadata("reranker_teacher")
    assert metadata["pruned_validation_ndcg_at_3"] < teacher["validation_ndcg_at_3"]
    assert "trained again at the teacher's width" in metadata["width_fell_back"]
    assert metadata["width_pruned"] is False
    assert (metadata["hidden_size"], metadata["attention_heads"]) == (32, 4)


def test_the_default_width_is_half_the_teachers_heads_and_units():
    minilm = BertConfig(hidden_size=384, num_attention_heads=12, intermediate_size=1536)
    assert PrunedWidth().sizes(minilm) == (192, 768)
    assert PrunedWidth(share=0.4).sizes(minilm) == (4 * 32, 614)  # 4.8 heads: 4 divides 12, 5 does not
    assert PrunedWidth(share=0.01).sizes(minilm) == (32, 15)  # never under one head
    assert PrunedWidth(hidden_size=256).sizes(minilm) == (256, 768)
    assert not PrunedWidth(share=1).prunes(minilm)
