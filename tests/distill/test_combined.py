"""Single-stage distillation on tiny models: every term at once, from the initial student."""

import numpy as np
import pytest
import torch

from manga_distill_assets.distill.layer_match import uniform_layer_map
from manga_distill_assets.distill.losses import OutputDistillation
from manga_distill_assets.distill.training import TrainingConfig, train_combined
from tests.distill.tiny import TINY_LABELS, TINY_TEXTS, tiny_teacher, tiny_tokenizer

TEXTS = list(TINY_TEXTS)
# Every third row has no hard label, like an unlabeled query.
LABELS = [-100 if row % 3 == 2 else label for row, label in enumerate(TINY_LABELS)]
TEACHER_LOGITS = (np.eye(3, dtype=np.float32) * 4.0)[list(TINY_LABELS)]


@pytest.fixture(autouse=True)
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def config(tmp_path, name: str, seed: int = 0) -> TrainingConfig:
    return TrainingConfig(
        output_dir=tmp_path / name,
        epochs=1,
        batch_size=6,
        learning_rate=2e-3,
        warmup_ratio=0.0,
        checkpoint_every=0,
        log_every=1,
        seed=seed,
    )


def combined(tmp_path, name: str = "run", seed: int = 0, events: list | None = None, alpha: float = 0.7):
    student = tiny_teacher(layers=2, hidden=32, heads=2, seed=1)
    return train_combined(
        student,
        tiny_teacher(),
        tiny_tokenizer(tmp_path),
        TEXTS,
        TEACHER_LOGITS,
        LABELS,
        uniform_layer_map(2, 4),
        config(tmp_path, name, seed),
        output=OutputDistillation(alpha=alpha),
        progress=None if events is None else events.append,
    )


def test_the_loss_is_the_intermediate_terms_plus_the_weighted_output_terms(tmp_path):
    events: list[dict] = []
    combined(tmp_path, events=events, alpha=0.7)
    training = [event for event in events if "loss" in event]

    assert training
    for event in training:
        intermediate = event["embeddings"] + event["hidden"] + event["attention"]
        assert event["loss"] == pytest.approx(
            intermediate + 0.3 * event["hard"] + 0.7 * event["soft"], rel=1e-4
        )
        assert event["attention"] > 0.0 and event["soft"] > 0.0


def test_the_student_and_the_projections_both_learn(tmp_path):
    before = tiny_teacher(layers=2, hidden=32, heads=2, seed=1).state_dict()
    result = combined(tmp_path)

    changed = max(
        (before[name] - value).abs().max().item() for name, value in result.model.state_dict().items()
    )
    assert changed > 0.0
    assert set(result.projections.keys()) == {"embeddings", "hidden_1", "hidden_2"}
    assert all(not torch.allclose(layer.weight, torch.eye(32)) for layer in result.projections.values())


def test_the_same_seed_gives_identical_weights(tmp_path):
    first = combined(tmp_path, "first", seed=3).model.state_dict()
    second = combined(tmp_path, "second", seed=3).model.state_dict()

    assert all(torch.equal(first[name], second[name]) for name in first)


def test_teacher_logits_of_another_label_map_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="one column per student label"):
        train_combined(
            tiny_teacher(layers=2, hidden=32, heads=2, seed=1),
            tiny_teacher(),
            tiny_tokenizer(tmp_path),
            TEXTS,
            np.zeros((len(TEXTS), 5), dtype=np.float32),
            LABELS,
            uniform_layer_map(2, 4),
            config(tmp_path, "bad"),
        )
