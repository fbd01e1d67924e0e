"""The run budget: nothing is reserved that the limits do not cover, and abandoned requests stay counted."""

import pytest

from manga_distill_assets.bedrock.budget import RunBudget
from manga_distill_assets.bedrock.cost import Spend


def test_a_request_is_covered_while_spent_reserved_abandoned_and_its_own_cost_fit_both_limits() -> None:
    budget = RunBudget(max_tokens=1_000, max_usd=1.0)
    budget.reserve(Spend(300, 0.3))
    budget.settle(Spend(300, 0.3), Spend(100, 0.1))
    budget.reserve(Spend(200, 0.2))
    budget.reserve(Spend(250, 0.25))
    budget.abandon(Spend(250, 0.25))

    # 100 spent + 200 reserved + 250 abandoned = 550 tokens, $0.55
    assert budget.covers(Spend(450, 0.45))
    assert not budget.covers(Spend(451, 0.1))
    assert not budget.covers(Spend(10, 0.46))


def test_an_answer_turns_its_reservation_into_what_it_was_billed() -> None:
    budget = RunBudget(max_tokens=1_000, max_usd=0)
    budget.reserve(Spend(600, 0.6))

    budget.settle(Spend(600, 0.6), Spend(150, 0.15))

    assert (budget.spent, budget.reserved, budget.worst_case) == (Spend(150, 0.15), Spend(), Spend(150, 0.15))


def test_a_refused_request_gives_its_reservation_back() -> None:
    budget = RunBudget(max_tokens=1_000, max_usd=0)
    budget.reserve(Spend(600, 0.6))

    budget.release(Spend(600, 0.6))

    assert budget.worst_case == Spend()


def test_an_abandoned_request_keeps_its_worst_case_for_the_rest_of_the_run() -> None:
    budget = RunBudget(max_tokens=1_000, max_usd=0)
    budget.reserve(Spend(600, 0.6))

    budget.abandon(Spend(600, 0.6))

    assert (budget.reserved, budget.abandoned) == (Spend(), Spend(600, 0.6))
    assert not budget.covers(Spend(401, 0.0))


def test_limits_of_zero_mean_no_limit() -> None:
    assert RunBudget(max_tokens=0, max_usd=0).covers(Spend(10**12, 10.0**6))


def test_reserving_what_the_budget_does_not_cover_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit the budget"):
        RunBudget(max_tokens=100, max_usd=0).reserve(Spend(101, 0.0))
