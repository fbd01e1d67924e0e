"""Claude on AWS Bedrock: the one client every asset that calls Claude uses.

Behaviour lives in ``manga_distill_assets/bedrock/`` (budget, prices, dispatch, pacing, parsing); this
resource is its configuration and the boto3 client. Credentials come only from the standard AWS chain
(environment, profile, SSO, instance role); they are never fields of this resource and never logged.
"""

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

import boto3
from botocore.config import Config
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from manga_distill_assets.bedrock.answer_cache import AnswerCache
from manga_distill_assets.bedrock.budget import RunBudget
from manga_distill_assets.bedrock.cost import Prices, prices_for
from manga_distill_assets.bedrock.dispatch import Dispatch, DispatchSettings
from manga_distill_assets.bedrock.errors import BedrockBudgetExceeded, BedrockError, Endpoint, explain
from manga_distill_assets.bedrock.pacing import Backoff
from manga_distill_assets.bedrock.requests import ChatAnswer, ChatRequest, ChatRun
from manga_distill_assets.bedrock.responses import (
    converse_answer,
    converse_arguments,
    invoke_model_answer,
    invoke_model_arguments,
)
from manga_distill_assets.data.pii import scrub_pii

_LOGGER = logging.getLogger(__name__)


class BedrockClaude(ConfigurableResource):
    """Sends chat requests to Claude on Bedrock, within a run budget, from a cache where possible.

    ``chat`` sends each request not answered before (same model, system prompt and key) with up to
    ``max_concurrency`` in flight, commits every answer to the cache the moment it arrives, and returns what
    came back. A request is sent only while the budget covers its worst case (see ``bedrock/budget.py``:
    timed-out requests count at their worst case for good), so Bedrock's bill for one ``chat`` call (or for a
    shared ``RunBudget``) stays within ``max_run_usd`` and ``max_run_tokens``. When the budget is reached,
    sending stops, what arrived is kept, and ``BedrockBudgetExceeded`` says how far it got.

    Botocore makes one attempt per send; throttling, 5xx errors, timeouts and unreadable answers are asked
    again here, up to ``max_retries`` times, under a send-rate cap that falls when throttling is the limit
    and recovers when it eases (see ``bedrock/pacing.py``).

    A client set with ``use_client`` lives on this instance only: Dagster re-creates a resource from its
    config for each run, so code that materialises assets overrides ``client()`` in a subclass instead.
    """

    model_id: str = Field(
        default="anthropic.claude-3-5-sonnet-20241022-v2:0",
        description="Bedrock model id or inference profile id; it must be enabled in the region.",
    )
    api: Literal["converse", "invoke_model"] = Field(
        default="converse",
        description="converse: the Converse API; invoke_model: InvokeModel with an Anthropic messages body.",
    )
    region_name: str = Field(default="us-east-1", description="AWS region of the Bedrock endpoint.")
    endpoint_url: str | None = Field(
        default=None, description="Overrides the bedrock-runtime endpoint, e.g. a VPC endpoint."
    )
    cache_path: str = Field(
        description="SQLite file that keeps every answer, so no request is paid for twice across runs."
    )
    temperature: float = Field(
        default=0.0, ge=0, le=1, description="Sampling temperature; 0 makes answers repeatable."
    )
    max_concurrency: int = Field(default=4, ge=1, description="Requests in flight at once.")
    max_run_usd: float = Field(
        default=20.0, ge=0, description="Dollars one run may be billed, at worst (0: no limit)."
    )
    max_run_tokens: int = Field(
        default=0, ge=0, description="Input plus output tokens one run may be billed, at worst (0: no limit)."
    )
    input_usd_per_mtok: float | None = Field(
        default=None, ge=0, description="Price of a million input tokens; default: the model's list price."
    )
    output_usd_per_mtok: float | None = Field(
        default=None, ge=0, description="Price of a million output tokens; default: the model's list price."
    )
    read_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds to wait for an answer. A request that times out may still be billed: it counts "
        "at its worst case, and is asked again.",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
    max_retries: int = Field(
        default=6, ge=0, description="Times one request is asked again after throttling, a 5xx or a timeout."
    )
    backoff_base_s: float = Field(
        default=0.5, ge=0, description="Longest pause before the first retry; it doubles with each retry."
    )
    backoff_max_s: float = Field(default=20.0, ge=0, description="Longest pause before any retry.")

    _client: Any = PrivateAttr(default=None)

    def use_client(self, client: Any) -> None:
        """Send requests through this bedrock-runtime client (e.g. one wrapped in a botocore Stubber)."""
        self._client = client

    def client(self) -> Any:
        """The bedrock-runtime client, created on first use from the standard AWS credential chain.

        ``total_max_attempts=1``: botocore must not re-send a timed-out request behind the budget's back.
        """
        if self._client is None:
            self._client = boto3.client(
                "bedrock-runtime",
                region_name=self.region_name,
                endpoint_url=self.endpoint_url,
                config=Config(
                    retries={"mode": "standard", "total_max_attempts": 1},
                    read_timeout=self.read_timeout_s,
                    connect_timeout=self.connect_timeout_s,
                    max_pool_connections=max(10, self.max_concurrency),
                ),
            )
        return self._client

    def prices(self) -> Prices:
        return prices_for(self.model_id, self.input_usd_per_mtok, self.output_usd_per_mtok)

    def new_budget(self) -> RunBudget:
        """A fresh budget of this resource's limits; pass one to several ``chat`` calls to share it."""
        return RunBudget(max_tokens=self.max_run_tokens, max_usd=self.max_run_usd)

    def chat(
        self,
        requests: Sequence[ChatRequest],
        log: logging.Logger | None = None,
        *,
        budget: RunBudget | None = None,
        on_answer: Callable[[ChatAnswer], None] | None = None,
    ) -> ChatRun:
        """Answers to the requests (keys must be distinct): cached ones first, then sent ones as they arrive.

        ``on_answer`` sees every answer, cached or new, in this thread, after it is committed to the cache.
        Raises ``BedrockBudgetExceeded`` when the budget stops the run and ``BedrockError`` when no request
        can succeed (access, credentials, model id); both after keeping every answer that arrived. Requests
        that failed on their own (retries exhausted, rejected by Bedrock) are in ``ChatRun.failed``.
        """
        log = log or _LOGGER
        outbound = [_scrubbed(request) for request in requests]
        if len({request.key for request in outbound}) != len(outbound):
            raise ValueError("Each ChatRequest in one chat call needs its own key; some keys repeat.")
        prices, budget = self.prices(), budget or self.new_budget()
        with AnswerCache(self.cache_path, self.model_id) as cache:
            cached = cache.get_many(outbound)
            for answer in cached.values():
                (on_answer or _ignore)(answer)
            to_send = [request for request in outbound if request.key not in cached]
            log.info(
                "Claude (%s): %d requests, %d from the cache, %d to send; budget %s.",
                self.model_id,
                len(outbound),
                len(cached),
                len(to_send),
                budget.describe_limits(),
            )
            by_key = {request.key: request for request in to_send}

            def keep(answer: ChatAnswer) -> None:
                cache.put(by_key[answer.key], answer)
                (on_answer or _ignore)(answer)

            if to_send:
                self.client()  # created once here: creating a boto3 client is not thread-safe
            settings = DispatchSettings(
                max_concurrency=self.max_concurrency,
                max_retries=self.max_retries,
                backoff=Backoff(self.backoff_base_s, self.backoff_max_s),
            )
            result = Dispatch(self._send, self._explain, keep, budget, prices, settings, log).run(to_send)
        run = ChatRun(
            answers=cached | result.answers,
            failed=result.failed,
            sent=result.sent,
            cached=len(cached),
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            spent_usd=prices.spend(result.input_tokens, result.output_tokens).usd,
            worst_case_usd=budget.worst_case.usd,
            retries=result.retries,
            abandoned=result.abandoned,
        )
        answered = len(result.answers)
        if result.fatal is not None:
            raise BedrockError(
                f"{result.fatal} {answered}/{len(to_send)} requests were answered and cached before this; a "
                "re-run sends only the rest."
            )
        if result.unaffordable is not None:
            message = (
                f"Stopped sending to Bedrock ({self.model_id}) at the run's budget "
                f"({budget.describe_limits()}): {answered}/{len(to_send)} requests answered, "
                f"{len(to_send) - answered - len(result.failed)} not sent; billed {budget.spent.tokens:,} "
                f"tokens, about ${budget.spent.usd:.4f}, and at most {budget.worst_case.tokens:,} tokens, "
                f"${budget.worst_case.usd:.4f}, counting {result.abandoned} abandoned requests at their "
                f"worst case. The next request could cost up to {result.unaffordable.tokens:,} tokens, "
                f"about ${result.unaffordable.usd:.4f}, which the budget no longer covers. The {answered} "
                "answers are cached and will not be paid for again: re-run to go on with a fresh budget, "
                "or raise max_run_tokens / max_run_usd."
            )
            log.error(message)
            raise BedrockBudgetExceeded(message, run)
        return run

    def _send(self, request: ChatRequest) -> ChatAnswer:
        """One attempt, in a worker thread."""
        if self.api == "invoke_model":
            response = self.client().invoke_model(
                **invoke_model_arguments(self.model_id, request, self.temperature)
            )
            return invoke_model_answer(request.key, response["body"].read())
        response = self.client().converse(**converse_arguments(self.model_id, request, self.temperature))
        return converse_answer(request.key, response)

    def _explain(self, error: BaseException, tries: int) -> str:
        endpoint = Endpoint(
            model_id=self.model_id,
            region_name=self.region_name,
            api=self.api,
            endpoint_url=self.endpoint_url,
            read_timeout_s=self.read_timeout_s,
            max_concurrency=self.max_concurrency,
        )
        return explain(error, endpoint, tries)


def _scrubbed(request: ChatRequest) -> ChatRequest:
    """No customer text leaves the machine, or reaches the cache, before its PII is replaced."""
    return ChatRequest(request.key, scrub_pii(request.system), scrub_pii(request.user), request.max_tokens)


def _ignore(answer: ChatAnswer) -> None:
    """The default ``on_answer``: the answers come back in the ``ChatRun`` anyway."""
