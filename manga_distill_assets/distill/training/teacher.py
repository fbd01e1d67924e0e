"""Supervised fine-tuning with cross-entropy: the teacher, and the no-distillation baseline student that the
evaluation compares distilled students against."""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.training.callbacks import (
    CheckpointEverySteps,
    Progress,
    StopWhenValidationStalls,
)
from manga_distill_assets.distill.training.config import TrainingConfig, training_arguments
from manga_distill_assets.distill.training.data import LabeledTexts, check_labels, encode
from manga_distill_assets.distill.training.schedule import supervised_schedule
from manga_distill_assets.distill.training.trainer import LossTermTrainer, TrainingResult, build_trainer, fit


def train_teacher(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: LabeledTexts,
    validation: LabeledTexts,
    config: TrainingConfig,
    progress: Progress | None = None,
) -> TrainingResult:
    """Fine-tune a sequence classifier on hard labels until validation accuracy stops improving.

    `config.epochs` is a cap; `supervised_schedule` scales the validation interval, the warm-up and the least
    number of steps from the data. Training stops once accuracy has not improved for
    `config.early_stopping_patience` validations, and the model that comes back holds the weights of the best
    validation, not the last one; `TrainingResult.stop_reason` says which of the two ended the run.
    """
    if not validation.texts:
        raise ValueError(
            "The validation split is empty; it is needed to pick the best epoch and to stop early. "
            "Give the labelled data a validation split."
        )
    num_labels = model.config.num_labels
    check_labels(train.labels, num_labels, "training split")
    check_labels(validation.labels, num_labels, "validation split")
    schedule = supervised_schedule(
        len(train.texts),
        num_labels,
        config.batch_size * config.gradient_accumulation,
        config.epochs,
        config.min_steps_per_label,
    )
    callbacks = [CheckpointEverySteps(config.checkpoint_every)]
    if config.early_stopping_patience:
        callbacks.append(StopWhenValidationStalls(config.early_stopping_patience))
    trainer = build_trainer(
        LossTermTrainer,
        model=model,
        tokenizer=tokenizer,
        arguments=training_arguments(
            config, evaluate=True, keep_best=True, quiet=progress is not None, schedule=schedule
        ),
        train_rows=encode(tokenizer, train.texts, config.max_length, labels=train.labels),
        eval_rows=encode(tokenizer, validation.texts, config.max_length, labels=validation.labels),
        progress=progress,
        callbacks=callbacks,
        head_learning_rate=config.head_learning_rate,
    )
    return fit(trainer, config, model)


def train_baseline(
    student: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: LabeledTexts,
    validation: LabeledTexts,
    config: TrainingConfig,
    progress: Progress | None = None,
) -> TrainingResult:
    """The student's architecture and initialisation trained on hard labels only, exactly as the teacher is:
    the gap between this and the distilled student is what distillation bought."""
    return train_teacher(student, tokenizer, train, validation, config, progress)
