"""Summaries over seeds and the verdict a study report prints, checked against figures worked out by hand."""

import math

import pytest

from manga_distill_assets.distill.experiments import mean_std, summarise_variant, verdict


def run(seed: int, accuracy: float, **overrides: float) -> dict[str, float]:
    metrics = {"macro_f1": accuracy, "retention": accuracy / 0.9, "training_seconds": 10.0, "final_loss": 0.5}
    return {"seed": seed, "accuracy": accuracy, **metrics, **overrides}


def summary(variant: str, *accuracies: float):
    return summarise_variant(variant, [run(seed, accuracy) for seed, accuracy in enumerate(accuracies)])


def test_mean_std_is_the_sample_standard_deviation():
    # mean 0.8; squared deviations 0.01, 0, 0.01 -> variance 0.02 / (3 - 1) = 0.01 -> std 0.1
    result = mean_std([0.7, 0.8, 0.9])

    assert result.mean == pytest.approx(0.8)
    assert result.std == pytest.approx(0.1)
    assert result.runs == 3


def test_a_single_run_has_no_std():
    assert mean_std([0.75]).std is None


def test_nan_values_are_left_out_of_the_mean():
    result = mean_std([1.0, math.nan, 3.0])

    assert (result.mean, result.runs) == (2.0, 2)


def test_summarise_variant_keeps_the_seeds_and_summarises_every_metric():
    result = summarise_variant(
        "T=4", [run(0, 0.8, training_seconds=10.0), run(5, 0.9, training_seconds=20.0)]
    )

    assert result.seeds == (0, 5)
    assert result.metrics["accuracy"].mean == pytest.approx(0.85)
    assert result.metrics["training_seconds"].mean == pytest.approx(15.0)
    assert set(result.metrics) == {"accuracy", "macro_f1", "retention", "training_seconds", "final_loss"}


def test_summarise_variant_names_the_variant_and_the_missing_metric():
    with pytest.raises(ValueError, match=r"'T=8'.*macro_f1"):
        summarise_variant("T=8", [{"seed": 0, "accuracy": 0.9}])


def test_verdict_names_the_best_variant_and_the_spread():
    result = verdict([summary("T=1", 0.70, 0.72), summary("T=4", 0.90, 0.92), summary("T=8", 0.80, 0.82)])

    assert result.best == "T=4" and result.runner_up == "T=8"
    assert result.spread == pytest.approx(0.91 - 0.71)


def test_a_lead_larger_than_one_std_is_distinguishable():
    # stds are both 0.01414; the lead of 0.10 is far larger
    result = verdict([summary("a", 0.90, 0.92), summary("b", 0.80, 0.82)])

    assert result.distinguishable is True
    assert "ahead of b" in result.text


def test_a_lead_within_one_std_is_not_distinguishable():
    # a: mean 0.86, std 0.0566; b: mean 0.85, std 0.0; lead 0.01 < 0.0566
    result = verdict([summary("a", 0.82, 0.90), summary("b", 0.85, 0.85)])

    assert result.best == "a"
    assert result.distinguishable is False
    assert "not distinguishable from b" in result.text


def test_single_seed_runs_cannot_be_judged():
    result = verdict([summary("a", 0.9), summary("b", 0.8)])

    assert result.best == "a" and result.distinguishable is None
    assert "single-seed" in result.text


def test_a_single_variant_has_nothing_to_compare_with():
    result = verdict([summary("a", 0.9, 0.8)])

    assert (result.best, result.runner_up, result.spread, result.distinguishable) == ("a", None, 0.0, None)
