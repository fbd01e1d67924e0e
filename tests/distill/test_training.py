"""The training loops on tiny models: what each loop trains, what it logs, and that runs repeat and resume."""

import dataclasses
import typing
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import PreTrainedModel, TrainerControl

from manga_distill_assets.distill.layer_match import uniform_layer_map
from manga_distill_assets.distill.losses import OutputDistillation
from manga_distill_assets.distill.training import (
    LabeledTexts,
    TrainingConfig,
    train_baseline,
    train_stage1,
    train_stage2,
    train_teacher,
)
from manga_distill_assets.distill.training.callbacks import StopWhenValidationStalls
from manga_distill_assets.distill.training.config import resolve_precision
from manga_distill_assets.distill.training.schedule import MIN_EVALUATION_INTERVAL
from tests.distill.tiny import TINY_LABELS, TINY_TEXTS, tiny_teacher, tiny_tokenizer

# Every text of a class carries its class's keyword, so a tiny model separates them within a few epochs.
SEPARABLE = LabeledTexts(
    texts=[
        "where is my order",
        "track my order",
        "my order is late",
        "order not here yet",
        "recommend a manga",
        "recommend a comedy",
        "please recommend something",
        "recommend a new series",
        "refund please",
        "i want a refund",
        "refund my copy",
        "refund the damaged book",
    ],
    labels=[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2],
)
TEXTS = list(TINY_TEXTS)
LABELS = list(TINY_LABELS)
UNLABELED = -100


@pytest.fixture(autouse=True)
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tokenizer(tmp_path):
    return tiny_tokenizer(tmp_path)


def tiny_student(seed: int = 1) -> PreTrainedModel:
    return tiny_teacher(layers=2, hidden=16, heads=2, seed=seed)


def config(tmp_path: Path, name: str = "run", **overrides) -> TrainingConfig:
    settings = {
        "epochs": 2,
        "batch_size": 6,
        "learning_rate": 2e-3,
        "warmup_ratio": 0.0,
        "checkpoint_every": 0,
        "log_every": 1,
    }
    return TrainingConfig(output_dir=tmp_path / name, **{**settings, **overrides})


def one_hot_logits(classes: list[int], margin: float = 4.0) -> np.ndarray:
    """Teacher logits that put `margin` more on the given class of each row than on the others."""
    return (np.eye(3, dtype=np.float32) * margin)[classes]


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def largest_difference(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> float:
    return max((before[name] - after[name]).abs().max().item() for name in before)


def predictions(model: PreTrainedModel, tokenizer, texts: list[str]) -> list[int]:
    model.eval()
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    return logits.argmax(dim=-1).tolist()


def training_events(log_history: list[dict]) -> list[dict]:
    return [event for event in log_history if "loss" in event]


# ---- determinism -----------------------------------------------------------------------------------------


def test_two_runs_with_the_same_seed_end_with_identical_weights(tmp_path, tokenizer):
    logits = one_hot_logits(LABELS)
    first = train_stage2(tiny_student(), tokenizer, TEXTS, logits, LABELS, config(tmp_path, "first"))
    second = train_stage2(tiny_student(), tokenizer, TEXTS, logits, LABELS, config(tmp_path, "second"))

    assert largest_difference(snapshot(first.model), snapshot(second.model)) == 0.0


def test_a_different_seed_gives_different_weights(tmp_path, tokenizer):
    logits = one_hot_logits(LABELS)
    first = train_stage2(tiny_student(), tokenizer, TEXTS, logits, LABELS, config(tmp_path, "a", seed=1))
    second = train_stage2(tiny_student(), tokenizer, TEXTS, logits, LABELS, config(tmp_path, "b", seed=2))

    assert largest_difference(snapshot(first.model), snapshot(second.model)) > 0.0


# ---- teacher and baseline ----------------------------------------------------------------------------------


def test_teacher_training_lowers_the_loss_and_raises_validation_accuracy(tmp_path, tokenizer):
    teacher = tiny_teacher()
    before = np.mean(np.array(predictions(teacher, tokenizer, SEPARABLE.texts)) == SEPARABLE.labels)
    settings = config(tmp_path, epochs=12, batch_size=4, learning_rate=5e-3, early_stopping_patience=0)

    result = train_teacher(teacher, tokenizer, SEPARABLE, SEPARABLE, settings)

    losses = [event["loss"] for event in training_events(result.log_history)]
    steps_per_epoch = 3  # 12 texts in batches of 4
    assert np.mean(losses[-steps_per_epoch:]) < np.mean(losses[:steps_per_epoch])
    after = np.mean(np.array(predictions(result.model, tokenizer, SEPARABLE.texts)) == SEPARABLE.labels)
    assert after > before
    assert after >= 0.8
    assert result.metrics["eval_accuracy"] == pytest.approx(after)


def test_teacher_training_stops_once_accuracy_stalls_for_the_patience(tmp_path, tokenizer):
    stalled = config(tmp_path, epochs=100, learning_rate=1e-9, early_stopping_patience=2)

    result = train_teacher(tiny_teacher(), tokenizer, SEPARABLE, SEPARABLE, stalled)

    # The last evaluation is the final one of the returned (best) model, not an epoch's.
    epoch_evaluations = [event for event in result.log_history if "eval_accuracy" in event][:-1]
    # The first sets the best; the next, without improvement, cuts the rate; two more stop it.
    assert len(epoch_evaluations) == 4
    # An epoch of SEPARABLE is 2 steps, fewer than the least interval between validations on a tiny set.
    assert result.optimizer_steps == 4 * MIN_EVALUATION_INTERVAL
    assert result.stop_reason.startswith("validation stopped improving (neither accuracy nor loss)")


def _validations(
    callback: StopWhenValidationStalls, *results: tuple[float, float], scheduler=None
) -> list[bool]:
    """Whether training was told to stop after each (accuracy, loss) validation."""
    control = TrainerControl()
    stops = []
    for accuracy, loss in results:
        metrics = {"eval_accuracy": accuracy, "eval_loss": loss}
        callback.on_evaluate(None, None, control, metrics=metrics, lr_scheduler=scheduler)
        stops.append(control.should_training_stop)
    return stops


def test_a_falling_validation_loss_keeps_training_while_accuracy_stands_still():
    stops = _validations(StopWhenValidationStalls(patience=2), (0.5, 1.0), (0.5, 0.9), (0.5, 0.8), (0.5, 0.7))
    assert stops == [False, False, False, False]


def test_training_stops_once_neither_accuracy_nor_loss_improved_for_the_patience():
    callback = StopWhenValidationStalls(patience=2, rate_cuts=0)
    stops = _validations(callback, (0.5, 1.0), (0.6, 1.1), (0.6, 1.2), (0.55, 1.0))
    assert stops == [False, False, False, True]


def test_the_first_stall_cuts_the_learning_rate_and_only_patience_stalls_after_it_stop():
    schedule = SimpleNamespace(base_lrs=[1e-4, 2e-3])
    callback = StopWhenValidationStalls(patience=2, rate_cuts=1, cut_factor=0.1)
    stops = _validations(callback, (0.5, 1.0), (0.5, 1.1), scheduler=schedule)
    assert stops == [False, False]
    assert schedule.base_lrs == pytest.approx([1e-5, 2e-4])
    # Progress after the cut resets the count; then two stalls in a row stop.
    assert _validations(callback, (0.6, 1.1), (0.6, 1.2), (0.6, 1.3), scheduler=schedule) == [
        False,
        False,
        True,
    ]
    assert schedule.base_lrs == pytest.approx([1e-5, 2e-4])


def test_a_loss_that_falls_by_less_than_a_thousandth_is_not_progress():
    stops = _validations(StopWhenValidationStalls(patience=1), (0.5, 1.0), (0.5, 0.9995))
    assert stops == [False, True]


def head_and_encoder_change(before: dict, after: dict) -> tuple[float, float]:
    """The largest weight change in the classifier head and in the encoder layers."""

    def part(keep) -> float:
        return largest_difference(
            {k: v for k, v in before.items() if keep(k)}, {k: v for k, v in after.items() if keep(k)}
        )

    return part(lambda k: k.startswith("classifier.")), part(lambda k: ".encoder." in k)


def test_the_head_learns_at_its_own_rate_and_the_encoder_at_the_base_rate(tmp_path, tokenizer):
    split_rates = config(tmp_path, epochs=1, learning_rate=1e-5, head_learning_rate=1e-2)
    model = tiny_teacher()
    before = snapshot(model)
    train_teacher(model, tokenizer, SEPARABLE, SEPARABLE, split_rates)
    after = snapshot(model)

    head_change, encoder_change = head_and_encoder_change(before, after)
    assert head_change > 100 * encoder_change > 0.0


def test_stage2_also_trains_the_head_at_its_own_rate(tmp_path, tokenizer):
    split_rates = config(tmp_path, epochs=1, learning_rate=1e-5, head_learning_rate=1e-2)
    model = tiny_student()
    before = snapshot(model)
    train_stage2(model, tokenizer, TEXTS, one_hot_logits(LABELS), LABELS, split_rates)
    after = snapshot(model)

    head_change, encoder_change = head_and_encoder_change(before, after)
    assert head_change > 100 * encoder_change > 0.0


def supervised(model, tokenizer, training: TrainingConfig) -> None:
    train_teacher(model, tokenizer, SEPARABLE, SEPARABLE, training)


def distilled(model, tokenizer, training: TrainingConfig) -> None:
    train_stage2(
        model, tokenizer, SEPARABLE.texts, one_hot_logits(SEPARABLE.labels), SEPARABLE.labels, training
    )


@pytest.mark.parametrize("loop", [supervised, distilled])
def test_frozen_word_embeddings_stay_as_they_were_while_the_layers_learn(tmp_path, tokenizer, loop):
    model = tiny_teacher()
    before = snapshot(model)
    loop(model, tokenizer, config(tmp_path, epochs=1, freeze_word_embeddings=True))
    after = snapshot(model)

    table = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(before[table], after[table])
    assert (
        largest_difference(
            {k: v for k, v in before.items() if ".encoder." in k},
            {k: v for k, v in after.items() if ".encoder." in k},
        )
        > 0.0
    )
    assert model.get_input_embeddings().weight.requires_grad  # trainable again for whoever uses it next


def test_baseline_trains_the_student_on_hard_labels_and_reports_validation_accuracy(tmp_path, tokenizer):
    student = tiny_student()
    before = snapshot(student)

    result = train_baseline(student, tokenizer, SEPARABLE, SEPARABLE, config(tmp_path, epochs=1))

    assert result.model is student
    assert largest_difference(before, snapshot(student)) > 0.0
    assert "eval_accuracy" in result.metrics


def test_teacher_rejects_a_label_outside_the_label_map(tmp_path, tokenizer):
    bad = LabeledTexts(texts=["where is my order", "refund please"], labels=[0, 3])

    with pytest.raises(ValueError, match=r"training split: row 1 has label 3.*3 labels"):
        train_teacher(tiny_teacher(), tokenizer, bad, SEPARABLE, config(tmp_path))


# ---- stage 2 -----------------------------------------------------------------------------------------------


def test_stage2_takes_no_teacher_model():
    hints = typing.get_type_hints(train_stage2)

    model_parameters = [
        name
        for name, hint in hints.items()
        if name != "return" and PreTrainedModel in (hint, *typing.get_args(hint))
    ]

    assert model_parameters == ["student"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_stage2_learns_the_cached_teacher_distribution_with_fp32_weights(tmp_path, tokenizer, precision):
    # The cached logits disagree with the hard labels on purpose; with alpha=1 only the logits can teach.
    teacher_choice = [(label + 1) % 3 for label in SEPARABLE.labels]

    result = train_stage2(
        tiny_teacher(),
        tokenizer,
        SEPARABLE.texts,
        one_hot_logits(teacher_choice),
        SEPARABLE.labels,
        config(tmp_path, epochs=8, batch_size=4, precision=precision),
        output=OutputDistillation(alpha=1.0),
    )

    assert {parameter.dtype for parameter in result.model.parameters()} == {torch.float32}
    agreement = np.mean(np.array(predictions(result.model, tokenizer, SEPARABLE.texts)) == teacher_choice)
    assert agreement >= 0.9


def test_stage2_logs_the_hard_and_soft_terms_that_make_up_the_loss(tmp_path, tokenizer):
    alpha = 0.7

    result = train_stage2(
        tiny_student(),
        tokenizer,
        TEXTS,
        one_hot_logits(LABELS),
        LABELS,
        config(tmp_path),
        output=OutputDistillation(alpha=alpha),
    )

    events = training_events(result.log_history)
    assert events
    for event in events:
        assert event["loss"] == pytest.approx((1 - alpha) * event["hard"] + alpha * event["soft"], rel=1e-4)


def test_unlabeled_rows_still_teach_through_the_soft_term(tmp_path, tokenizer):
    student = tiny_student()
    before = snapshot(student)
    unlabeled = [UNLABELED] * len(TEXTS)

    result = train_stage2(
        student,
        tokenizer,
        TEXTS,
        one_hot_logits(LABELS),
        unlabeled,
        config(tmp_path),
        output=OutputDistillation(alpha=0.7),
    )

    assert largest_difference(before, snapshot(student)) > 0.0
    assert all(event["hard"] == 0.0 and event["soft"] > 0.0 for event in training_events(result.log_history))


def test_unlabeled_rows_add_nothing_to_the_hard_term(tmp_path, tokenizer):
    student = tiny_student()
    before = snapshot(student)
    unlabeled = [UNLABELED] * len(TEXTS)
    hard_only = config(tmp_path, weight_decay=0.0)

    train_stage2(
        student,
        tokenizer,
        TEXTS,
        one_hot_logits(LABELS),
        unlabeled,
        hard_only,
        output=OutputDistillation(alpha=0.0),
    )

    assert largest_difference(before, snapshot(student)) == 0.0


def test_stage2_rejects_teacher_logits_of_another_label_map(tmp_path, tokenizer):
    four_classes = np.zeros((len(TEXTS), 4), dtype=np.float32)

    with pytest.raises(ValueError, match=r"teacher_logits has shape \(30, 4\), expected \(30, 3\)"):
        train_stage2(tiny_student(), tokenizer, TEXTS, four_classes, LABELS, config(tmp_path))


# ---- progress, accumulation, checkpoints -------------------------------------------------------------------


def test_progress_receives_step_epoch_lr_throughput_and_each_loss_term(tmp_path, tokenizer):
    events: list[dict] = []

    train_stage2(
        tiny_student(),
        tokenizer,
        TEXTS,
        one_hot_logits(LABELS),
        LABELS,
        config(tmp_path, min_steps_per_label=0),
        progress=events.append,
        validation=SEPARABLE,
    )

    training = training_events(events)
    assert [event["step"] for event in training] == list(range(1, 11))
    for event in training:
        assert {"epoch", "lr", "samples_per_second", "loss", "hard", "soft"} <= event.keys()
    # Two epochs of 5 steps are fewer than the least validation interval: validation comes at the end.
    assert next(event["epoch"] for event in events if "eval_accuracy" in event) == 2.0


@pytest.mark.parametrize(("batch_size", "accumulation", "expected_steps"), [(8, 1, 3), (4, 2, 3), (4, 1, 6)])
def test_optimizer_steps_count_accumulated_batches(
    tmp_path, tokenizer, batch_size, accumulation, expected_steps
):
    settings = config(tmp_path, epochs=1, batch_size=batch_size, gradient_accumulation=accumulation)

    result = train_stage2(
        tiny_student(), tokenizer, TEXTS[:24], one_hot_logits(LABELS[:24]), LABELS[:24], settings
    )

    assert result.optimizer_steps == expected_steps


@pytest.mark.parametrize(("every", "kept"), [(4, {"checkpoint-8", "checkpoint-10"}), (0, {"checkpoint-10"})])
def test_checkpoints_are_saved_every_n_steps_and_the_latest_two_kept(tmp_path, tokenizer, every, kept):
    settings = config(tmp_path, checkpoint_every=every)  # 30 texts / 6 per batch * 2 epochs = 10 steps

    train_stage2(tiny_student(), tokenizer, TEXTS, one_hot_logits(LABELS), LABELS, settings)

    assert {folder.name for folder in settings.output_dir.glob("checkpoint-*")} == kept


class SimulatedCrash(RuntimeError):
    pass


def crash_at(step: int):
    def progress(event: dict) -> None:
        if event["step"] == step:
            raise SimulatedCrash(f"stopped at step {step}")

    return progress


def test_a_run_resumed_after_a_crash_ends_with_the_same_weights_as_an_uninterrupted_one(tmp_path, tokenizer):
    logits = one_hot_logits(LABELS)
    settings = {"batch_size": 4, "checkpoint_every": 3}  # 8 steps per epoch, 16 in all
    uninterrupted = train_stage2(
        tiny_student(), tokenizer, TEXTS, logits, LABELS, config(tmp_path, "whole", **settings)
    )
    interrupted = config(tmp_path, "crashed", **settings)
    with pytest.raises(SimulatedCrash):
        train_stage2(tiny_student(), tokenizer, TEXTS, logits, LABELS, interrupted, progress=crash_at(10))

    resumed = train_stage2(tiny_student(), tokenizer, TEXTS, logits, LABELS, interrupted)

    assert resumed.resumed_from == interrupted.output_dir / "checkpoint-9"
    assert resumed.optimizer_steps == uninterrupted.optimizer_steps == 16
    assert largest_difference(snapshot(uninterrupted.model), snapshot(resumed.model)) < 1e-6


def test_resume_can_be_switched_off(tmp_path, tokenizer):
    settings = config(tmp_path, checkpoint_every=4)
    train_stage2(tiny_student(), tokenizer, TEXTS, one_hot_logits(LABELS), LABELS, settings)

    fresh = dataclasses.replace(settings, resume=False)
    again = train_stage2(tiny_student(), tokenizer, TEXTS, one_hot_logits(LABELS), LABELS, fresh)

    assert again.resumed_from is None
    assert again.optimizer_steps == 10


# ---- stage 1 -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    """One stage-1 run shared by the stage-1 tests: a 2-layer student of the teacher's width (so the
    projections start at identity) learns from a frozen 4-layer teacher."""
    tmp_path = tmp_path_factory.mktemp("stage1")
    teacher, student = tiny_teacher(), tiny_teacher(layers=2, hidden=32, heads=2, seed=1)
    teacher_before, student_before = snapshot(teacher), snapshot(student)
    events: list[dict] = []
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train_stage1(
            student,
            teacher,
            tiny_tokenizer(tmp_path),
            TEXTS,
            uniform_layer_map(2, 4),
            config(tmp_path),
            progress=events.append,
        )
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "result": result,
        "teacher": teacher,
        "teacher_before": teacher_before,
        "student_before": student_before,
        "events": events,
    }


def test_stage1_leaves_the_teacher_weights_unchanged_and_frozen(stage1):
    teacher = stage1["teacher"]

    assert largest_difference(stage1["teacher_before"], snapshot(teacher)) == 0.0
    assert not any(parameter.requires_grad for parameter in teacher.parameters())
    assert not teacher.training


def test_stage1_trains_the_student(stage1):
    assert largest_difference(stage1["student_before"], snapshot(stage1["result"].model)) > 0.0


def test_stage1_trains_and_returns_the_projections(stage1):
    projections = stage1["result"].projections

    assert set(projections.keys()) == {"embeddings", "hidden_1", "hidden_2"}
    identity = torch.eye(32)
    assert all(not torch.allclose(projection.weight, identity) for projection in projections.values())


def test_stage1_logs_the_embeddings_hidden_and_attention_terms(stage1):
    events = training_events(stage1["events"])

    assert events
    for event in events:
        assert event["loss"] == pytest.approx(
            event["embeddings"] + event["hidden"] + event["attention"], rel=1e-4
        )
        assert event["attention"] > 0.0


def test_the_final_loss_is_the_last_logged_training_loss(stage1):
    result = stage1["result"]
    logged = [entry["loss"] for entry in result.log_history if "loss" in entry]

    assert logged and result.final_loss == logged[-1]


def test_a_run_too_short_to_log_reports_its_mean_loss_as_the_final_loss(stage1):
    short = dataclasses.replace(stage1["result"], log_history=[{"train_loss": 0.25, "epoch": 1.0}])

    assert short.final_loss == 0.25


def test_stage1_checkpoints_hold_student_and_projections_but_not_the_teacher(stage1):
    checkpoint = stage1["result"].checkpoint_dir / "checkpoint-10" / "model.safetensors"
    with safe_open(str(checkpoint), framework="pt") as weights:
        names = set(weights.keys())

    assert any(name.startswith("student.") for name in names)
    assert any(name.startswith("intermediate_loss.projections.") for name in names)
    assert not any("teacher" in name for name in names)


def test_a_resumed_stage1_run_ends_with_the_same_student_and_projections(tmp_path, tokenizer):
    def run(name: str, progress=None):
        teacher, student = tiny_teacher(), tiny_student()
        settings = config(tmp_path, name, batch_size=4, checkpoint_every=3)
        return train_stage1(
            student, teacher, tokenizer, TEXTS, uniform_layer_map(2, 4), settings, progress=progress
        )

    uninterrupted = run("whole")
    with pytest.raises(SimulatedCrash):
        run("crashed", progress=crash_at(10))

    resumed = run("crashed")

    assert resumed.resumed_from is not None
    assert largest_difference(snapshot(uninterrupted.model), snapshot(resumed.model)) < 1e-6
    assert largest_difference(snapshot(uninterrupted.projections), snapshot(resumed.projections)) < 1e-6


# ---- configuration ----------------------------------------------------------------------------------------


def test_config_rejects_an_unknown_precision(tmp_path):
    with pytest.raises(ValueError, match="precision is 'fp8'"):
        TrainingConfig(output_dir=tmp_path, precision="fp8")


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks a GPU precision when a GPU is present")
@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")],
)
def test_auto_precision_on_a_cpu_is_bf16_only_where_the_cpu_multiplies_bf16_natively(
    monkeypatch, avx512_bf16, amx, expected
):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_precision("auto") == expected


def test_a_model_trained_in_bf16_comes_back_scoring_in_fp32_like_its_stored_weights(tmp_path, tokenizer):
    result = train_teacher(
        tiny_teacher(),
        tokenizer,
        LabeledTexts(TEXTS, LABELS),
        LabeledTexts(TEXTS, LABELS),
        config(tmp_path, precision="bf16"),
    )
    reloaded = tiny_teacher()
    reloaded.load_state_dict(result.model.state_dict())

    inputs = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        returned, stored = result.model.eval()(**inputs).logits, reloaded.eval()(**inputs).logits
    assert returned.dtype == torch.float32
    assert torch.allclose(returned, stored, atol=1e-6)
