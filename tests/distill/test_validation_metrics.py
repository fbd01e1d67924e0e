"""Which checkpoint a run keeps: accuracy first, then the lower cross-entropy."""

import math

import numpy as np
import pytest
from transformers import EvalPrediction

from manga_distill_assets.distill.training.metrics import SELECTION_METRIC, validation_metrics


def _scores(logits: list[list[float]], labels: list[int]) -> dict[str, float]:
    return validation_metrics(EvalPrediction(predictions=np.array(logits), label_ids=np.array(labels)))


def test_accuracy_and_cross_entropy_match_a_hand_computation():
    scores = _scores([[math.log(3), 0.0], [0.0, 0.0]], [0, 1])
    # Text 1: p(label) = 3/4, right; text 2: a tie, argmax picks class 0, p(label) = 1/2.
    assert scores["accuracy"] == 0.5
    assert scores["cross_entropy"] == pytest.approx(-(math.log(0.75) + math.log(0.5)) / 2)


def test_at_equal_accuracy_the_lower_cross_entropy_is_kept():
    # Both get the first two texts right and the third wrong; the hesitant one is less sure of its mistake.
    confident = _scores([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0]], [0, 1, 1])
    hesitant = _scores([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], [0, 1, 1])
    assert confident["accuracy"] == hesitant["accuracy"] == pytest.approx(2 / 3)
    p_right, p_wrong = 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))
    assert hesitant["cross_entropy"] == pytest.approx(-(2 * math.log(p_right) + math.log(p_wrong)) / 3)
    assert hesitant["cross_entropy"] < confident["cross_entropy"]
    assert hesitant[SELECTION_METRIC] > confident[SELECTION_METRIC]


def test_one_more_right_text_wins_whatever_the_cross_entropy():
    # Three right with a huge loss on the fourth against two right with near-perfect confidence elsewhere.
    more_right = _scores([[9.0, 0.0], [0.0, 9.0], [9.0, 0.0], [500.0, 0.0]], [0, 1, 0, 1])
    fewer_right = _scores([[0.0, 0.1], [0.0, 9.0], [9.0, 0.0], [0.1, 0.0]], [0, 1, 0, 1])
    assert more_right["accuracy"] > fewer_right["accuracy"]
    assert more_right["cross_entropy"] > fewer_right["cross_entropy"]
    assert more_right[SELECTION_METRIC] > fewer_right[SELECTION_METRIC]
