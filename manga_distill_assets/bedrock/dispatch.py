"""One batch of requests to Bedrock: a bounded number in flight, a shared send-rate cap, retries that keep
the budget whole, and every answer handed over the moment it arrives.

Botocore is told not to retry (``total_max_attempts=1``): it would re-send a timed-out request while the first
attempt may still run and be billed, which no budget can see. Retries happen here instead, after a jittered
pause that does not hold a concurrency slot, so other requests keep the slots busy meanwhile. A throttled,
5xx or never-sent request gives its reservation back (Bedrock bills completed inferences only); a timed-out
or cut-off one keeps it for good (see ``budget.py``), and its retry reserves anew.

On a fatal error or when the budget no longer covers the next request, nothing more is sent; the requests in
flight are waited for (they are paid for) and their answers handed over too.
"""

import heapq
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from manga_distill_assets.bedrock.budget import RunBudget
from manga_distill_assets.bedrock.cost import Prices, Spend
from manga_distill_assets.bedrock.errors import MalformedResponse, Outcome, classify, error_code
from manga_distill_assets.bedrock.pacing import Backoff, ThrottleAwareRate
from manga_distill_assets.bedrock.requests import ChatAnswer, ChatRequest

# Progress is logged about this many times per batch, whatever its size.
_PROGRESS_STEPS = 20
_FAILURES = (ClientError, BotoCoreError, MalformedResponse)


@dataclass(frozen=True)
class DispatchSettings:
    max_concurrency: int
    max_retries: int
    backoff: Backoff
    seed: int = 0


@dataclass
class DispatchResult:
    """What one batch brought back; ``fatal`` and ``unaffordable`` say why it stopped early, if it did."""

    answers: dict[str, ChatAnswer] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    sent: int = 0
    retries: int = 0
    throttled: int = 0
    abandoned: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    fatal: str | None = None
    unaffordable: Spend | None = None


@dataclass(frozen=True)
class _Pending:
    request: ChatRequest
    tries: int = 0


@dataclass(order=True)
class _Delayed:
    due: float
    order: int
    pending: _Pending = field(compare=False)


class Dispatch:
    """Sends one batch. ``send`` makes one attempt (no botocore retries) and returns the answer or raises;
    ``explain`` turns a failure after n tries into the user's message; ``on_answer`` sees each answer as it
    arrives, in the calling thread."""

    def __init__(
        self,
        send: Callable[[ChatRequest], ChatAnswer],
        explain: Callable[[BaseException, int], str],
        on_answer: Callable[[ChatAnswer], None],
        budget: RunBudget,
        prices: Prices,
        settings: DispatchSettings,
        log: logging.Logger,
        pacing: ThrottleAwareRate | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.send = send
        self.explain = explain
        self.on_answer = on_answer
        self.budget = budget
        self.prices = prices
        self.settings = settings
        self.log = log
        self.pacing = pacing or ThrottleAwareRate(window=max(16, 2 * settings.max_concurrency))
        self.clock = clock
        self.rng = random.Random(settings.seed)
        self.result = DispatchResult()
        self._ready: deque[_Pending] = deque()
        self._delayed: list[_Delayed] = []
        self._in_flight: dict[Future[ChatAnswer], tuple[_Pending, Spend]] = {}
        self._total = 0

    def run(self, requests: Sequence[ChatRequest]) -> DispatchResult:
        self._ready.extend(_Pending(request) for request in requests)
        self._total = len(requests)
        try:
            with ThreadPoolExecutor(self.settings.max_concurrency, thread_name_prefix="bedrock") as pool:
                while self._in_flight or (not self._stopped() and (self._ready or self._delayed)):
                    self._submit_what_fits(pool)
                    self._wait_for_progress()
        finally:
            self._keep_answers_in_flight()
        return self.result

    def _stopped(self) -> bool:
        return self.result.fatal is not None or self.result.unaffordable is not None

    def _submit_what_fits(self, pool: ThreadPoolExecutor) -> None:
        now = self.clock()
        while self._delayed and self._delayed[0].due <= now:  # a retry whose pause is over goes first
            self._ready.appendleft(heapq.heappop(self._delayed).pending)
        while self._ready and len(self._in_flight) < self.settings.max_concurrency and not self._stopped():
            if self.pacing.wait_s(now) > 0:
                return
            pending = self._ready[0]
            worst_case = self.prices.worst_case(pending.request)
            if not self.budget.covers(worst_case):
                if not self._in_flight:  # else their answers may give back some of what they reserved
                    self.result.unaffordable = worst_case
                return
            self._ready.popleft()
            self.budget.reserve(worst_case)
            self.pacing.on_send(now)
            self.result.sent += 1
            self._in_flight[pool.submit(self.send, pending.request)] = (pending, worst_case)

    def _wait_for_progress(self) -> None:
        now = self.clock()
        timeouts = []
        if self._delayed:
            timeouts.append(self._delayed[0].due - now)
        if self._ready and len(self._in_flight) < self.settings.max_concurrency:
            timeouts.append(self.pacing.wait_s(now))
        timeout = max(0.0, min(timeouts)) if timeouts else None
        if self._in_flight:
            done, _ = wait(self._in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                self._collect(future)
        elif timeout:
            time.sleep(timeout)

    def _collect(self, future: Future[ChatAnswer]) -> None:
        pending, worst_case = self._in_flight.pop(future)
        try:
            answer = future.result()
        except _FAILURES as error:
            self._failed(pending, worst_case, error)
            return
        self._observe_reply(throttled=False)
        self.budget.settle(worst_case, self.prices.spend(answer.input_tokens, answer.output_tokens))
        self._keep(answer)

    def _failed(self, pending: _Pending, worst_case: Spend, error: BaseException) -> None:
        if isinstance(error, MalformedResponse):
            outcome = Outcome.UNAVAILABLE
            self.budget.settle(worst_case, worst_case)  # billed, but for how much nobody says
        else:
            outcome = classify(error)  # type: ignore[arg-type]
            if outcome is Outcome.ABANDONED:
                self.budget.abandon(worst_case)
                self.result.abandoned += 1
            else:
                self.budget.release(worst_case)
        self.result.throttled += outcome is Outcome.THROTTLED
        self._observe_reply(throttled=outcome is Outcome.THROTTLED)
        tries = pending.tries + 1
        if outcome is Outcome.FATAL:
            self.result.fatal = self.result.fatal or self.explain(error, tries)
            return
        if outcome is Outcome.REJECTED or pending.tries >= self.settings.max_retries:
            self.result.failed[pending.request.key] = self.explain(error, tries)
            self.log.warning(
                "No answer for request %r: %s", pending.request.key, self.result.failed[pending.request.key]
            )
            return
        pause_s = self.settings.backoff.pause_s(pending.tries, self.rng)
        self.result.retries += 1
        self.log.debug(
            "Bedrock request %r: %s; asking again in %.2f s.", pending.request.key, error_code(error), pause_s
        )
        retry = _Pending(pending.request, tries)
        heapq.heappush(
            self._delayed, _Delayed(self.clock() + pause_s, self.result.sent + len(self._delayed), retry)
        )

    def _observe_reply(self, throttled: bool) -> None:
        rate_before = self.pacing.rate
        self.pacing.on_reply(self.clock(), throttled)
        rate = self.pacing.rate
        if rate is not None and (rate_before is None or rate < rate_before):
            self.log.warning(
                "Bedrock throttled more than half of the last %d replies: sending at most %.2f requests/s "
                "until throttling eases.",
                self.pacing.window,
                rate,
            )
        elif rate is None and rate_before is not None:
            self.log.info("Bedrock throttling has eased: sending at full concurrency again.")

    def _keep(self, answer: ChatAnswer) -> None:
        result = self.result
        result.answers[answer.key] = answer
        result.input_tokens += answer.input_tokens
        result.output_tokens += answer.output_tokens
        self.on_answer(answer)
        done = len(result.answers)
        if done == self._total or done % max(1, self._total // _PROGRESS_STEPS) == 0:
            self.log.info(
                "Bedrock answered %d/%d requests; %d retries (%d throttled), %d abandoned; about $%.4f "
                "billed, at most $%.4f.",
                done,
                self._total,
                result.retries,
                result.throttled,
                result.abandoned,
                self.budget.spent.usd,
                self.budget.worst_case.usd,
            )

    def _keep_answers_in_flight(self) -> None:
        """After an interruption (Ctrl-C, a Dagster run terminated), the pool has let running requests finish:
        their answers are paid for, so they are handed over too."""
        for future in list(self._in_flight):
            if future.done() and not future.cancelled() and future.exception() is None:
                self._collect(future)
