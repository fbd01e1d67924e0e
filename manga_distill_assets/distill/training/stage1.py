"""Stage 1, intermediate-layer distillation: the student's embeddings, hidden states and attention maps learn
the teacher's, on transfer texts that need no labels.

The teacher is frozen and lives on the Trainer subclass, outside the module the Trainer optimises, wraps for
DDP and checkpoints; only the student and the projections (which map the student's hidden size onto the
teacher's) are trained and saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.intermediate import IntermediateLoss
from manga_distill_assets.distill.layer_match import LayerMatch
from manga_distill_assets.distill.training.callbacks import Progress
from manga_distill_assets.distill.training.config import TrainingConfig, training_arguments
from manga_distill_assets.distill.training.data import TextInput, encode, model_inputs
from manga_distill_assets.distill.training.trainer import LossTermTrainer, TrainingResult, build_trainer, fit

LOSS_TERMS = ("embeddings", "hidden", "attention")


@dataclass
class Stage1Result(TrainingResult):
    """`projections` must be saved beside the student: stage 1 cannot be resumed or audited without them."""

    projections: nn.ModuleDict


class StudentWithIntermediateLoss(nn.Module):
    """The student and the trainable projections as one module, so that one optimiser, one DDP wrapper and one
    checkpoint cover exactly what stage 1 trains."""

    def __init__(self, student: PreTrainedModel, intermediate_loss: IntermediateLoss) -> None:
        super().__init__()
        self.student = student
        self.intermediate_loss = intermediate_loss

    def forward(self, teacher_outputs: Any, attention_mask: Tensor, **inputs: Tensor) -> dict[str, Tensor]:
        student_outputs = self.student(
            attention_mask=attention_mask, output_hidden_states=True, output_attentions=True, **inputs
        )
        return self.intermediate_loss(student_outputs, teacher_outputs, attention_mask)


class Stage1Trainer(LossTermTrainer):
    """Runs the frozen teacher on each batch (without building a graph) and logs each intermediate term."""

    def __init__(self, *args: Any, teacher: PreTrainedModel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher.to(self.args.device)

    def loss_terms(self, model: nn.Module, inputs: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor], Any]:
        batch = model_inputs(inputs)
        # no_grad rather than inference_mode: autograd refuses to save inference tensors for backward, so any
        # loss term that multiplies by a teacher tensor (a KL, a cosine) would fail; the speed is the same.
        with torch.no_grad(), self.accelerator.autocast():
            teacher_outputs = self.teacher(**batch, output_hidden_states=True, output_attentions=True)
        terms = model(teacher_outputs=teacher_outputs, **batch)
        return terms["loss"], {name: terms[name] for name in LOSS_TERMS}, terms


def train_stage1(
    student: PreTrainedModel,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[TextInput],
    matches: list[LayerMatch],
    config: TrainingConfig,
    beta: float = 1.0,
    gamma: float = 1.0,
    progress: Progress | None = None,
) -> Stage1Result:
    """Train `student` (in place) and fresh projections to imitate `teacher` layer by layer on `texts` (single
    texts, or (first, second) pairs as a cross-encoder reads them).

    The teacher is frozen and put in eval mode; both models are switched to eager attention, the only
    implementation that returns attention maps. The student's classifier head takes no part in stage 1.
    """
    intermediate_loss = intermediate_setup(student, teacher, matches, config.seed, beta, gamma)
    trainer = build_trainer(
        Stage1Trainer,
        model=StudentWithIntermediateLoss(student, intermediate_loss),
        tokenizer=tokenizer,
        # The classifier head and pooler get no gradient here, which DDP must be told to expect.
        arguments=training_arguments(config, quiet=progress is not None, ddp_find_unused_parameters=True),
        train_rows=encode(tokenizer, texts, config.max_length),
        progress=progress,
        teacher=teacher,
    )
    return with_projections(fit(trainer, config, student), intermediate_loss)


def intermediate_setup(
    student: PreTrainedModel,
    teacher: PreTrainedModel,
    matches: list[LayerMatch],
    seed: int,
    beta: float,
    gamma: float,
) -> IntermediateLoss:
    """Freeze the teacher, switch both models to eager attention (the only implementation that returns
    attention maps) and build the intermediate loss with fresh projections.

    The projections are drawn from `seed`, not from whatever the global RNG holds, so that a rerun (or a
    resumed run, before its checkpoint overwrites them) starts from the same projections.
    """
    teacher.requires_grad_(False)
    teacher.eval()
    for model in (student, teacher):
        model.set_attn_implementation("eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return IntermediateLoss(
            matches,
            student_hidden=student.config.hidden_size,
            teacher_hidden=teacher.config.hidden_size,
            student_heads=student.config.num_attention_heads,
            teacher_heads=teacher.config.num_attention_heads,
            beta=beta,
            gamma=gamma,
            student_layers=student.config.num_hidden_layers,
            teacher_layers=teacher.config.num_hidden_layers,
        )


def with_projections(result: TrainingResult, intermediate_loss: IntermediateLoss) -> Stage1Result:
    common = {field.name: getattr(result, field.name) for field in fields(TrainingResult)}
    return Stage1Result(**common, projections=intermediate_loss.projections)
