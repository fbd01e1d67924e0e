"""Converse and InvokeModel requests as Bedrock expects them, and their answers as this client reads them."""

import json

import pytest

from manga_distill_assets.bedrock.errors import MalformedResponse
from manga_distill_assets.bedrock.requests import ChatAnswer, ChatRequest
from manga_distill_assets.bedrock.responses import (
    converse_answer,
    converse_arguments,
    invoke_model_answer,
    invoke_model_arguments,
)

REQUEST = ChatRequest(key="k", system="Answer as a manga store.", user="Is Frieren 12 out?", max_tokens=50)


def test_converse_sends_the_system_prompt_as_a_system_block() -> None:
    assert converse_arguments("m", REQUEST, 0.0) == {
        "modelId": "m",
        "messages": [{"role": "user", "content": [{"text": "Is Frieren 12 out?"}]}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.0},
        "system": [{"text": "Answer as a manga store."}],
    }


def test_an_empty_system_prompt_is_left_out() -> None:
    request = ChatRequest(key="k", system="", user="hi", max_tokens=5)

    assert "system" not in converse_arguments("m", request, 0.0)
    assert "system" not in json.loads(invoke_model_arguments("m", request, 0.0)["body"])


def test_invoke_model_sends_an_anthropic_messages_body() -> None:
    arguments = invoke_model_arguments("m", REQUEST, 0.5)

    assert json.loads(arguments["body"]) == {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "temperature": 0.5,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Is Frieren 12 out?"}]}],
        "system": "Answer as a manga store.",
    }


def test_a_converse_answer_gives_its_first_text_block_usage_and_stop_reason() -> None:
    response = {
        "output": {"message": {"content": [{"toolUse": {}}, {"text": "Yes."}, {"text": "No."}]}},
        "usage": {"inputTokens": 12, "outputTokens": 3},
        "stopReason": "end_turn",
    }

    assert converse_answer("k", response) == ChatAnswer("k", "Yes.", 12, 3, "end_turn", cached=False)


def test_an_invoke_model_answer_gives_its_first_text_block_usage_and_stop_reason() -> None:
    body = {
        "content": [{"type": "text", "text": "Yes."}],
        "usage": {"input_tokens": 9, "output_tokens": 2},
        "stop_reason": "max_tokens",
    }

    assert invoke_model_answer("k", json.dumps(body).encode()) == ChatAnswer(
        "k", "Yes.", 9, 2, "max_tokens", False
    )


@pytest.mark.parametrize("body", [b'{"content": [', b"[1, 2]"])
def test_an_invoke_model_body_that_is_not_a_json_object_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedResponse, match="InvokeModel body"):
        invoke_model_answer("k", body)
