"""Temperature scaling (Guo et al. 2017): one scalar T per model, fitted on held-out labels, so that
softmax(logits / T) states as much confidence as the model's accuracy earns.

Members of an ensemble are calibrated before their probabilities are averaged: an over-confident member
would otherwise outvote the others on every text it gets wrong. T leaves each member's top-1 prediction
unchanged; only the mixture, and so the soft targets, change.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean cross-entropy of softmax(logits / T) against `labels`, in nats."""
    scaled = torch.from_numpy(np.asarray(logits, dtype=np.float64)) / temperature
    return float(F.cross_entropy(scaled, torch.as_tensor(np.asarray(labels), dtype=torch.long)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iterations: int = 200) -> float:
    """The T in [MIN_TEMPERATURE, MAX_TEMPERATURE] that minimises the validation NLL.

    Optimised over log T (T stays positive, and the NLL is smooth in it) with L-BFGS; the NLL of a fixed
    set of logits has one minimum in T, so the start (T = 1) does not matter.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(
            "Calibration needs logits [N, C] and N labels; "
            f"got logits {logits.shape} and {len(labels)} labels."
        )
    if len(labels) == 0:
        raise ValueError(
            "Calibration needs at least one validation row; give the labelled set a validation split."
        )
    outside = labels[(labels < 0) | (labels >= logits.shape[1])]
    if outside.size:
        raise ValueError(
            f"Validation labels {sorted(set(outside.tolist()))[:5]} are outside the {logits.shape[1]} "
            "classes of the logits; check that the model and the data use the same label map."
        )
    scores = torch.from_numpy(logits.astype(np.float64))
    targets = torch.from_numpy(labels.astype(np.int64))
    log_temperature = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [log_temperature], lr=0.5, max_iter=max_iterations, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(scores / log_temperature.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(np.clip(log_temperature.exp().item(), MIN_TEMPERATURE, MAX_TEMPERATURE))
