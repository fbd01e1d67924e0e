"""The distillation recipes a study compares, as one map from a recipe's name to how it trains.

- two_stage: what the graph does, output distillation (stage 2) on the stage-1 student.
- output_only: stage 2 from the initial student, so stage 1's contribution can be measured.
- feature_only: stage 1 alone; the encoder is frozen and only the classifier head is fitted on the
  labelled train split's hard labels, so the score measures what intermediate-layer distillation gave the
  representation.
- combined: every term at once (output and layer distillation) from the initial student.

Each recipe names the student it starts from, and the caller builds or loads that student (building one is a
matter of the caller's configuration); the recipe only trains it, so adding a recipe is one entry here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.layer_match import LayerMatch, uniform_layer_map
from manga_distill_assets.distill.losses import OutputDistillation
from manga_distill_assets.distill.training import (
    LabeledTexts,
    TrainingConfig,
    TrainingResult,
    train_baseline,
    train_combined,
    train_stage2,
)
from manga_distill_assets.distill.vocab import prune_vocabulary

StudentStart = Literal["stage1", "stage1_frozen_encoder", "initial"]


@dataclass(frozen=True)
class RecipeInputs:
    """Everything a recipe may read; each recipe reads only its part.

    `transfer_*` are the teacher-labelled transfer set (texts, teacher logits, hard labels); `head_train` and
    `head_validation` the labelled splits feature_only fits the head on, with `head_training`.
    `prune_texts`, when given, are the texts whose vocabulary a student built from scratch keeps.
    """

    student: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    teacher: PreTrainedModel
    transfer_texts: list[str]
    transfer_logits: np.ndarray
    transfer_labels: list[int]
    head_train: LabeledTexts
    head_validation: LabeledTexts
    training: TrainingConfig
    head_training: TrainingConfig
    output: OutputDistillation
    beta: float
    gamma: float
    matches: list[LayerMatch] | None
    prune_texts: Sequence[str] | None
    progress: Callable[[dict], None] | None = None


@dataclass(frozen=True)
class RecipeRun:
    """A trained student; `seconds` is training time alone and `transfer_rows` the rows it learned from."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    result: TrainingResult
    seconds: float
    transfer_rows: int


@dataclass(frozen=True)
class Recipe:
    start: StudentStart
    train: Callable[[RecipeInputs], RecipeRun]


def _output_distillation(inputs: RecipeInputs) -> TrainingResult:
    return train_stage2(
        inputs.student,
        inputs.tokenizer,
        inputs.transfer_texts,
        inputs.transfer_logits,
        inputs.transfer_labels,
        inputs.training,
        output=inputs.output,
        progress=inputs.progress,
    )


def _all_terms(inputs: RecipeInputs) -> TrainingResult:
    matches = inputs.matches or uniform_layer_map(
        inputs.student.config.num_hidden_layers, inputs.teacher.config.num_hidden_layers
    )
    return train_combined(
        inputs.student,
        inputs.teacher,
        inputs.tokenizer,
        inputs.transfer_texts,
        inputs.transfer_logits,
        inputs.transfer_labels,
        matches,
        inputs.training,
        output=inputs.output,
        beta=inputs.beta,
        gamma=inputs.gamma,
        progress=inputs.progress,
    )


def _on_transfer_set(
    train: Callable[[RecipeInputs], TrainingResult], *, prunes: bool
) -> Callable[[RecipeInputs], RecipeRun]:
    """A recipe that learns from the transfer set; a student built from scratch is pruned as stage 1 is."""

    def run(inputs: RecipeInputs) -> RecipeRun:
        started = time.perf_counter()
        result = train(inputs)
        seconds = time.perf_counter() - started
        model, tokenizer = result.model, inputs.tokenizer
        if prunes and inputs.prune_texts is not None:
            pruning = prune_vocabulary(model, tokenizer, [*inputs.prune_texts, *inputs.transfer_texts])
            model, tokenizer = pruning.model, pruning.tokenizer
        return RecipeRun(model, tokenizer, result, seconds, len(inputs.transfer_texts))

    return run


def _head_on_labels(inputs: RecipeInputs) -> RecipeRun:
    started = time.perf_counter()
    result = train_baseline(
        inputs.student,
        inputs.tokenizer,
        inputs.head_train,
        inputs.head_validation,
        inputs.head_training,
        progress=inputs.progress,
    )
    seconds = time.perf_counter() - started
    return RecipeRun(result.model, inputs.tokenizer, result, seconds, len(inputs.head_train.texts))


RECIPES: dict[str, Recipe] = {
    "two_stage": Recipe("stage1", _on_transfer_set(_output_distillation, prunes=False)),
    "output_only": Recipe("initial", _on_transfer_set(_output_distillation, prunes=True)),
    "feature_only": Recipe("stage1_frozen_encoder", _head_on_labels),
    "combined": Recipe("initial", _on_transfer_set(_all_terms, prunes=True)),
}
