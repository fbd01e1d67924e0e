"""Latency of models served together, measured on calls whose duration the test controls."""

import threading
import time

import pytest

from manga_distill_assets.distill.ensemble_latency import parallel_latency, per_text_latency


def sleeper(seconds: float):
    def predict(text: str) -> str:
        time.sleep(seconds)
        return text

    return predict


def test_per_text_latency_reports_percentiles_in_milliseconds():
    figures = per_text_latency(sleeper(0.01), ["a", "b"], warmup=1, runs=5)
    assert 9.0 <= figures["p50"] < 40.0
    assert figures["p50"] <= figures["p90"] <= figures["p99"]
    assert figures["runs"] == 5


def test_parallel_members_cost_about_the_slowest_not_the_sum():
    figures = parallel_latency([sleeper(0.03), sleeper(0.03), sleeper(0.03)], ["a"], warmup=1, runs=5)
    assert 29.0 <= figures["p50"] < 75.0


def test_every_member_sees_every_text_in_parallel():
    seen: list[tuple[int, str]] = []
    lock = threading.Lock()

    def member(index: int):
        def predict(text: str) -> None:
            with lock:
                seen.append((index, text))

        return predict

    parallel_latency([member(0), member(1)], ["x", "y"], warmup=0, runs=2)
    assert sorted(seen) == [(0, "x"), (0, "y"), (1, "x"), (1, "y")]


def test_no_texts_is_refused():
    with pytest.raises(ValueError, match="at least one text"):
        per_text_latency(sleeper(0.0), [], runs=1)
