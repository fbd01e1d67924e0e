"""BedrockClaude.chat through the real boto3 client, against the Bedrock-compatible test server."""

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from manga_distill_assets.bedrock.errors import BedrockBudgetExceeded, BedrockError
from manga_distill_assets.bedrock.requests import ChatRequest
from manga_distill_assets.data.paraphrase import build_prompt
from manga_distill_assets.resources.claude import BedrockClaude
from tests.bedrock_server import BedrockServer, Fault, paraphrases_for

SYSTEM = "You rewrite customer questions for a manga store."
ORDER = "Where is my order?"
STOCK = "Is One Piece volume 105 in stock?"


def _claude(server: BedrockServer, tmp_path: Path, **settings: Any) -> BedrockClaude:
    fast = {
        "cache_path": str(tmp_path / "claude.sqlite"),
        "endpoint_url": server.endpoint,
        "backoff_base_s": 0.001,
    }
    return BedrockClaude(**(fast | settings))


def _request(text: str, key: str | None = None, system: str = SYSTEM) -> ChatRequest:
    return ChatRequest(key=key or text, system=system, user=build_prompt(text, 2, "v1"), max_tokens=64)


def test_answers_come_back_by_key_with_their_billed_tokens(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    run = _claude(bedrock_server, tmp_path).chat([_request(ORDER, "a"), _request(STOCK, "b")])

    assert {key: json.loads(answer.text) for key, answer in run.answers.items()} == {
        "a": paraphrases_for(ORDER, 2),
        "b": paraphrases_for(STOCK, 2),
    }
    assert (run.input_tokens, run.output_tokens) == (
        bedrock_server.input_tokens,
        bedrock_server.output_tokens,
    )
    assert (run.sent, run.cached, run.failed) == (2, 0, {})


def test_the_system_prompt_is_sent_and_pii_is_scrubbed_from_what_leaves(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    request = ChatRequest("k", f"{SYSTEM} Reply to taro@example.com.", "Call me on 090-1234-5678", 32)

    _claude(bedrock_server, tmp_path).chat([request])

    body = bedrock_server.bodies[0]
    assert body["system"] == [{"text": f"{SYSTEM} Reply to <EMAIL>."}]
    assert body["messages"][0]["content"] == [{"text": "Call me on <PHONE>"}]
    assert b"taro@example.com" not in (tmp_path / "claude.sqlite").read_bytes()


def test_a_second_call_is_answered_from_the_cache_without_a_request(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    first = _claude(bedrock_server, tmp_path).chat([_request(ORDER)])
    bedrock_server.reset()

    second = _claude(bedrock_server, tmp_path).chat([_request(ORDER)])

    assert bedrock_server.requests == {}
    assert (second.sent, second.cached, second.spent_usd) == (0, 1, 0.0)
    assert second.answers[ORDER].text == first.answers[ORDER].text
    assert second.answers[ORDER].cached


@pytest.mark.parametrize("changed", ["system", "user", "model"])
def test_a_different_system_prompt_user_prompt_or_model_is_asked_again(
    bedrock_server: BedrockServer, tmp_path: Path, changed: str
) -> None:
    _claude(bedrock_server, tmp_path).chat([_request(ORDER, key="k")])
    request = {
        "system": _request(ORDER, key="k", system="Another system prompt."),
        "user": _request(STOCK, key="k"),
        "model": _request(ORDER, key="k"),
    }[changed]
    model = {"model_id": "anthropic.claude-3-haiku-20240307-v1:0"} if changed == "model" else {}

    run = _claude(bedrock_server, tmp_path, **model).chat([request])

    assert (run.sent, run.cached) == (1, 0)


def test_a_request_bedrock_rejects_fails_alone_and_the_others_are_answered(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    bedrock_server.inject(Fault("validation", text=ORDER))

    run = _claude(bedrock_server, tmp_path).chat([_request(ORDER), _request(STOCK)])

    assert list(run.answers) == [STOCK]
    assert "ValidationException" in run.failed[ORDER]
    assert bedrock_server.requests[ORDER] == 1


def test_access_denied_stops_the_run_and_keeps_what_arrived(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    bedrock_server.inject(Fault("access_denied", times=100, text=STOCK))

    with pytest.raises(BedrockError, match="bedrock:InvokeModel"):
        _claude(bedrock_server, tmp_path, max_concurrency=1).chat([_request(ORDER), _request(STOCK)])

    assert _claude(bedrock_server, tmp_path).chat([_request(ORDER)]).cached == 1


def test_a_budget_stop_raises_after_committing_every_answer_that_arrived(
    bedrock_server: BedrockServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    texts = [f"Is volume {volume} of Blue Period in stock?" for volume in range(30)]
    claude = _claude(bedrock_server, tmp_path, max_run_tokens=2_000, max_run_usd=0, max_concurrency=3)

    with caplog.at_level(logging.ERROR), pytest.raises(BedrockBudgetExceeded) as raised:
        claude.chat([_request(text) for text in texts])

    run = raised.value.run
    assert 0 < len(run.answers) < len(texts)
    assert bedrock_server.tokens_billed <= 2_000
    assert set(bedrock_server.billed) == set(run.answers)
    assert "max_run_tokens=2,000" in str(raised.value) and str(raised.value) in caplog.text
    assert _claude(bedrock_server, tmp_path).chat([_request(t) for t in run.answers]).sent == 0


def test_one_budget_can_be_shared_by_several_calls(bedrock_server: BedrockServer, tmp_path: Path) -> None:
    worst_case = BedrockClaude(cache_path="unused").prices().worst_case(_request(STOCK)).tokens
    claude = _claude(bedrock_server, tmp_path, max_run_tokens=worst_case + 10, max_run_usd=0)
    budget = claude.new_budget()
    claude.chat([_request(ORDER)], budget=budget)

    with pytest.raises(BedrockBudgetExceeded):
        claude.chat([_request(STOCK)], budget=budget)

    assert bedrock_server.billed == {ORDER: 1}
    assert claude.chat([_request(STOCK)]).sent == 1


def test_keys_must_be_distinct(tmp_path: Path) -> None:
    claude = BedrockClaude(cache_path=str(tmp_path / "claude.sqlite"))

    with pytest.raises(ValueError, match="keys repeat"):
        claude.chat([_request(ORDER, key="k"), _request(STOCK, key="k")])
