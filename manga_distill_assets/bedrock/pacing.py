"""When to send the next Bedrock request: a shared send-rate cap that falls when throttling is the limit and
climbs back when it is not, and the pause before a failed request is asked again.

Why not botocore's adaptive mode: it cuts its rate on every single throttle (CUBIC), so when a share of
requests is throttled whatever the rate (a busy region, a shared quota), it slows to a crawl and never
recovers; measured in ``benchmarks/bedrock_throughput.py``. A throttled request costs one round trip and no
money, so this cap reacts to the throttled *share* of each window of replies instead:

- above ``cut_above`` (more than half of the sends wasted), the quota and not the concurrency is the limit:
  the cap becomes the rate of replies that got through in that window;
- below ``grow_below``, the cap grows by ``growth`` per window, and is lifted once it is twice the best rate
  seen, so a client that was throttled for a while returns to its full concurrency;
- in between, it holds.

One cap is shared by all of a run's requests (a token bucket of one token: sends are spaced 1/rate apart).
"""

import random
from dataclasses import dataclass, field


@dataclass
class ThrottleAwareRate:
    """The send-rate cap. ``rate`` None: no cap, concurrency is the only limit."""

    window: int = 16
    cut_above: float = 0.5
    grow_below: float = 0.2
    growth: float = 1.25
    min_rate: float = 0.2
    rate: float | None = None
    cuts: int = 0
    _next_send_at: float = 0.0
    _replies: int = 0
    _throttled: int = 0
    _window_start: float | None = None
    _best_rate: float = field(default=0.0)

    def wait_s(self, now: float) -> float:
        """Seconds until the next send is allowed."""
        return 0.0 if self.rate is None else max(0.0, self._next_send_at - now)

    def on_send(self, now: float) -> None:
        if self._window_start is None:
            self._window_start = now
        if self.rate is not None:
            self._next_send_at = max(now, self._next_send_at) + 1.0 / self.rate

    def on_reply(self, now: float, throttled: bool) -> None:
        """Count one reply (answer or refusal); at the end of each window, adjust the cap."""
        if self._window_start is None:
            self._window_start = now
        self._replies += 1
        self._throttled += throttled
        if self._replies < self.window:
            return
        elapsed = max(now - self._window_start, 1e-6)
        got_through_rate = (self._replies - self._throttled) / elapsed
        self._best_rate = max(self._best_rate, got_through_rate)
        share = self._throttled / self._replies
        if share > self.cut_above:
            self.rate = max(self.min_rate, got_through_rate)
            self._next_send_at = now + 1.0 / self.rate
            self.cuts += 1
        elif share < self.grow_below and self.rate is not None:
            self.rate *= self.growth
            if self.rate >= 2 * self._best_rate:
                self.rate = None
        self._replies = self._throttled = 0
        self._window_start = now


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: a uniform pause up to base·2^retry, at most ``max_s``."""

    base_s: float
    max_s: float

    def pause_s(self, retry: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.max_s, self.base_s * 2**retry))
