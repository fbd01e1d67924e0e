"""The ensemble's prediction: a weighted mean of its members' calibrated class probabilities.

Averaging probabilities, not logits, is the classic ensemble (Hinton et al. 2015, MT-DNN's ensemble
distillation): a member that is unsure spreads its vote instead of cancelling another's. The student learns
from `log` of the mixture, which stage 2 treats as logits: softmax(log p / T) is p^(1/T) renormalised, the
same softening a single teacher's logits get.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PROBABILITY_FLOOR = 1e-12
"""log(0) would be -inf, which stage 2 refuses; no class is ever given less than this."""


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    exp = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def ensemble_probabilities(
    member_logits: Sequence[np.ndarray],
    temperatures: Sequence[float],
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """sum_m w_m · softmax(logits_m / T_m) with the weights normalised to sum to 1 (equal when None)."""
    if not member_logits:
        raise ValueError("An ensemble needs at least one member's logits.")
    shapes = {np.shape(logits) for logits in member_logits}
    if len(shapes) != 1:
        raise ValueError(
            "Every member must score the same texts over the same classes; "
            f"got logit shapes {sorted(shapes)}."
        )
    count = len(member_logits)
    if len(temperatures) != count:
        raise ValueError(f"There are {count} members but {len(temperatures)} temperatures; give one each.")
    if any(temperature <= 0 for temperature in temperatures):
        raise ValueError(f"Temperatures must be positive, got {list(temperatures)}.")
    share = np.ones(count) if weights is None else np.asarray(weights, dtype=np.float64)
    if share.shape != (count,) or (share < 0).any() or share.sum() <= 0:
        raise ValueError(
            f"Ensemble weights {list(share)} must be {count} non-negative numbers, not all zero."
        )
    share = share / share.sum()
    return sum(
        weight * softmax(logits, temperature)
        for weight, logits, temperature in zip(share, member_logits, temperatures, strict=True)
    )


def as_logits(probabilities: np.ndarray) -> np.ndarray:
    """log p (float32), floored so that stage 2 gets finite targets."""
    return np.log(np.clip(probabilities, PROBABILITY_FLOOR, None)).astype(np.float32)
