"""The spend cap holds when requests time out, are throttled and fail together, over more than 1,000 requests.

The server bills every request it runs, including those the client abandoned after its read timeout, as
Bedrock may; the budget must have counted them before they were sent.
"""

import sqlite3
from pathlib import Path

import pytest

from manga_distill_assets.bedrock.errors import BedrockBudgetExceeded
from manga_distill_assets.bedrock.requests import ChatRequest
from manga_distill_assets.data.paraphrase import build_prompt
from manga_distill_assets.resources.claude import BedrockClaude
from tests.bedrock_server import BedrockServer

FAULT_MIX = {"throttle": 0.3, "internal": 0.05, "slow": 0.2}
READ_TIMEOUT_S = 0.2
SLOW_DELAY_S = 0.4


def _texts(count: int) -> list[str]:
    return [f"Is volume {volume} of Blue Period in stock?" for volume in range(count)]


def _requests(texts: list[str]) -> list[ChatRequest]:
    return [
        ChatRequest(f"q{i}", "", build_prompt(text, 2, "v1"), max_tokens=64) for i, text in enumerate(texts)
    ]


def _claude(server: BedrockServer, tmp_path: Path, **limits: float) -> BedrockClaude:
    return BedrockClaude(
        cache_path=str(tmp_path / "claude.sqlite"),
        endpoint_url=server.endpoint,
        read_timeout_s=READ_TIMEOUT_S,
        max_concurrency=16,
        max_retries=30,
        backoff_base_s=0.002,
        backoff_max_s=0.02,
        **limits,
    )


def _cached_keys(tmp_path: Path) -> set[str]:
    with sqlite3.connect(tmp_path / "claude.sqlite") as connection:
        return {key for (key,) in connection.execute("SELECT key FROM answers")}


@pytest.fixture
def faulty_server(bedrock_server: BedrockServer) -> BedrockServer:
    bedrock_server.randomise(FAULT_MIX, slow_delay_s=SLOW_DELAY_S, seed=7)
    bedrock_server.bills_abandoned = True
    return bedrock_server


def test_billed_tokens_stay_within_the_budget_that_stopped_the_run(
    faulty_server: BedrockServer, tmp_path: Path
) -> None:
    budget_tokens = 250_000
    texts = _texts(2_000)

    with pytest.raises(BedrockBudgetExceeded) as raised:
        _claude(faulty_server, tmp_path, max_run_tokens=budget_tokens, max_run_usd=0).chat(_requests(texts))
    faulty_server.wait_until_idle()

    run = raised.value.run
    assert run.sent >= 1_000
    assert sum(faulty_server.abandoned.values()) >= 100
    assert faulty_server.tokens_billed <= budget_tokens
    assert len(run.answers) < len(texts)


def test_under_faults_every_request_is_answered_and_paid_again_only_after_a_timeout(
    faulty_server: BedrockServer, tmp_path: Path
) -> None:
    texts = _texts(1_000)
    claude = _claude(faulty_server, tmp_path, max_run_usd=0)

    run = claude.chat(_requests(texts))
    faulty_server.wait_until_idle()

    assert (len(run.answers), run.failed) == (len(texts), {})
    assert _cached_keys(tmp_path) == set(run.answers)
    assert set(faulty_server.delivered) == set(texts)
    assert len(texts) <= sum(faulty_server.billed.values()) <= len(texts) + run.abandoned
    billed_usd = claude.prices().spend(faulty_server.input_tokens, faulty_server.output_tokens).usd
    assert run.spent_usd <= billed_usd <= run.worst_case_usd
