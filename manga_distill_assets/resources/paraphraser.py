"""Paraphrasers: the offline rule-based one, and Claude on AWS Bedrock, behind one cached interface.

Paid answers are precious, so every backend shares the same cache logic: a text goes to the backend only if
it was never sent before with the same backend, model, prompt version and number of paraphrases, and answers
are committed to the cache as they arrive, so a run killed half-way has lost nothing it paid for.
"""

import json
import logging
import random
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from manga_distill_assets.data.paraphrase import (
    OFFLINE_RULES_VERSION,
    build_prompt,
    is_list_answer,
    offline_paraphrases,
    parse_paraphrases,
)
from manga_distill_assets.data.pii import scrub_pii
from manga_distill_assets.resources.paraphrase_cache import CacheKey, ParaphraseCache

_LOGGER = logging.getLogger(__name__)

ANTHROPIC_VERSION = "bedrock-2023-05-31"
# Tokens a Claude message adds around its text (role markers and the like); a generous bound, for budgeting.
_MESSAGE_OVERHEAD_TOKENS = 32
# Bedrock errors that say "not now" rather than "not ever": worth asking again after a pause.
_TRANSIENT_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelTimeoutException",
        "ModelNotReadyException",
    }
)
_TRANSIENT_TRANSPORT_ERRORS = (
    ReadTimeoutError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ConnectionClosedError,
    ResponseStreamingError,
)
# Progress is logged about this many times per run, whatever its size.
_PROGRESS_STEPS = 20


@dataclass(frozen=True)
class ParaphraseBatch:
    """The paraphrases of one call, and what the call cost; cached texts cost nothing.

    ``retries`` counts requests this paraphraser sent again (after botocore gave up, or for an answer that
    was not a JSON list); botocore's own retries are not in it. ``unusable`` counts texts whose every answer
    was unusable: they are cached as having no paraphrases, so they are not paid for again.
    """

    paraphrases: dict[str, list[str]]
    sent: int
    cached: int
    dropped: int
    input_tokens: int
    output_tokens: int
    estimated_cost_usd: float
    retries: int = 0
    unusable: int = 0


@dataclass(frozen=True)
class BackendAnswer:
    """One text's answer from a backend: the kept paraphrases, and how many of the n requested were lost."""

    paraphrases: list[str]
    dropped: int
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class _Tally:
    """What one call's sends have brought back so far."""

    answers: dict[str, list[str]] = field(default_factory=dict)
    dropped: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    retries: int = 0
    unusable: int = 0

    def add(self, answers: dict[str, list[str]], results: Sequence[BackendAnswer]) -> None:
        self.answers |= answers
        self.dropped += sum(result.dropped for result in results)
        self.input_tokens += sum(result.input_tokens for result in results)
        self.output_tokens += sum(result.output_tokens for result in results)


class BedrockParaphraseError(RuntimeError):
    """A Bedrock call failed; the message names the model, the region and what to change."""


class BedrockBudgetExceeded(BedrockParaphraseError):
    """The run's token or dollar budget would not cover the next request, so nothing more was sent."""


class Paraphraser(ConfigurableResource):
    """Paraphrases texts through a backend, asking it only for texts it has never been asked about."""

    cache_path: str = Field(
        description="SQLite file that keeps every answer; reused across runs so no text is paid for twice."
    )
    batch_size: int = Field(
        default=32,
        description="Answers committed to the cache together; a run killed mid-way loses at most one batch.",
    )

    def paraphrase(
        self, texts: Sequence[str], n: int = 5, log: logging.Logger | None = None
    ) -> ParaphraseBatch:
        """Paraphrases of every distinct text, from the cache where possible and the backend otherwise.

        ``sent`` and ``cached`` count distinct texts as the backend sees them (after ``_outbound_text``),
        so two texts that scrub to the same form are sent once and share their paraphrases.
        """
        self._check_settings(n)
        log = log or _LOGGER
        outbound = {text: self._outbound_text(text) for text in texts}
        keys = {text: self._cache_key(text, n) for text in dict.fromkeys(outbound.values())}
        cache = ParaphraseCache(self.cache_path)
        found = cache.get_many(keys.values())
        answers = {text: found[key] for text, key in keys.items() if key in found}
        to_send = [text for text in keys if text not in answers]
        log.info(
            "Paraphrasing %d distinct texts with %s: %d from the cache, %d to send.",
            len(keys),
            self._describe_backend(),
            len(answers),
            len(to_send),
        )
        tally = self._send({text: keys[text] for text in to_send}, n, cache, log)
        answers |= tally.answers
        return ParaphraseBatch(
            paraphrases={text: answers[outbound_text] for text, outbound_text in outbound.items()},
            sent=len(to_send),
            cached=len(keys) - len(to_send),
            dropped=tally.dropped,
            input_tokens=tally.input_tokens,
            output_tokens=tally.output_tokens,
            estimated_cost_usd=self._estimated_cost_usd(tally.input_tokens, tally.output_tokens),
            retries=tally.retries,
            unusable=tally.unusable,
        )

    @abstractmethod
    def _send(self, keys: dict[str, CacheKey], n: int, cache: ParaphraseCache, log: logging.Logger) -> _Tally:
        """Ask the backend about every key's text, committing answers to the cache as they arrive."""

    @abstractmethod
    def _cache_identity(self) -> tuple[str, str, str]:
        """(backend, model id, prompt version): what, besides the text and n, decides an answer."""

    def _outbound_text(self, text: str) -> str:
        """The form of a text that the backend sees and the cache stores."""
        return text

    def _estimated_cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return 0.0

    def _describe_backend(self) -> str:
        backend, model_id, prompt_version = self._cache_identity()
        return f"{backend} (model {model_id}, prompt {prompt_version})"

    def _cache_key(self, text: str, n: int) -> CacheKey:
        backend, model_id, prompt_version = self._cache_identity()
        return CacheKey(backend=backend, model_id=model_id, prompt_version=prompt_version, text=text, n=n)

    def _check_settings(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"Asked for {n} paraphrases per text; ask for at least 1.")
        if self.batch_size < 1:
            raise ValueError(f"Paraphraser batch_size is {self.batch_size}; set it to 1 or more.")

    def _log_progress(self, log: logging.Logger, done: int, total: int, tally: _Tally) -> None:
        log.info(
            "Paraphrased %d/%d new texts; %d paraphrases dropped, %d input and %d output tokens, "
            "about $%.4f so far.",
            done,
            total,
            tally.dropped,
            tally.input_tokens,
            tally.output_tokens,
            self._estimated_cost_usd(tally.input_tokens, tally.output_tokens),
        )


class OfflineParaphraser(Paraphraser):
    """Rule-based paraphrases made on this machine: free, deterministic, and needing no credentials."""

    seed: int = Field(default=0, description="Picks which of the rule-based variants each text gets.")

    def _cache_identity(self) -> tuple[str, str, str]:
        return "offline", f"rules-{OFFLINE_RULES_VERSION}", f"seed-{self.seed}"

    def _send(self, keys: dict[str, CacheKey], n: int, cache: ParaphraseCache, log: logging.Logger) -> _Tally:
        """Send the keys' texts batch by batch, committing each batch's answers before the next is sent."""
        texts = list(keys)
        tally = _Tally()
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            results = self._paraphrase_batch(batch, n)
            batch_answers = {text: result.paraphrases for text, result in zip(batch, results, strict=True)}
            cache.put_many({keys[text]: paraphrases for text, paraphrases in batch_answers.items()})
            tally.add(batch_answers, results)
            self._log_progress(log, start + len(batch), len(texts), tally)
        return tally

    def _paraphrase_batch(self, texts: Sequence[str], n: int) -> list[BackendAnswer]:
        """One answer per text, in order."""
        answers = []
        for text in texts:
            paraphrases = offline_paraphrases(text, n=n, seed=self.seed)
            answers.append(BackendAnswer(paraphrases=paraphrases, dropped=n - len(paraphrases)))
        return answers


@dataclass(frozen=True)
class _Cost:
    tokens: int
    usd: float


@dataclass(frozen=True)
class _Exchange:
    """One request's answer text and what it was billed, with the retries it took to get it."""

    answer: str
    input_tokens: int
    output_tokens: int
    retries: int = 0


class BedrockParaphraser(Paraphraser):
    """Claude on AWS Bedrock, through the Converse API or InvokeModel with an Anthropic messages body.

    Credentials come only from the standard AWS chain (environment, profile, SSO, instance role); they are
    never fields of this resource and never logged. PII is scrubbed before a text leaves the machine, and
    the cache stores only the scrubbed form.

    Up to ``max_concurrency`` requests are in flight at once. Throttling, 5xx errors and timeouts are retried
    by botocore's adaptive retry mode (which also slows the client down while throttled), then, when botocore
    gives up, up to ``extra_retries`` more times after a jittered exponential pause. Every answer is committed
    to the cache the moment it arrives (``batch_size`` answers at a time). A request is sent only while the
    run's budget covers its worst case (the whole prompt, as UTF-8 bytes, as input tokens, plus
    ``max_tokens`` of output) on top of what is spent and what requests in flight may still cost, so the
    budget is never overrun; when it would be, sending stops, what came back is kept, and the run fails
    saying how far it got.

    Answers are validated: one that is not a JSON list is asked for again up to ``malformed_retries`` times
    and then cached as unusable (no paraphrases), so it is not paid for again; a list with too few good items
    (wrong count, copies of the source, too short or too long) keeps the good ones, counts the rest as
    dropped, and is not asked again. Change ``prompt_version`` to ask again for every text.

    A client set with ``use_client`` lives on this instance only: Dagster re-creates a resource from its
    config for each run, so code that materialises assets overrides ``client()`` in a subclass instead.
    """

    model_id: str = Field(
        default="anthropic.claude-3-5-sonnet-20241022-v2:0",
        description="Bedrock model id or inference profile id; it must be enabled in the region.",
    )
    region_name: str = Field(default="us-east-1", description="AWS region of the Bedrock endpoint.")
    endpoint_url: str | None = Field(
        default=None, description="Overrides the bedrock-runtime endpoint, e.g. a VPC endpoint."
    )
    api: Literal["converse", "invoke_model"] = Field(
        default="converse",
        description="converse: the Converse API; invoke_model: InvokeModel with an Anthropic messages body.",
    )
    prompt_version: str = Field(
        default="v1", description="Names the prompt wording; a new version asks again for every text."
    )
    max_tokens: int = Field(default=512, ge=1, description="Largest answer, in tokens, per text.")
    temperature: float = Field(
        default=0.8, description="Sampling temperature; higher gives more varied wording."
    )
    input_usd_per_mtok: float = Field(default=3.0, description="Price of a million input tokens, in USD.")
    output_usd_per_mtok: float = Field(default=15.0, description="Price of a million output tokens, in USD.")
    batch_size: int = Field(
        default=1,
        description="Answers committed to the cache together; 1 commits each paid answer as it arrives.",
    )
    max_concurrency: int = Field(default=4, ge=1, description="Requests in flight at once.")
    retry_mode: Literal["adaptive", "standard"] = Field(
        default="adaptive",
        description="botocore's retry mode; adaptive also slows this client down while it is throttled.",
    )
    max_attempts: int = Field(
        default=5, ge=1, description="Attempts per request, the first included, in botocore's retry mode."
    )
    extra_retries: int = Field(
        default=3,
        ge=0,
        description="Further tries, after a jittered exponential pause, when botocore gives up on a "
        "throttled, failed or timed-out request.",
    )
    backoff_base_s: float = Field(
        default=2.0, ge=0, description="Longest pause before the first extra retry; it doubles each time."
    )
    backoff_max_s: float = Field(default=60.0, ge=0, description="Longest pause between two extra retries.")
    read_timeout_s: float = Field(
        default=60.0, gt=0, description="Seconds to wait for an answer before the request is retried."
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
    malformed_retries: int = Field(
        default=1,
        ge=0,
        description="Times a text is asked again when the answer is not a JSON list; after that it is "
        "cached as unusable.",
    )
    max_run_tokens: int = Field(
        default=0, ge=0, description="Input plus output tokens one run may spend (0: no limit)."
    )
    max_run_usd: float = Field(
        default=20.0, ge=0, description="Estimated dollars one run may spend (0: no limit)."
    )

    _client: Any = PrivateAttr(default=None)

    def use_client(self, client: Any) -> None:
        """Send requests through this bedrock-runtime client (e.g. one wrapped in a botocore Stubber)."""
        self._client = client

    def client(self) -> Any:
        """The bedrock-runtime client, created on first use from the standard AWS credential chain."""
        if self._client is None:
            self._client = boto3.client(
                "bedrock-runtime",
                region_name=self.region_name,
                endpoint_url=self.endpoint_url,
                config=Config(
                    retries={"mode": self.retry_mode, "total_max_attempts": self.max_attempts},
                    read_timeout=self.read_timeout_s,
                    connect_timeout=self.connect_timeout_s,
                    max_pool_connections=max(10, self.max_concurrency),
                ),
            )
        return self._client

    def _cache_identity(self) -> tuple[str, str, str]:
        return "bedrock", self.model_id, self.prompt_version

    def _outbound_text(self, text: str) -> str:
        return scrub_pii(text)

    def _estimated_cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1e6

    def _send(self, keys: dict[str, CacheKey], n: int, cache: ParaphraseCache, log: logging.Logger) -> _Tally:
        self.client()  # created once here, as creating a boto3 client is not thread-safe
        return _Dispatch(self, keys, n, cache, log).run()

    def _worst_case(self, text: str, n: int) -> _Cost:
        """The most one request for this text can cost: a token per prompt byte, and a full answer."""
        input_tokens = len(build_prompt(text, n, self.prompt_version).encode()) + _MESSAGE_OVERHEAD_TOKENS
        return _Cost(
            tokens=input_tokens + self.max_tokens,
            usd=self._estimated_cost_usd(input_tokens, self.max_tokens),
        )

    def _exchange(self, text: str, n: int, log: logging.Logger) -> _Exchange:
        """One answer for a text, asking again after a pause while botocore gives up on transient errors."""
        prompt = build_prompt(text, n, self.prompt_version)
        retry = 0
        while True:
            try:
                exchange = self._request(prompt)
            except (ClientError, BotoCoreError) as error:
                if retry == self.extra_retries or not _is_transient(error):
                    raise self._explain(error) from error
                pause_s = random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**retry))
                retry += 1
                log.warning(
                    "Bedrock request for %s failed (%s) after botocore's retries; trying again in %.2f s "
                    "(extra retry %d of %d).",
                    self.model_id,
                    _error_name(error),
                    pause_s,
                    retry,
                    self.extra_retries,
                )
                time.sleep(pause_s)
            else:
                return replace(exchange, retries=retry)

    def _request(self, prompt: str) -> _Exchange:
        if self.api == "invoke_model":
            return self._invoke_model(prompt)
        response = self.client().converse(
            modelId=self.model_id,
            messages=[{"role": "user", "content": [{"text": prompt}]}],
            inferenceConfig={"maxTokens": self.max_tokens, "temperature": self.temperature},
        )
        usage = response.get("usage", {})
        return _Exchange(
            answer=_converse_text(response),
            input_tokens=usage.get("inputTokens", 0),
            output_tokens=usage.get("outputTokens", 0),
        )

    def _invoke_model(self, prompt: str) -> _Exchange:
        body = {
            "anthropic_version": ANTHROPIC_VERSION,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        }
        response = self.client().invoke_model(
            modelId=self.model_id,
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
        )
        answer = _json_object(response["body"].read())
        usage = answer.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return _Exchange(
            answer=_messages_text(answer),
            input_tokens=usage.get("input_tokens", 0),
            output_tokens=usage.get("output_tokens", 0),
        )

    def _explain(self, error: ClientError | BotoCoreError) -> BedrockParaphraseError:
        where = f"model '{self.model_id}' in region '{self.region_name}'"
        tries = self.max_attempts * (self.extra_retries + 1)
        if isinstance(error, NoCredentialsError):
            return BedrockParaphraseError(
                f"No AWS credentials were found for Bedrock ({where}). Provide them through the standard AWS "
                "chain: AWS_PROFILE or ~/.aws/credentials, environment variables, SSO, or an instance role."
            )
        if isinstance(error, ReadTimeoutError):
            return BedrockParaphraseError(
                f"Bedrock did not answer within read_timeout_s={self.read_timeout_s:g} s for {where}, "
                f"in {tries} tries. Raise read_timeout_s if the model needs longer, or re-run later."
            )
        if not isinstance(error, ClientError):
            return BedrockParaphraseError(
                f"Could not call Bedrock for {where}: {error}. Check network access to the bedrock-runtime "
                f"endpoint ({self.endpoint_url or 'the default for the region'})."
            )
        code = error.response.get("Error", {}).get("Code", "Unknown")
        message = error.response.get("Error", {}).get("Message", "")
        if code == "AccessDeniedException":
            return BedrockParaphraseError(
                f"Bedrock denied access to {where} ({code}: {message}). The AWS identity in use needs the "
                "bedrock:InvokeModel permission on this model, and the model must be enabled under "
                f"'Model access' in the Bedrock console for {self.region_name}."
            )
        if code in {"ResourceNotFoundException", "ValidationException"}:
            return BedrockParaphraseError(
                f"Bedrock rejected the request for {where} ({code}: {message}). Check that model_id names a "
                f"model or inference profile available in {self.region_name} that supports api="
                f"'{self.api}', and that max_tokens and temperature are within that model's limits."
            )
        if code == "ThrottlingException":
            return BedrockParaphraseError(
                f"Bedrock kept throttling requests for {where} ({code}: {message}), in {tries} tries. Lower "
                f"max_concurrency (now {self.max_concurrency}), ask for a higher on-demand "
                "requests-per-minute quota for this model in Service Quotas, or re-run later."
            )
        if _is_transient(error):
            return BedrockParaphraseError(
                f"Bedrock kept failing for {where} ({code}: {message}), in {tries} tries. The fault is on "
                "the service's side: re-run later."
            )
        return BedrockParaphraseError(f"Bedrock call for {where} failed ({code}: {message}).")

    def _budget_message(self, done: int, total: int, budget: "_Budget", next_request: _Cost) -> str:
        limits = ", ".join(
            [
                f"max_run_tokens={self.max_run_tokens:,}" if self.max_run_tokens else "no token limit",
                f"max_run_usd=${self.max_run_usd:g}" if self.max_run_usd else "no dollar limit",
            ]
        )
        return (
            f"Stopped sending to Bedrock ({self.model_id}) at this run's budget ({limits}): {done}/{total} "
            f"new texts paraphrased, {total - done} not sent; this run spent {budget.spent.tokens:,} tokens, "
            f"about ${budget.spent.usd:.4f}. The next request could cost up to {next_request.tokens:,} "
            f"tokens, about ${next_request.usd:.4f}, which the budget no longer covers. The {done} answers "
            "are cached and will not be paid for again: re-run to go on from here with a fresh budget, or "
            "raise max_run_tokens / max_run_usd to send more in one run."
        )


@dataclass
class _Budget:
    """One run's spend, and what requests in flight may still add: their worst case, until they answer."""

    max_tokens: int
    max_usd: float
    spent: _Cost = _Cost(0, 0.0)
    reserved: _Cost = _Cost(0, 0.0)

    def covers(self, cost: _Cost) -> bool:
        tokens = self.spent.tokens + self.reserved.tokens + cost.tokens
        usd = self.spent.usd + self.reserved.usd + cost.usd
        within_tokens = not self.max_tokens or tokens <= self.max_tokens
        return within_tokens and (not self.max_usd or usd <= self.max_usd)

    def reserve(self, cost: _Cost) -> None:
        self.reserved = _Cost(self.reserved.tokens + cost.tokens, self.reserved.usd + cost.usd)

    def settle(self, reserved: _Cost, spent: _Cost) -> None:
        self.reserved = _Cost(self.reserved.tokens - reserved.tokens, self.reserved.usd - reserved.usd)
        self.spent = _Cost(self.spent.tokens + spent.tokens, self.spent.usd + spent.usd)


@dataclass(frozen=True)
class _Request:
    text: str
    asked_before: int
    worst_case: _Cost


class _Dispatch:
    """One run's requests to Bedrock: a bounded number in flight, answers committed as they arrive, and
    nothing sent that the budget might not cover. On a failure or a budget stop it sends nothing more,
    waits for the requests in flight (they are paid for), commits their answers, then raises."""

    def __init__(
        self,
        paraphraser: BedrockParaphraser,
        keys: dict[str, CacheKey],
        n: int,
        cache: ParaphraseCache,
        log: logging.Logger,
    ) -> None:
        self.paraphraser = paraphraser
        self.keys = keys
        self.n = n
        self.cache = cache
        self.log = log
        self.tally = _Tally()
        self.budget = _Budget(max_tokens=paraphraser.max_run_tokens, max_usd=paraphraser.max_run_usd)
        self.queue: deque[tuple[str, int]] = deque((text, 0) for text in keys)
        self.in_flight: dict[Future[_Exchange], _Request] = {}
        self.uncommitted: dict[CacheKey, list[str]] = {}
        self.failure: BedrockParaphraseError | None = None
        self.unaffordable: _Cost | None = None

    def run(self) -> _Tally:
        try:
            with ThreadPoolExecutor(self.paraphraser.max_concurrency, thread_name_prefix="bedrock") as pool:
                self._submit_what_fits(pool)
                while self.in_flight:
                    done, _ = wait(self.in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        self._collect(future)
                    self._submit_what_fits(pool)
        finally:
            self._keep_answers_in_flight()
            self._commit()
        self._raise_if_stopped()
        return self.tally

    def _submit_what_fits(self, pool: ThreadPoolExecutor) -> None:
        while self.queue and len(self.in_flight) < self.paraphraser.max_concurrency and not self._stopped():
            text, asked_before = self.queue[0]
            worst_case = self.paraphraser._worst_case(text, self.n)
            if not self.budget.covers(worst_case):
                if not self.in_flight:  # else their answers may free enough of what they reserved
                    self.unaffordable = worst_case
                return
            self.queue.popleft()
            self.budget.reserve(worst_case)
            future = pool.submit(self.paraphraser._exchange, text, self.n, self.log)
            self.in_flight[future] = _Request(text, asked_before, worst_case)

    def _collect(self, future: Future[_Exchange]) -> None:
        request = self.in_flight.pop(future)
        try:
            exchange = future.result()
        except BedrockParaphraseError as error:
            self.budget.settle(request.worst_case, _Cost(0, 0.0))
            self.failure = self.failure or error
            return
        spent = self.paraphraser._estimated_cost_usd(exchange.input_tokens, exchange.output_tokens)
        self.budget.settle(request.worst_case, _Cost(exchange.input_tokens + exchange.output_tokens, spent))
        self.tally.input_tokens += exchange.input_tokens
        self.tally.output_tokens += exchange.output_tokens
        self.tally.retries += exchange.retries
        if is_list_answer(exchange.answer):
            self._keep(request.text, exchange.answer)
        elif request.asked_before < self.paraphraser.malformed_retries:
            self.log.warning("Bedrock's answer was not a JSON list; asking again for one text.")
            self.tally.retries += 1
            self.queue.appendleft((request.text, request.asked_before + 1))
        else:
            self.log.warning(
                "Bedrock's answer was not a JSON list %d times for one text; it is cached as unusable.",
                request.asked_before + 1,
            )
            self.tally.unusable += 1
            self._keep(request.text, exchange.answer)

    def _keep_answers_in_flight(self) -> None:
        """After an interruption (Ctrl-C, a Dagster run terminated), the pool has let running requests
        finish: their answers are paid for, so they are kept too."""
        for future in list(self.in_flight):
            if future.done() and not future.cancelled() and future.exception() is None:
                self._collect(future)

    def _keep(self, text: str, answer: str) -> None:
        paraphrases, dropped = parse_paraphrases(answer, source=text, n=self.n)
        self.tally.answers[text] = paraphrases
        self.tally.dropped += dropped
        self.uncommitted[self.keys[text]] = paraphrases
        if len(self.uncommitted) >= self.paraphraser.batch_size:
            self._commit()
        done, total = len(self.tally.answers), len(self.keys)
        if done == total or done % max(1, total // _PROGRESS_STEPS) == 0:
            self.paraphraser._log_progress(self.log, done, total, self.tally)

    def _commit(self) -> None:
        if self.uncommitted:
            self.cache.put_many(self.uncommitted)
            self.uncommitted = {}

    def _stopped(self) -> bool:
        return self.failure is not None or self.unaffordable is not None

    def _raise_if_stopped(self) -> None:
        done, total = len(self.tally.answers), len(self.keys)
        if self.failure is not None:
            raise BedrockParaphraseError(
                f"{self.failure} {done}/{total} new texts were paraphrased and cached before this; a re-run "
                "sends only the rest."
            ) from self.failure
        if self.unaffordable is not None:
            message = self.paraphraser._budget_message(done, total, self.budget, self.unaffordable)
            self.log.error(message)
            raise BedrockBudgetExceeded(message)


def _is_transient(error: ClientError | BotoCoreError) -> bool:
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = error.response.get("Error", {}).get("Code", "")
        return code in _TRANSIENT_ERROR_CODES or status == 429 or status >= 500
    return isinstance(error, _TRANSIENT_TRANSPORT_ERRORS)


def _error_name(error: ClientError | BotoCoreError) -> str:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code", "Unknown")
    return type(error).__name__


def _converse_text(response: dict[str, Any]) -> str:
    """The text of the first text block of a Converse answer; an answer with none parses as unusable."""
    content = response.get("output", {}).get("message", {}).get("content", [])
    return next((block["text"] for block in content if "text" in block), "")


def _json_object(body: bytes) -> dict[str, Any]:
    """An InvokeModel body as a dict; one that is not a JSON object reads as empty, hence unusable."""
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _messages_text(answer: dict[str, Any]) -> str:
    """The text of the first text block of an Anthropic messages answer."""
    content = answer.get("content")
    blocks = content if isinstance(content, list) else []
    return next(
        (block["text"] for block in blocks if isinstance(block, dict) and isinstance(block.get("text"), str)),
        "",
    )
