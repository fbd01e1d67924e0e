"""Temperature scaling, checked against a dense grid search of the numpy NLL."""

import numpy as np
import pytest

from manga_distill_assets.distill.calibration import fit_temperature, negative_log_likelihood


def numpy_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def overconfident_logits(rng: np.random.Generator, rows: int = 400, classes: int = 5):
    """Right 70% of the time but with logits scaled as if always sure: calibration must cool them (T > 1)."""
    labels = rng.integers(0, classes, rows)
    predicted = np.where(rng.random(rows) < 0.7, labels, rng.integers(0, classes, rows))
    logits = rng.normal(0.0, 1.0, (rows, classes))
    logits[np.arange(rows), predicted] += 4.0
    return logits * 3.0, labels


def test_the_fitted_temperature_is_the_minimum_of_the_validation_nll():
    logits, labels = overconfident_logits(np.random.default_rng(0))
    grid = np.linspace(0.2, 15.0, 3000)
    best = grid[np.argmin([numpy_nll(logits, labels, t) for t in grid])]
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(best, abs=0.01)
    assert fitted > 1.0


def test_an_underconfident_model_is_sharpened():
    logits, labels = overconfident_logits(np.random.default_rng(1))
    assert fit_temperature(logits / 30.0, labels) < 1.0


def test_negative_log_likelihood_matches_numpy():
    logits, labels = overconfident_logits(np.random.default_rng(2), rows=20)
    assert negative_log_likelihood(logits, labels, 2.5) == pytest.approx(numpy_nll(logits, labels, 2.5))


def test_labels_outside_the_classes_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"\[7\]"):
        fit_temperature(np.zeros((2, 3)), np.array([0, 7]))


def test_an_empty_validation_split_is_refused():
    with pytest.raises(ValueError, match="validation split"):
        fit_temperature(np.zeros((0, 3)), np.array([], dtype=int))
