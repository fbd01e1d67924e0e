"""The send-rate cap: it falls only when throttling is the limit, and recovers when throttling eases."""

import random

import pytest

from manga_distill_assets.bedrock.pacing import Backoff, ThrottleAwareRate


def _window(pacing: ThrottleAwareRate, start: float, seconds: float, throttled: int) -> float:
    """Feed one window of replies spread over ``seconds``, the first ``throttled`` of them throttled."""
    for i in range(pacing.window):
        pacing.on_reply(start + seconds * (i + 1) / pacing.window, throttled=i < throttled)
    return start + seconds


def test_throttling_on_less_than_half_of_the_replies_never_caps_the_rate() -> None:
    pacing = ThrottleAwareRate(window=10)
    now = 0.0
    for _ in range(20):
        now = _window(pacing, now, 1.0, throttled=3)

    assert pacing.rate is None
    assert pacing.wait_s(now) == 0.0


def test_throttling_on_most_replies_caps_the_rate_at_what_got_through() -> None:
    pacing = ThrottleAwareRate(window=10)
    pacing.on_send(0.0)

    _window(pacing, 0.0, 2.0, throttled=8)

    assert pacing.rate == pytest.approx(2 / 2.0)
    assert pacing.cuts == 1


def test_a_capped_rate_spaces_the_sends() -> None:
    pacing = ThrottleAwareRate(window=10, rate=4.0)

    pacing.on_send(10.0)
    pacing.on_send(10.0)

    assert pacing.wait_s(10.0) == pytest.approx(0.5)
    assert pacing.wait_s(10.5) == 0.0


def test_calm_windows_grow_the_cap_until_it_is_lifted() -> None:
    pacing = ThrottleAwareRate(window=10, growth=2.0)
    pacing.on_send(0.0)
    now = _window(pacing, 0.0, 1.0, throttled=0)  # best rate seen: 10/s
    now = _window(pacing, now, 1.0, throttled=8)  # capped at 2/s
    rates = []
    while pacing.rate is not None and len(rates) < 10:
        now = _window(pacing, now, 1.0, throttled=0)
        rates.append(pacing.rate)

    assert rates == [4.0, 8.0, 16.0, None]


def test_a_backoff_pause_is_at_most_base_times_two_to_the_retry_and_never_above_the_maximum() -> None:
    backoff, rng = Backoff(base_s=0.5, max_s=3.0), random.Random(0)

    pauses = {retry: [backoff.pause_s(retry, rng) for _ in range(200)] for retry in range(4)}

    assert [max(pauses[retry]) <= limit for retry, limit in enumerate([0.5, 1.0, 2.0, 3.0])] == [True] * 4
    assert max(pauses[3]) > 2.0
