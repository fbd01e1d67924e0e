"""Named run configurations. `demo` is the defaults (the whole graph in minutes on 2 CPU cores); `smoke`
shrinks every step so tests can materialise the whole graph in about a minute."""

from __future__ import annotations

import dagster as dg

from manga_distill_assets.assets.models.config import (
    BaselineConfig,
    EvalConfig,
    ParaphraseConfig,
    SoftLabelConfig,
    Stage1Config,
    Stage2Config,
    TeacherConfig,
    TrainingKnobs,
)


def _quick(epochs: float, learning_rate: float) -> TrainingKnobs:
    return TrainingKnobs(
        epochs=epochs, learning_rate=learning_rate, batch_size=16, max_length=32, checkpoint_every=0
    )


def smoke_run_config() -> dg.RunConfig:
    return dg.RunConfig(
        ops={
            "teacher_model": TeacherConfig(
                max_train_examples=160, training=_quick(1.0, 1e-4), min_validation_accuracy=0.0
            ),
            "claude_paraphrases": ParaphraseConfig(per_text=2, max_source_texts=60),
            "teacher_soft_labels": SoftLabelConfig(max_unlabeled=150),
            "student_stage1": Stage1Config(max_transfer_texts=300, training=_quick(1.0, 5e-4)),
            "student_stage2": Stage2Config(training=_quick(1.0, 5e-4)),
            "baseline_student": BaselineConfig(training=_quick(1.0, 5e-4)),
            "eval_report": EvalConfig(latency_runs=10, retention_floor=0.0),
        }
    )


def demo_run_config() -> dg.RunConfig:
    return dg.RunConfig(ops={})


PRESETS = {"smoke": smoke_run_config, "demo": demo_run_config}
