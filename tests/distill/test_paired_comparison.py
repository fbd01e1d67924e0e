"""Paired comparison of two classifiers on one test split: the texts only one got right, and the exact
McNemar p-value, against binomial tails computed by hand."""

import math

import pytest

from manga_distill_assets.distill.paired_comparison import compare_paired


def _texts(only_first: int, only_second: int, both: int, neither: int) -> tuple[list[int], ...]:
    """Truth is always 0; a model is right with 0 and wrong with 1."""
    first = [0] * only_first + [1] * only_second + [0] * both + [1] * neither
    second = [1] * only_first + [0] * only_second + [0] * both + [1] * neither
    return [0] * len(first), first, second


def _two_sided_binomial_tail(k: int, n: int) -> float:
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def test_counts_the_texts_only_one_model_got_right_and_the_accuracy_difference():
    comparison = compare_paired(*_texts(only_first=8, only_second=3, both=280, neither=11))
    assert (comparison.only_first_right, comparison.only_second_right) == (8, 3)
    assert comparison.accuracy_difference == pytest.approx((288 - 283) / 302)


def test_the_p_value_is_the_two_sided_binomial_tail_of_the_disagreements():
    # 8 against 3 of 11: 2 * (1 + 11 + 55 + 165) / 2048
    assert compare_paired(*_texts(8, 3, 100, 5)).p_value == pytest.approx(0.2265625)
    assert compare_paired(*_texts(0, 9, 50, 0)).p_value == pytest.approx(_two_sided_binomial_tail(0, 9))
    assert compare_paired(*_texts(30, 12, 900, 40)).p_value == pytest.approx(_two_sided_binomial_tail(12, 42))


def test_texts_both_models_got_right_or_wrong_do_not_move_the_p_value():
    assert compare_paired(*_texts(8, 3, 0, 0)).p_value == compare_paired(*_texts(8, 3, 500, 60)).p_value


def test_an_even_split_and_no_disagreement_are_both_chance():
    assert compare_paired(*_texts(4, 4, 10, 2)).p_value == pytest.approx(1.0)
    comparison = compare_paired(*_texts(0, 0, 10, 2))
    assert (comparison.p_value, comparison.accuracy_difference) == (1.0, 0.0)


def test_swapping_the_models_swaps_the_counts_and_keeps_the_p_value():
    truth, first, second = _texts(8, 3, 20, 1)
    forward, backward = compare_paired(truth, first, second), compare_paired(truth, second, first)
    assert (backward.only_first_right, backward.only_second_right) == (3, 8)
    assert backward.accuracy_difference == pytest.approx(-forward.accuracy_difference)
    assert backward.p_value == forward.p_value


@pytest.mark.parametrize(("truth", "first", "second"), [([], [], []), ([0, 1], [0, 1], [0])])
def test_predictions_not_one_per_text_are_rejected(truth, first, second):
    with pytest.raises(ValueError, match="one label per text"):
        compare_paired(truth, first, second)
