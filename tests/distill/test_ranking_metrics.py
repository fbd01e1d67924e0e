"""Ranking metrics against cases computed by hand (linear gains, log2 discounts)."""

import math

import numpy as np
import pandas as pd
import pytest

from manga_distill_assets.distill.ranking_metrics import (
    kendall_tau,
    mrr_at,
    ndcg_at,
    per_query,
    relevant_grade_for,
    top_k_agreement,
)

GRADES = [np.array([3, 2, 0, 1])]
SCORES = [np.array([0.1, 0.9, 0.5, 0.3])]  # ranks the candidates 1, 2, 3, 0: grades 2, 0, 1, 3


def test_ndcg_at_3_by_hand():
    dcg = 2 / math.log2(2) + 0 / math.log2(3) + 1 / math.log2(4)
    ideal = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at(GRADES, SCORES, 3) == pytest.approx(dcg / ideal)


def test_ndcg_is_one_for_the_ideal_order_and_averages_over_queries():
    perfect = [np.array([3.0, 2.0, 0.0, 1.0])]
    assert ndcg_at(GRADES, perfect, 3) == pytest.approx(1.0)
    assert ndcg_at(GRADES * 2, perfect + SCORES, 3) == pytest.approx((1.0 + ndcg_at(GRADES, SCORES, 3)) / 2)


def test_mrr_counts_the_first_candidate_at_or_above_the_relevant_grade():
    assert mrr_at(GRADES, SCORES, 10) == pytest.approx(1.0)  # grade 2 first
    assert mrr_at(GRADES, SCORES, 10, relevant_grade=3) == pytest.approx(1 / 4)
    assert mrr_at(GRADES, SCORES, 3, relevant_grade=3) == 0.0


def test_mrr_counts_relevance_from_grade_2_on_the_0_to_3_scale_and_from_1_in_binary_judgements():
    assert relevant_grade_for([np.array([0, 1, 3]), np.array([0, 0, 1])]) == 2
    assert relevant_grade_for([np.array([0, 2])]) == 2
    binary = [np.array([0, 1, 0]), np.array([1, 0, 0])]
    assert relevant_grade_for(binary) == 1
    scores = [np.array([0.9, 0.5, 0.1]), np.array([0.2, 0.3, 0.1])]  # relevant at ranks 2 and 2
    assert mrr_at(binary, scores, 10, relevant_grade_for(binary)) == pytest.approx(0.5)


def test_top_k_agreement_is_the_shared_share_of_the_top_k():
    reference, candidate = [np.array([4.0, 3.0, 2.0, 1.0])], [np.array([4.0, 1.0, 2.0, 3.0])]
    assert top_k_agreement(reference, candidate, 2) == pytest.approx(0.5)
    assert top_k_agreement(reference, candidate, 4) == pytest.approx(1.0)


def test_kendall_tau_is_one_for_the_same_order_and_minus_one_reversed():
    reference = [np.array([4.0, 3.0, 2.0, 1.0])]
    assert kendall_tau(reference, [reference[0] * 10 - 3]) == pytest.approx(1.0)
    assert kendall_tau(reference, [-reference[0]]) == pytest.approx(-1.0)


def test_per_query_groups_rows_by_sorted_query_id_in_frame_order():
    frame = pd.DataFrame({"query_id": ["b", "a", "b", "a"], "grade": [1, 2, 3, 0]})
    assert [list(values) for values in per_query(frame, "grade")] == [[2, 0], [1, 3]]


def test_metrics_refuse_lists_of_different_lengths():
    with pytest.raises(ValueError, match="same count"):
        ndcg_at([np.array([1, 0])], [np.array([0.5, 0.2, 0.1])], 3)
