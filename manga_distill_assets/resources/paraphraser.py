"""Paraphrasers: the offline rule-based one, and Claude on AWS Bedrock, behind one cached interface.

Paid answers are precious, so every backend shares the same cache logic: a text goes to the backend only if
it was never sent before with the same backend, model, prompt version and number of paraphrases, and each
batch of answers is committed to the cache before the next batch is sent.
"""

import logging
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from manga_distill_assets.data.paraphrase import (
    OFFLINE_RULES_VERSION,
    build_prompt,
    offline_paraphrases,
    parse_paraphrases,
)
from manga_distill_assets.data.pii import scrub_pii
from manga_distill_assets.resources.paraphrase_cache import CacheKey, ParaphraseCache

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParaphraseBatch:
    """The paraphrases of one call, and what the call cost; cached texts cost nothing."""

    paraphrases: dict[str, list[str]]
    sent: int
    cached: int
    dropped: int
    input_tokens: int
    output_tokens: int
    estimated_cost_usd: float


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

    def add(self, answers: dict[str, list[str]], results: Sequence[BackendAnswer]) -> None:
        self.answers |= answers
        self.dropped += sum(result.dropped for result in results)
        self.input_tokens += sum(result.input_tokens for result in results)
        self.output_tokens += sum(result.output_tokens for result in results)


class BedrockParaphraseError(RuntimeError):
    """A Bedrock call failed; the message names the model, the region and what to change."""


class Paraphraser(ConfigurableResource):
    """Paraphrases texts through a backend, asking it only for texts it has never been asked about."""

    cache_path: str = Field(
        description="SQLite file that keeps every answer; reused across runs so no text is paid for twice."
    )
    batch_size: int = Field(
        default=32,
        description="Texts sent between two cache commits; a run killed mid-way loses at most one batch.",
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
        )

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
            log.info(
                "Paraphrased %d/%d new texts; %d paraphrases dropped, %d input and %d output tokens, "
                "about $%.4f so far.",
                start + len(batch),
                len(texts),
                tally.dropped,
                tally.input_tokens,
                tally.output_tokens,
                self._estimated_cost_usd(tally.input_tokens, tally.output_tokens),
            )
        return tally

    @abstractmethod
    def _cache_identity(self) -> tuple[str, str, str]:
        """(backend, model id, prompt version): what, besides the text and n, decides an answer."""

    @abstractmethod
    def _paraphrase_batch(self, texts: Sequence[str], n: int) -> list[BackendAnswer]:
        """One answer per text, in order; raise rather than return a partial batch."""

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


class OfflineParaphraser(Paraphraser):
    """Rule-based paraphrases made on this machine: free, deterministic, and needing no credentials."""

    seed: int = Field(default=0, description="Picks which of the rule-based variants each text gets.")

    def _cache_identity(self) -> tuple[str, str, str]:
        return "offline", f"rules-{OFFLINE_RULES_VERSION}", f"seed-{self.seed}"

    def _paraphrase_batch(self, texts: Sequence[str], n: int) -> list[BackendAnswer]:
        answers = []
        for text in texts:
            paraphrases = offline_paraphrases(text, n=n, seed=self.seed)
            answers.append(BackendAnswer(paraphrases=paraphrases, dropped=n - len(paraphrases)))
        return answers


class BedrockParaphraser(Paraphraser):
    """Claude on AWS Bedrock through the Converse API.

    Credentials come only from the standard AWS chain (environment, profile, SSO, instance role); they are
    never fields of this resource and never logged. PII is scrubbed before a text leaves the machine, and
    the cache stores only the scrubbed form. An unusable answer is cached as an empty list, so it is not
    paid for again; change ``prompt_version`` to ask again.

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
    prompt_version: str = Field(
        default="v1", description="Names the prompt wording; a new version asks again for every text."
    )
    max_tokens: int = Field(default=512, description="Largest answer, in tokens, per text.")
    temperature: float = Field(
        default=0.8, description="Sampling temperature; higher gives more varied wording."
    )
    input_usd_per_mtok: float = Field(default=3.0, description="Price of a million input tokens, in USD.")
    output_usd_per_mtok: float = Field(default=15.0, description="Price of a million output tokens, in USD.")
    batch_size: int = Field(
        default=1,
        description="Texts sent between two cache commits; 1 commits each paid answer as soon as it arrives.",
    )

    _client: Any = PrivateAttr(default=None)

    def use_client(self, client: Any) -> None:
        """Send requests through this bedrock-runtime client (e.g. one wrapped in a botocore Stubber)."""
        self._client = client

    def client(self) -> Any:
        """The bedrock-runtime client, created on first use from the standard AWS credential chain."""
        if self._client is None:
            self._client = boto3.client(
                "bedrock-runtime", region_name=self.region_name, endpoint_url=self.endpoint_url
            )
        return self._client

    def _cache_identity(self) -> tuple[str, str, str]:
        return "bedrock", self.model_id, self.prompt_version

    def _outbound_text(self, text: str) -> str:
        return scrub_pii(text)

    def _estimated_cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1e6

    def _paraphrase_batch(self, texts: Sequence[str], n: int) -> list[BackendAnswer]:
        return [self._paraphrase_one(text, n) for text in texts]

    def _paraphrase_one(self, text: str, n: int) -> BackendAnswer:
        prompt = build_prompt(text, n, self.prompt_version)
        try:
            response = self.client().converse(
                modelId=self.model_id,
                messages=[{"role": "user", "content": [{"text": prompt}]}],
                inferenceConfig={"maxTokens": self.max_tokens, "temperature": self.temperature},
            )
        except (ClientError, BotoCoreError) as error:
            raise self._explain(error) from error
        paraphrases, dropped = parse_paraphrases(_answer_text(response), source=text, n=n)
        usage = response.get("usage", {})
        return BackendAnswer(
            paraphrases=paraphrases,
            dropped=dropped,
            input_tokens=usage.get("inputTokens", 0),
            output_tokens=usage.get("outputTokens", 0),
        )

    def _explain(self, error: ClientError | BotoCoreError) -> BedrockParaphraseError:
        where = f"model '{self.model_id}' in region '{self.region_name}'"
        if isinstance(error, NoCredentialsError):
            return BedrockParaphraseError(
                f"No AWS credentials were found for Bedrock ({where}). Provide them through the standard AWS "
                "chain: AWS_PROFILE or ~/.aws/credentials, environment variables, SSO, or an instance role."
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
                f"model or inference profile available in {self.region_name} that supports the Converse API, "
                "and that max_tokens and temperature are within that model's limits."
            )
        return BedrockParaphraseError(f"Bedrock call for {where} failed ({code}: {message}).")


def _answer_text(response: dict[str, Any]) -> str:
    """The text of the first text block of a Converse answer; an answer with none parses as unusable."""
    content = response.get("output", {}).get("message", {}).get("content", [])
    return next((block["text"] for block in content if "text" in block), "")
