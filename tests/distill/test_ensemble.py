"""Ensemble averaging, checked against probabilities written out by hand."""

import math

import numpy as np
import pytest

from manga_distill_assets.distill.ensemble import as_logits, ensemble_probabilities

A = np.array([[2.0, 0.0, 0.0]])
B = np.array([[0.0, 1.0, 0.0]])


def hand_softmax(row: list[float]) -> list[float]:
    exps = [math.exp(value) for value in row]
    return [value / sum(exps) for value in exps]


def test_equal_weights_average_the_members_probabilities():
    expected = [(a + b) / 2 for a, b in zip(hand_softmax([2, 0, 0]), hand_softmax([0, 1, 0]), strict=True)]
    assert ensemble_probabilities([A, B], [1.0, 1.0])[0] == pytest.approx(expected)


def test_each_member_is_softened_by_its_own_temperature_before_averaging():
    expected = [(a + b) / 2 for a, b in zip(hand_softmax([1, 0, 0]), hand_softmax([0, 1, 0]), strict=True)]
    assert ensemble_probabilities([A, B], [2.0, 1.0])[0] == pytest.approx(expected)


def test_weights_are_normalised():
    expected = [
        0.75 * a + 0.25 * b for a, b in zip(hand_softmax([2, 0, 0]), hand_softmax([0, 1, 0]), strict=True)
    ]
    assert ensemble_probabilities([A, B], [1.0, 1.0], weights=[3, 1])[0] == pytest.approx(expected)


def test_log_probabilities_are_finite_logits_with_the_same_softmax():
    probabilities = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    logits = as_logits(probabilities)
    assert np.isfinite(logits).all()
    softened = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert softened == pytest.approx(probabilities, abs=1e-6)


@pytest.mark.parametrize(
    ("logits", "temperatures", "weights", "message"),
    [
        ([A, np.zeros((1, 4))], [1.0, 1.0], None, "same classes"),
        ([A, B], [1.0], None, "2 members but 1 temperatures"),
        ([A, B], [1.0, 0.0], None, "positive"),
        ([A, B], [1.0, 1.0], [0.0, 0.0], "not all zero"),
        ([A, B], [1.0, 1.0], [1.0, -1.0], "non-negative"),
    ],
)
def test_inconsistent_members_are_refused(logits, temperatures, weights, message):
    with pytest.raises(ValueError, match=message):
        ensemble_probabilities(logits, temperatures, weights)
