"""Stage 2, output distillation: the student learns the teacher's softened class distribution from logits that
were computed once and cached, so the teacher never runs here (it is not even an argument)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor, nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.losses import (
    DEFAULT_OUTPUT_DISTILLATION,
    OutputDistillation,
    check_finite_loss,
    unchecked_distillation_terms,
)
from manga_distill_assets.distill.training.callbacks import (
    CheckpointEverySteps,
    Progress,
    StopWhenValidationStalls,
)
from manga_distill_assets.distill.training.config import TrainingConfig, training_arguments
from manga_distill_assets.distill.training.data import (
    LabeledTexts,
    check_labels,
    check_teacher_logits,
    encode,
    model_inputs,
)
from manga_distill_assets.distill.training.schedule import supervised_schedule
from manga_distill_assets.distill.training.trainer import LossTermTrainer, TrainingResult, build_trainer, fit


class Stage2Trainer(LossTermTrainer):
    """Loss = the distillation terms of the student's logits; logs `hard` and `soft` beside the total. The
    rows were validated once by `train_stage2`, so each step checks only that the loss is finite.

    The validation set, which has no teacher logits, is scored with plain cross-entropy.
    """

    def __init__(self, *args: Any, output: OutputDistillation, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.output = output

    def teacher_logits_for(self, inputs: dict[str, Any]) -> Tensor:
        return inputs["teacher_logits"]

    def loss_terms(self, model: nn.Module, inputs: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor], Any]:
        if not model.training:
            return super().loss_terms(model, inputs)
        outputs = model(**model_inputs(inputs))
        terms = unchecked_distillation_terms(
            outputs.logits.float(), self.teacher_logits_for(inputs).float(), inputs["labels"], self.output
        )
        check_finite_loss(terms.total, "stage-2 distillation")
        return terms.total, {"hard": terms.hard, "soft": terms.soft}, outputs


def train_stage2(
    student: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    teacher_logits: np.ndarray,
    labels: list[int],
    config: TrainingConfig,
    output: OutputDistillation = DEFAULT_OUTPUT_DISTILLATION,
    progress: Progress | None = None,
    validation: LabeledTexts | None = None,
) -> TrainingResult:
    """Distil cached teacher logits `[N, C]` into `student`; `labels` holds -100 for rows with no hard label
    (unlabeled queries, paraphrases), which then teach through the KL term only.

    With a `validation` set, training stops early and keeps the best model exactly as the teacher and the
    baselines do (`supervised_schedule`, `config.early_stopping_patience`), so all are judged alike."""
    num_labels = student.config.num_labels
    check_teacher_logits(teacher_logits, len(texts), num_labels)
    check_labels(labels, num_labels, "stage-2 transfer set", allow_unlabeled=True)
    rows = encode(
        tokenizer,
        texts,
        config.max_length,
        labels=labels,
        teacher_logits=teacher_logits.astype(np.float32).tolist(),
    )
    eval_rows, schedule, callbacks = None, None, []
    if validation is not None:
        check_labels(validation.labels, num_labels, "stage-2 validation set")
        eval_rows = encode(tokenizer, validation.texts, config.max_length, labels=validation.labels)
        schedule = supervised_schedule(
            len(texts),
            num_labels,
            config.batch_size * config.gradient_accumulation,
            config.epochs,
            config.min_steps_per_label,
        )
        callbacks = [CheckpointEverySteps(config.checkpoint_every)]
        if config.early_stopping_patience:
            callbacks.append(StopWhenValidationStalls(config.early_stopping_patience))
    trainer = build_trainer(
        Stage2Trainer,
        model=student,
        tokenizer=tokenizer,
        arguments=training_arguments(
            config,
            evaluate=eval_rows is not None,
            keep_best=eval_rows is not None,
            quiet=progress is not None,
            schedule=schedule,
        ),
        train_rows=rows,
        eval_rows=eval_rows,
        progress=progress,
        callbacks=callbacks,
        output=output,
        head_learning_rate=config.head_learning_rate,
    )
    return fit(trainer, config, student)
