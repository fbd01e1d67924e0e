"""Training rows: labelled texts, tokenised once and unpadded, checked before training, and a batch order
that survives a resume."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase
from transformers.trainer_pt_utils import LengthGroupedSampler

MODEL_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
TextInput = str | tuple[str, str]
"""One text, or a (first, second) pair such as a cross-encoder's (query, passage)."""


@dataclass(frozen=True)
class LabeledTexts:
    """Texts with one class id each, in the order of the model's `id2label`."""

    texts: list[str]
    labels: list[int]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(
                f"LabeledTexts has {len(self.texts)} texts but {len(self.labels)} labels; "
                "give exactly one label per text."
            )


def encode(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[TextInput], max_length: int, **columns: Sequence[Any]
) -> list[dict[str, Any]]:
    """Tokenise every text (or pair, cut from its longer side first) once, unpadded, and attach the extra
    per-row columns (labels, teacher logits).

    Rows stay unpadded so that `DataCollatorWithPadding` pads each batch only to its own longest row.
    """
    if not texts:
        raise ValueError("There are no texts to train on; check that the input table is not empty.")
    for name, values in columns.items():
        if len(values) != len(texts):
            raise ValueError(
                f"There are {len(texts)} texts but {len(values)} values of {name!r}; give one per text."
            )
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    keys = [key for key in MODEL_INPUT_KEYS if key in encoded]
    return [
        {
            **{key: encoded[key][row] for key in keys},
            **{name: values[row] for name, values in columns.items()},
        }
        for row in range(len(texts))
    ]


def check_labels(labels: Sequence[int], num_labels: int, where: str, allow_unlabeled: bool = False) -> None:
    """Fail before training, naming the first row whose label the model cannot predict."""
    for row, label in enumerate(labels):
        if allow_unlabeled and label == -100:
            continue
        if not 0 <= label < num_labels:
            allowed = f"0..{num_labels - 1}" + (" or -100 for an unlabeled row" if allow_unlabeled else "")
            raise ValueError(
                f"{where}: row {row} has label {label}, but the model has {num_labels} labels ({allowed}). "
                "Check that the data's label map matches the model's id2label."
            )


def check_teacher_logits(teacher_logits: np.ndarray, num_texts: int, num_labels: int) -> None:
    """Fail before training on logits of another shape or with NaN/inf rows, naming the rows."""
    expected = (num_texts, num_labels)
    if teacher_logits.ndim != 2 or teacher_logits.shape != expected:
        raise ValueError(
            f"teacher_logits has shape {teacher_logits.shape}, expected {expected} (one row per text, one "
            "column per student label). Score the texts with a teacher whose label map matches the student."
        )
    bad_rows = np.flatnonzero(~np.isfinite(teacher_logits).all(axis=1))
    if bad_rows.size:
        raise ValueError(
            f"teacher_logits rows {bad_rows[:10].tolist()} hold NaN or infinite values; re-score those texts."
        )


def model_inputs(batch: dict[str, Any]) -> dict[str, Tensor]:
    """Only what a transformer's forward takes, so that labels and teacher logits never reach the model."""
    return {key: batch[key] for key in MODEL_INPUT_KEYS if key in batch}


class EpochSeededLengthSampler(LengthGroupedSampler):
    """Length-grouped order drawn from `seed + epoch` instead of the global RNG; it replaces the Trainer's own
    length-grouped sampler for training.

    The order then depends on nothing that happened earlier in training, so a run resumed in the middle of an
    epoch sees the same batches as an uninterrupted one, and every DDP process agrees on the order.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int) -> None:
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()
