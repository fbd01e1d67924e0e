"""Bedrock's two ways of asking Claude, as request arguments and parsed answers.

Converse is Bedrock's model-neutral API; InvokeModel carries Anthropic's messages body. Both are kept because
some accounts and inference profiles allow only one. An empty system prompt is left out of the request.
"""

import json
from typing import Any

from manga_distill_assets.bedrock.errors import MalformedResponse
from manga_distill_assets.bedrock.requests import ChatAnswer, ChatRequest

ANTHROPIC_VERSION = "bedrock-2023-05-31"


def converse_arguments(model_id: str, request: ChatRequest, temperature: float) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "modelId": model_id,
        "messages": [{"role": "user", "content": [{"text": request.user}]}],
        "inferenceConfig": {"maxTokens": request.max_tokens, "temperature": temperature},
    }
    if request.system:
        arguments["system"] = [{"text": request.system}]
    return arguments


def invoke_model_arguments(model_id: str, request: ChatRequest, temperature: float) -> dict[str, Any]:
    body: dict[str, Any] = {
        "anthropic_version": ANTHROPIC_VERSION,
        "max_tokens": request.max_tokens,
        "temperature": temperature,
        "messages": [{"role": "user", "content": [{"type": "text", "text": request.user}]}],
    }
    if request.system:
        body["system"] = request.system
    return {
        "modelId": model_id,
        "body": json.dumps(body),
        "contentType": "application/json",
        "accept": "application/json",
    }


def converse_answer(key: str, response: dict[str, Any]) -> ChatAnswer:
    """The first text block of a Converse answer (empty when there is none: the caller judges the text)."""
    content = response.get("output", {}).get("message", {}).get("content", [])
    usage = response.get("usage", {})
    return ChatAnswer(
        key=key,
        text=next((block["text"] for block in content if "text" in block), ""),
        input_tokens=int(usage.get("inputTokens", 0)),
        output_tokens=int(usage.get("outputTokens", 0)),
        stop_reason=str(response.get("stopReason", "")),
        cached=False,
    )


def invoke_model_answer(key: str, body: bytes) -> ChatAnswer:
    """The first text block of an Anthropic messages answer; a body that is not a JSON object is malformed."""
    try:
        answer = json.loads(body)
    except ValueError as error:
        raise MalformedResponse(f"the InvokeModel body is not JSON: {error}") from error
    if not isinstance(answer, dict):
        raise MalformedResponse(f"the InvokeModel body is a JSON {type(answer).__name__}, not an object")
    content = answer.get("content")
    blocks = content if isinstance(content, list) else []
    usage = answer.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return ChatAnswer(
        key=key,
        text=next((b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)), ""),
        input_tokens=int(usage.get("input_tokens", 0)),
        output_tokens=int(usage.get("output_tokens", 0)),
        stop_reason=str(answer.get("stop_reason", "")),
        cached=False,
    )
