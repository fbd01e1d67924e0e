"""Claude on Bedrock through the real boto3 client, against the Bedrock-compatible test server.

Every test runs with short timeouts and millisecond backoffs; the fault scripts are what make each one say
something about throttling, failures, timeouts, bad answers or the budget.
"""

import json
import logging
import re
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest

from manga_distill_assets.bedrock.errors import BedrockBudgetExceeded, BedrockError
from manga_distill_assets.data.paraphrase import build_prompt
from manga_distill_assets.resources.claude import BedrockClaude
from manga_distill_assets.resources.paraphraser import BedrockParaphraser
from tests.bedrock_server import BedrockServer, Fault, FaultKind, paraphrases_for

MODEL_ID = "anthropic.claude-3-5-sonnet-20241022-v2:0"
SECRET_ACCESS_KEY = "test-secret-key-never-shown"
ACCESS_KEY_ID = "testing-key-never-shown"
ORDER = "Where is my order?"
STOCK = "Is One Piece volume 105 in stock?"
TEXTS = [
    ORDER,
    STOCK,
    "Can you recommend a manga like Berserk?",
    "I want to return volume 2 of Spy x Family.",
    "When does Chainsaw Man 17 come out?",
    "Do you ship to Canada?",
]


PARAPHRASER_FIELDS = {"max_tokens", "malformed_retries", "prompt_version", "batch_size"}


def _paraphraser(server: BedrockServer, tmp_path: Path, **settings: Any) -> BedrockParaphraser:
    """A paraphraser pointed at the test server, quick to give up and quick to retry; ``settings`` go to the
    paraphraser or to its Claude client, whichever has the field."""
    fast = {
        "cache_path": str(tmp_path / "claude.sqlite"),
        "endpoint_url": server.endpoint,
        "max_retries": 0,
        "backoff_base_s": 0.001,
        "read_timeout_s": 2.0,
        "connect_timeout_s": 2.0,
        "max_concurrency": 2,
    }
    own = {name: value for name, value in settings.items() if name in PARAPHRASER_FIELDS}
    claude = BedrockClaude(**(fast | {n: v for n, v in settings.items() if n not in PARAPHRASER_FIELDS}))
    return BedrockParaphraser(cache_path=str(tmp_path / "cache" / "paraphrases.sqlite"), claude=claude, **own)


def _own_log_lines(caplog: pytest.LogCaptureFixture) -> str:
    """What this package logged (botocore's debug log shows the access key id, as AWS request logs do)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("manga_distill_assets"))


def _cached_texts(tmp_path: Path) -> set[str]:
    with sqlite3.connect(tmp_path / "cache" / "paraphrases.sqlite") as connection:
        return {text for (text,) in connection.execute("SELECT text FROM paraphrases")}


# Sending and reading answers


def test_converse_answers_come_back_under_each_original_text(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    batch = _paraphraser(bedrock_server, tmp_path).paraphrase([ORDER, STOCK], n=3)

    assert batch.paraphrases == {ORDER: paraphrases_for(ORDER, 3), STOCK: paraphrases_for(STOCK, 3)}
    assert (batch.sent, batch.cached, batch.dropped, batch.retries) == (2, 0, 0, 0)
    assert bedrock_server.operations == {"converse": 2}
    assert bedrock_server.model_ids == {MODEL_ID}


def test_converse_request_carries_the_prompt_and_inference_settings(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    _paraphraser(bedrock_server, tmp_path, max_tokens=300, temperature=0.5).paraphrase([ORDER], n=3)

    assert bedrock_server.bodies == [
        {
            "messages": [{"role": "user", "content": [{"text": build_prompt(ORDER, 3, "v1")}]}],
            "inferenceConfig": {"maxTokens": 300, "temperature": 0.5},
        }
    ]


def test_invoke_model_sends_an_anthropic_messages_body_and_reads_its_answer(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    paraphraser = _paraphraser(bedrock_server, tmp_path, api="invoke_model", max_tokens=300, temperature=0.5)

    batch = paraphraser.paraphrase([ORDER], n=3)

    assert bedrock_server.bodies == [
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 300,
            "temperature": 0.5,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": build_prompt(ORDER, 3, "v1")}]}
            ],
        }
    ]
    assert batch.paraphrases == {ORDER: paraphrases_for(ORDER, 3)}
    assert (batch.input_tokens, batch.output_tokens) == (
        bedrock_server.input_tokens,
        bedrock_server.output_tokens,
    )


def test_only_the_scrubbed_text_leaves_the_machine_or_reaches_the_cache(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    original = "Please email me at taro.yamada@example.com when One Piece 105 ships"

    batch = _paraphraser(bedrock_server, tmp_path).paraphrase([original], n=2)

    assert list(bedrock_server.requests) == ["Please email me at <EMAIL> when One Piece 105 ships"]
    assert "taro.yamada" not in json.dumps(bedrock_server.bodies)
    stored = b"".join(path.read_bytes() for path in (tmp_path / "cache").iterdir())
    assert b"taro.yamada" not in stored
    assert list(batch.paraphrases) == [original]


def test_tokens_are_the_billed_ones_and_their_cost_uses_the_configured_prices(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    paraphraser = _paraphraser(bedrock_server, tmp_path, input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)

    batch = paraphraser.paraphrase([ORDER, STOCK], n=2)

    assert (batch.input_tokens, batch.output_tokens) == (
        bedrock_server.input_tokens,
        bedrock_server.output_tokens,
    )
    expected = (bedrock_server.input_tokens * 3.0 + bedrock_server.output_tokens * 15.0) / 1e6
    assert batch.estimated_cost_usd == pytest.approx(expected)


def test_no_more_than_max_concurrency_requests_are_in_flight(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    bedrock_server.inject(Fault("slow", times=len(TEXTS), delay_s=0.15))

    _paraphraser(bedrock_server, tmp_path, max_concurrency=3).paraphrase(TEXTS, n=2)

    assert bedrock_server.peak_in_flight == 3


def test_botocore_makes_one_attempt_so_it_never_resends_a_request_that_may_be_billed(tmp_path: Path) -> None:
    claude = BedrockClaude(cache_path=str(tmp_path / "claude.sqlite"), read_timeout_s=45, connect_timeout_s=5)

    config = claude.client().meta.config

    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert (config.read_timeout, config.connect_timeout) == (45, 5)


# Faults


@pytest.mark.parametrize("kind", ["throttle", "unavailable", "internal"])
def test_a_burst_of_transient_errors_is_retried_to_success(
    bedrock_server: BedrockServer, tmp_path: Path, kind: FaultKind
) -> None:
    bedrock_server.inject(Fault(kind, times=3, text=ORDER))
    paraphraser = _paraphraser(bedrock_server, tmp_path, max_retries=3)

    batch = paraphraser.paraphrase([ORDER, STOCK], n=2)

    assert batch.paraphrases[ORDER] == paraphrases_for(ORDER, 2)
    assert (bedrock_server.requests[ORDER], batch.retries) == (4, 3)
    assert bedrock_server.billed == {ORDER: 1, STOCK: 1}


def test_a_slow_answer_times_out_and_is_asked_again(bedrock_server: BedrockServer, tmp_path: Path) -> None:
    bedrock_server.inject(Fault("slow", text=ORDER, delay_s=2.0))
    paraphraser = _paraphraser(bedrock_server, tmp_path, read_timeout_s=0.2, max_retries=1)

    batch = paraphraser.paraphrase([ORDER], n=2)

    assert batch.paraphrases == {ORDER: paraphrases_for(ORDER, 2)}
    assert (bedrock_server.requests[ORDER], bedrock_server.abandoned[ORDER], batch.retries) == (2, 1, 1)


def test_a_model_that_never_answers_in_time_fails_naming_the_read_timeout(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    bedrock_server.inject(Fault("slow", times=2, delay_s=2.0))
    paraphraser = _paraphraser(bedrock_server, tmp_path, read_timeout_s=0.2, max_retries=1)

    with pytest.raises(BedrockError, match=r"read_timeout_s=0\.2"):
        paraphraser.paraphrase([ORDER], n=2)


def test_throttling_that_outlasts_every_retry_fails_with_what_to_change(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    bedrock_server.inject(Fault("throttle", times=100))
    paraphraser = _paraphraser(bedrock_server, tmp_path, max_retries=2)

    with pytest.raises(BedrockError) as raised:
        paraphraser.paraphrase([ORDER], n=2)

    assert "ThrottlingException" in str(raised.value)
    assert "max_concurrency" in str(raised.value)
    assert bedrock_server.requests[ORDER] == 3


def test_a_failed_run_keeps_every_answer_and_its_rerun_pays_for_nothing_twice(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    bedrock_server.inject(Fault("internal", times=100, text=TEXTS[3]))
    with pytest.raises(BedrockError, match=r"new texts were paraphrased and cached"):
        _paraphraser(bedrock_server, tmp_path, max_retries=1).paraphrase(TEXTS, n=2)
    billed_by_failed_run = Counter(bedrock_server.billed)
    cached_after_failure = _cached_texts(tmp_path)
    bedrock_server.reset()

    batch = _paraphraser(bedrock_server, tmp_path).paraphrase(TEXTS, n=2)

    assert set(billed_by_failed_run) == cached_after_failure
    assert TEXTS[3] not in cached_after_failure
    assert set(bedrock_server.requests) == set(TEXTS) - cached_after_failure
    assert billed_by_failed_run + bedrock_server.billed == Counter(TEXTS)
    assert batch.paraphrases == {text: paraphrases_for(text, 2) for text in TEXTS}


class InterruptedOnFirstProgress(logging.Logger):
    """Raises KeyboardInterrupt in the sending thread at the first progress line, as Ctrl-C would."""

    def __init__(self) -> None:
        super().__init__("interrupted")
        self.interrupted = False

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        if str(msg).startswith("Paraphrased") and not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt


def test_answers_in_flight_when_a_run_is_interrupted_are_kept(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    bedrock_server.inject(Fault("slow", text=STOCK, delay_s=0.3))

    with pytest.raises(KeyboardInterrupt):
        _paraphraser(bedrock_server, tmp_path).paraphrase(TEXTS, n=2, log=InterruptedOnFirstProgress())

    assert _cached_texts(tmp_path) == {ORDER, STOCK} == set(bedrock_server.billed)


def test_a_malformed_answer_is_asked_again(bedrock_server: BedrockServer, tmp_path: Path) -> None:
    bedrock_server.inject(Fault("malformed", text=ORDER))

    batch = _paraphraser(bedrock_server, tmp_path, malformed_retries=1).paraphrase([ORDER], n=2)

    assert batch.paraphrases == {ORDER: paraphrases_for(ORDER, 2)}
    assert (bedrock_server.billed[ORDER], batch.retries, batch.unusable) == (2, 1, 0)


def test_an_invoke_model_body_that_is_not_json_is_asked_again(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    bedrock_server.inject(Fault("garbled", text=ORDER))

    batch = _paraphraser(bedrock_server, tmp_path, api="invoke_model", max_retries=1).paraphrase([ORDER], n=2)

    assert batch.paraphrases == {ORDER: paraphrases_for(ORDER, 2)}
    assert (bedrock_server.billed[ORDER], batch.retries) == (2, 1)


def test_an_answer_malformed_every_time_is_cached_as_unusable_and_never_paid_for_again(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    bedrock_server.inject(Fault("malformed", times=100))
    first = _paraphraser(bedrock_server, tmp_path, malformed_retries=1).paraphrase([ORDER], n=3)

    second = _paraphraser(bedrock_server, tmp_path, malformed_retries=1).paraphrase([ORDER], n=3)

    assert (first.paraphrases, first.dropped, first.unusable) == ({ORDER: []}, 3, 1)
    assert bedrock_server.billed[ORDER] == 2
    assert (second.sent, second.cached) == (0, 1)


def test_a_wrong_count_keeps_the_good_paraphrases_and_counts_the_rest_as_dropped(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    bedrock_server.inject(Fault("wrong_count", text=ORDER, count=2))

    batch = _paraphraser(bedrock_server, tmp_path).paraphrase([ORDER], n=5)

    assert batch.paraphrases == {ORDER: paraphrases_for(ORDER, 2)}
    assert (batch.dropped, batch.retries, bedrock_server.requests[ORDER]) == (3, 0, 1)


def test_access_denied_names_the_model_region_and_permission_and_no_secret(
    bedrock_server: BedrockServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bedrock_server.inject(Fault("access_denied", times=100))

    with caplog.at_level(logging.DEBUG), pytest.raises(BedrockError) as raised:
        _paraphraser(bedrock_server, tmp_path, region_name="eu-central-1").paraphrase([ORDER], n=2)

    message = str(raised.value)
    assert MODEL_ID in message
    assert "eu-central-1" in message
    assert "bedrock:InvokeModel" in message
    assert SECRET_ACCESS_KEY not in message + caplog.text
    assert ACCESS_KEY_ID not in message + _own_log_lines(caplog)
    assert bedrock_server.requests[ORDER] == 1


def test_after_access_is_granted_the_denied_text_is_sent_again(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    bedrock_server.inject(Fault("access_denied"))
    with pytest.raises(BedrockError):
        _paraphraser(bedrock_server, tmp_path).paraphrase([ORDER], n=2)

    batch = _paraphraser(bedrock_server, tmp_path).paraphrase([ORDER], n=2)

    assert batch.paraphrases == {ORDER: paraphrases_for(ORDER, 2)}


# The run budget


@pytest.mark.parametrize("max_concurrency", [1, 4])
def test_spend_stops_within_the_token_budget_and_what_was_paid_for_is_kept(
    bedrock_server: BedrockServer, tmp_path: Path, max_concurrency: int
) -> None:
    paraphraser = _paraphraser(bedrock_server, tmp_path, max_run_tokens=1600, max_concurrency=max_concurrency)

    with pytest.raises(BedrockBudgetExceeded) as raised:
        paraphraser.paraphrase(TEXTS, n=2)

    answered = _cached_texts(tmp_path)
    assert bedrock_server.tokens_billed <= 1600
    assert 0 < len(answered) < len(TEXTS)
    assert set(bedrock_server.billed) == answered
    assert f"{len(answered)}/{len(TEXTS)} requests answered" in str(raised.value)
    assert f"{bedrock_server.tokens_billed:,} tokens" in str(raised.value)
    assert "max_run_tokens=1,600" in str(raised.value)


def test_requests_in_flight_do_not_end_the_run_before_the_budget_is_used(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    texts = [f"Is volume {volume} of Blue Period in stock?" for volume in range(1, 13)]
    paraphraser = _paraphraser(
        bedrock_server, tmp_path, max_run_tokens=2000, max_tokens=64, max_concurrency=4
    )

    with pytest.raises(BedrockBudgetExceeded) as raised:
        paraphraser.paraphrase(texts, n=2)

    next_request = re.search(r"could cost up to ([\d,]+) tokens", str(raised.value))
    assert next_request is not None
    assert (
        bedrock_server.tokens_billed
        <= 2000
        < bedrock_server.tokens_billed + int(next_request[1].replace(",", ""))
    )


def test_a_rerun_after_a_budget_stop_sends_only_the_rest(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    with pytest.raises(BedrockBudgetExceeded):
        _paraphraser(bedrock_server, tmp_path, max_run_tokens=1600).paraphrase(TEXTS, n=2)
    answered_first = set(bedrock_server.billed)

    batch = _paraphraser(bedrock_server, tmp_path, max_run_tokens=0).paraphrase(TEXTS, n=2)

    assert (batch.sent, batch.cached) == (len(TEXTS) - len(answered_first), len(answered_first))
    assert set(bedrock_server.billed.values()) == {1}


def test_a_dollar_budget_too_small_for_one_request_sends_nothing_and_says_so(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    paraphraser = _paraphraser(bedrock_server, tmp_path, max_run_usd=0.001)

    with pytest.raises(BedrockBudgetExceeded) as raised:
        paraphraser.paraphrase([ORDER, STOCK], n=2)

    assert bedrock_server.requests == {}
    assert "0/2 requests answered" in str(raised.value)
    assert "max_run_usd=$0.001" in str(raised.value)


# In a Dagster run


def test_a_bedrock_paraphraser_configured_by_fields_serves_a_dagster_run(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    @dg.asset
    def paraphrased(paraphraser: BedrockParaphraser) -> dict[str, list[str]]:
        return paraphraser.paraphrase([ORDER], n=2).paraphrases

    resource = _paraphraser(bedrock_server, tmp_path, api="invoke_model")
    result = dg.materialize([paraphrased], resources={"paraphraser": resource})

    assert result.output_for_node("paraphrased") == {ORDER: paraphrases_for(ORDER, 2)}


def test_a_subclass_overriding_client_serves_a_dagster_run(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    own_client = boto3.client("bedrock-runtime", endpoint_url=bedrock_server.endpoint)

    class OwnClientClaude(BedrockClaude):
        def client(self) -> Any:
            return own_client

    @dg.asset
    def paraphrased(paraphraser: BedrockParaphraser) -> dict[str, list[str]]:
        return paraphraser.paraphrase([ORDER], n=2).paraphrases

    claude = OwnClientClaude(cache_path=str(tmp_path / "claude.sqlite"))
    resource = BedrockParaphraser(cache_path=str(tmp_path / "cache.sqlite"), claude=claude)
    result = dg.materialize([paraphrased], resources={"paraphraser": resource})

    assert result.output_for_node("paraphrased") == {ORDER: paraphrases_for(ORDER, 2)}


def test_a_client_given_with_use_client_sends_the_requests(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    claude = BedrockClaude(cache_path=str(tmp_path / "claude.sqlite"), endpoint_url="http://unused.invalid")
    claude.use_client(boto3.client("bedrock-runtime", endpoint_url=bedrock_server.endpoint))
    paraphraser = BedrockParaphraser(cache_path=str(tmp_path / "cache.sqlite"), claude=claude)

    paraphraser.paraphrase([ORDER], n=2)

    assert bedrock_server.billed == {ORDER: 1}
