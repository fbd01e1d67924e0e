"""Single-stage distillation: the intermediate-layer terms of stage 1 and the output terms of stage 2 in one
loss, trained at once from the initial student.

    loss = intermediate(β, γ) + (1 - α)·CE + α·T²·KL

It is the recipe the two-stage default is compared against: the same terms, but no stage that first aligns
the student's layers before it learns the outputs. The teacher runs on every batch for its hidden states and
attentions, while the KD targets are the cached logits, the same targets stage 2 sees.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.intermediate import IntermediateLoss
from manga_distill_assets.distill.layer_match import LayerMatch
from manga_distill_assets.distill.losses import (
    DEFAULT_OUTPUT_DISTILLATION,
    OutputDistillation,
    check_finite_loss,
    unchecked_distillation_terms,
)
from manga_distill_assets.distill.training.callbacks import Progress
from manga_distill_assets.distill.training.config import TrainingConfig, training_arguments
from manga_distill_assets.distill.training.data import (
    check_labels,
    check_teacher_logits,
    encode,
    model_inputs,
)
from manga_distill_assets.distill.training.stage1 import (
    Stage1Result,
    intermediate_setup,
    with_projections,
)
from manga_distill_assets.distill.training.trainer import LossTermTrainer, build_trainer, fit

INTERMEDIATE_TERMS = ("embeddings", "hidden", "attention")


class StudentWithCombinedLoss(nn.Module):
    """The student and the projections as one module, so one optimiser and one checkpoint cover both; its
    forward returns the intermediate terms and the student's logits."""

    def __init__(self, student: PreTrainedModel, intermediate_loss: IntermediateLoss) -> None:
        super().__init__()
        self.student = student
        self.intermediate_loss = intermediate_loss

    def forward(self, teacher_outputs: Any, attention_mask: Tensor, **inputs: Tensor) -> dict[str, Tensor]:
        outputs = self.student(
            attention_mask=attention_mask, output_hidden_states=True, output_attentions=True, **inputs
        )
        return {**self.intermediate_loss(outputs, teacher_outputs, attention_mask), "logits": outputs.logits}


class CombinedTrainer(LossTermTrainer):
    """Logs every term on its own: `embeddings`, `hidden`, `attention`, `hard`, `soft`."""

    def __init__(
        self, *args: Any, teacher: PreTrainedModel, output: OutputDistillation, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher.to(self.args.device)
        self.output = output

    def loss_terms(self, model: nn.Module, inputs: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor], Any]:
        batch = model_inputs(inputs)
        with torch.no_grad(), self.accelerator.autocast():
            teacher_outputs = self.teacher(**batch, output_hidden_states=True, output_attentions=True)
        terms = model(teacher_outputs=teacher_outputs, **batch)
        output_terms = unchecked_distillation_terms(
            terms["logits"].float(), inputs["teacher_logits"].float(), inputs["labels"], self.output
        )
        check_finite_loss(output_terms.total, "combined output-distillation")
        logged = {name: terms[name] for name in INTERMEDIATE_TERMS}
        logged |= {"hard": output_terms.hard, "soft": output_terms.soft}
        return terms["loss"] + output_terms.total, logged, terms


def train_combined(
    student: PreTrainedModel,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    teacher_logits: np.ndarray,
    labels: list[int],
    matches: list[LayerMatch],
    config: TrainingConfig,
    *,
    output: OutputDistillation = DEFAULT_OUTPUT_DISTILLATION,
    beta: float = 1.0,
    gamma: float = 1.0,
    progress: Progress | None = None,
) -> Stage1Result:
    """Train `student` (in place) and fresh projections on every term at once; `labels` holds -100 for rows
    with no hard label, and `teacher_logits` `[N, C]` the cached teacher logits of `texts`.

    Student and teacher must share `tokenizer`: the intermediate terms compare them token by token.
    """
    num_labels = student.config.num_labels
    check_teacher_logits(teacher_logits, len(texts), num_labels)
    check_labels(labels, num_labels, "combined transfer set", allow_unlabeled=True)
    intermediate_loss = intermediate_setup(student, teacher, matches, config.seed, beta, gamma)
    rows = encode(
        tokenizer,
        texts,
        config.max_length,
        labels=labels,
        teacher_logits=teacher_logits.astype(np.float32).tolist(),
    )
    trainer = build_trainer(
        CombinedTrainer,
        model=StudentWithCombinedLoss(student, intermediate_loss),
        tokenizer=tokenizer,
        arguments=training_arguments(config, quiet=progress is not None),
        train_rows=rows,
        progress=progress,
        teacher=teacher,
        output=output,
    )
    return with_projections(fit(trainer, config, student), intermediate_loss)
