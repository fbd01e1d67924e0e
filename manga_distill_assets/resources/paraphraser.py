"""Paraphrasers: the offline rule-based one, and Claude on AWS Bedrock, behind one cached interface.

Paid answers are precious, so every backend shares the same cache logic: a text goes to the backend only if
it was never sent before with the same backend, model, prompt version and number of paraphrases, and answers
are committed to the cache as they arrive, so a run killed half-way has lost nothing it paid for.
"""

import hashlib
import logging
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from dagster import ConfigurableResource
from pydantic import Field

from manga_distill_assets.bedrock.budget import RunBudget
from manga_distill_assets.bedrock.errors import BedrockError
from manga_distill_assets.bedrock.requests import ChatAnswer, ChatRequest
from manga_distill_assets.data.paraphrase import (
    OFFLINE_RULES_VERSION,
    build_prompt,
    is_list_answer,
    offline_paraphrases,
    parse_paraphrases,
)
from manga_distill_assets.data.pii import scrub_pii
from manga_distill_assets.resources.claude import BedrockClaude
from manga_distill_assets.resources.paraphrase_cache import CacheKey, ParaphraseCache

_LOGGER = logging.getLogger(__name__)

# Progress is logged about this many times per run, whatever its size.
_PROGRESS_STEPS = 20


@dataclass(frozen=True)
class ParaphraseBatch:
    """The paraphrases of one call, and what the call cost; cached texts cost nothing.

    ``retries`` counts requests sent again (after throttling, a 5xx, a timeout, or for an answer that was
    not a JSON list). ``unusable`` counts texts whose every answer
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


class BedrockParaphraser(Paraphraser):
    """Claude on AWS Bedrock, through the shared ``BedrockClaude`` client (its budget, retries and cache).

    PII is scrubbed before a text leaves the machine, and this cache stores only the scrubbed form.
    Answers are validated: one that is not a JSON list is asked for again up to ``malformed_retries`` times
    (under a new request key, so the client's cache does not serve the bad answer back) and then cached as
    unusable (no paraphrases), so it is not paid for again; a list with too few good items (wrong count,
    copies of the source, too short or too long) keeps the good ones, counts the rest as dropped, and is not
    asked again. Change ``prompt_version`` to ask again for every text. All the requests of one
    ``paraphrase`` call share one budget of the client's ``max_run_usd`` / ``max_run_tokens``.
    """

    claude: BedrockClaude = Field(description="The Bedrock client every asset that calls Claude shares.")
    prompt_version: str = Field(
        default="v1", description="Names the prompt wording; a new version asks again for every text."
    )
    max_tokens: int = Field(default=512, ge=1, description="Largest answer, in tokens, per text.")
    batch_size: int = Field(
        default=32,
        description="Parsed answers committed to this cache together. The Claude client has already "
        "committed each paid answer as it arrived, so a run killed mid-batch re-reads them for free.",
    )
    malformed_retries: int = Field(
        default=1,
        ge=0,
        description="Times a text is asked again when the answer is not a JSON list; after that it is "
        "cached as unusable.",
    )

    def _cache_identity(self) -> tuple[str, str, str]:
        return "bedrock", self.claude.model_id, self.prompt_version

    def _outbound_text(self, text: str) -> str:
        return scrub_pii(text)

    def _estimated_cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return self.claude.prices().spend(input_tokens, output_tokens).usd

    def _send(self, keys: dict[str, CacheKey], n: int, cache: ParaphraseCache, log: logging.Logger) -> _Tally:
        return _ParaphraseRounds(self, keys, n, cache, log).run()

    def _request(self, text: str, n: int, asked_before: int) -> ChatRequest:
        digest = hashlib.sha256(text.encode()).hexdigest()
        return ChatRequest(
            key=f"paraphrase/{self.prompt_version}/n={n}/ask={asked_before}/{digest}",
            system="",
            user=build_prompt(text, n, self.prompt_version),
            max_tokens=self.max_tokens,
        )


class _ParaphraseRounds:
    """The texts go to Claude in rounds sharing one budget: the first asks every text, each later one asks
    again only the texts whose answer was not a JSON list. Answers reach the cache as they arrive."""

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
        self.asked_before = dict.fromkeys(keys, 0)
        self.uncommitted: dict[CacheKey, list[str]] = {}
        self.failures: dict[str, str] = {}

    def run(self) -> _Tally:
        budget = self.paraphraser.claude.new_budget()
        pending = list(self.keys)
        while pending:
            pending = self._round(pending, budget)
        if self.failures:
            done, total = len(self.tally.answers), len(self.keys)
            raise BedrockError(
                f"{next(iter(self.failures.values()))} {done}/{total} new texts were paraphrased and cached "
                "before this; a re-run sends only the rest."
            )
        return self.tally

    def _round(self, texts: list[str], budget: RunBudget) -> list[str]:
        """Ask Claude about the texts; the texts to ask again come back."""
        requests = [self.paraphraser._request(text, self.n, self.asked_before[text]) for text in texts]
        texts_by_key = {request.key: text for request, text in zip(requests, texts, strict=True)}
        again: list[str] = []
        try:
            run = self.paraphraser.claude.chat(
                requests,
                self.log,
                budget=budget,
                on_answer=lambda answer: self._answered(texts_by_key[answer.key], answer, again),
            )
        finally:
            self._commit()
        self.tally.retries += run.retries
        self.failures |= {texts_by_key[key]: reason for key, reason in run.failed.items()}
        for text in again:
            self.asked_before[text] += 1
        return again

    def _answered(self, text: str, answer: ChatAnswer, again: list[str]) -> None:
        if not answer.cached:
            self.tally.input_tokens += answer.input_tokens
            self.tally.output_tokens += answer.output_tokens
        if is_list_answer(answer.text):
            self._keep(text, answer.text)
        elif self.asked_before[text] < self.paraphraser.malformed_retries:
            self.log.warning("Bedrock's answer was not a JSON list; asking again for one text.")
            self.tally.retries += 1
            again.append(text)
        else:
            self.log.warning(
                "Bedrock's answer was not a JSON list %d times for one text; it is cached as unusable.",
                self.asked_before[text] + 1,
            )
            self.tally.unusable += 1
            self._keep(text, answer.text)

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
