"""The Bedrock test server speaks bedrock-runtime as the real boto3 client understands it."""

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from manga_distill_assets.data.paraphrase import build_prompt
from tests.bedrock_server import BedrockServer, Fault, FaultKind, paraphrases_for

MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGE = "Is Frieren volume 12 in stock?"


def _client(server: BedrockServer) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.endpoint,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def _converse(server: BedrockServer, n: int = 3) -> dict[str, Any]:
    return _client(server).converse(
        modelId=MODEL_ID,
        messages=[{"role": "user", "content": [{"text": build_prompt(MESSAGE, n, "v1")}]}],
    )


def test_converse_answers_n_paraphrases_of_the_message_with_its_usage(bedrock_server: BedrockServer) -> None:
    response = _converse(bedrock_server, n=3)

    assert json.loads(response["output"]["message"]["content"][0]["text"]) == [
        f"Paraphrase 1 of: {MESSAGE}",
        f"Paraphrase 2 of: {MESSAGE}",
        f"Paraphrase 3 of: {MESSAGE}",
    ]
    assert response["usage"]["inputTokens"] == len(build_prompt(MESSAGE, 3, "v1").split())
    assert (bedrock_server.requests, bedrock_server.billed) == ({MESSAGE: 1}, {MESSAGE: 1})
    assert bedrock_server.model_ids == {MODEL_ID}


def test_invoke_model_answers_an_anthropic_messages_body(bedrock_server: BedrockServer) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": build_prompt(MESSAGE, 2, "v1")}],
    }

    response = _client(bedrock_server).invoke_model(modelId=MODEL_ID, body=json.dumps(body))
    answer = json.loads(response["body"].read())

    assert json.loads(answer["content"][0]["text"]) == paraphrases_for(MESSAGE, 2)
    assert answer["usage"]["output_tokens"] == bedrock_server.output_tokens > 0
    assert bedrock_server.operations == {"invoke": 1}


@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [
        ("throttle", "ThrottlingException", 429),
        ("unavailable", "ServiceUnavailableException", 503),
        ("internal", "InternalServerException", 500),
        ("access_denied", "AccessDeniedException", 403),
    ],
)
def test_an_injected_error_reaches_boto3_as_the_modelled_exception(
    bedrock_server: BedrockServer, kind: FaultKind, code: str, status: int
) -> None:
    bedrock_server.inject(Fault(kind))

    with pytest.raises(ClientError) as raised:
        _converse(bedrock_server)

    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert bedrock_server.billed == {}


def test_a_fault_for_one_text_leaves_other_texts_alone(bedrock_server: BedrockServer) -> None:
    bedrock_server.inject(Fault("access_denied", text="some other message"))

    response = _converse(bedrock_server)

    assert response["stopReason"] == "end_turn"


def test_a_fault_applies_only_as_many_times_as_scripted(bedrock_server: BedrockServer) -> None:
    bedrock_server.inject(Fault("throttle", times=2))
    for _ in range(2):
        with pytest.raises(ClientError):
            _converse(bedrock_server)

    _converse(bedrock_server)

    assert (bedrock_server.requests, bedrock_server.billed) == ({MESSAGE: 3}, {MESSAGE: 1})
