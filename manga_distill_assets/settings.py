"""The ``MANGA_*`` environment variables that choose or configure resources, read and checked in one place.

A value that is not allowed is never silently replaced by a default: ``MANGA_PARAPHRASER=Bedrock`` is an
error, not the offline paraphraser. Each error is one line naming the variable, the value and what is allowed
(``SettingError``). ``definitions.py`` turns a resource whose settings are wrong into a
``MisconfiguredResource``, so the code location still loads and only a run that needs that resource fails,
at its start, with this line (see docs/bad-input.md).
"""

import logging
import os
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import ValidationError

from manga_distill_assets.resources.assistant_teacher import (
    AssistantTeacher,
    BedrockAssistantTeacher,
    OfflineAssistantTeacher,
)
from manga_distill_assets.resources.claude import BedrockClaude
from manga_distill_assets.resources.paraphraser import BedrockParaphraser, OfflineParaphraser, Paraphraser
from manga_distill_assets.resources.unusable import MisconfiguredResource

_LOGGER = logging.getLogger(__name__)

# Choice variables: variable -> (allowed values, default).
CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "MANGA_PARAPHRASER": (("offline", "bedrock"), "offline"),
    "MANGA_LLM_TEACHER": (("offline", "bedrock"), "offline"),
}
# Bedrock knobs a deployment sets without a code change: variable -> BedrockClaude field.
BEDROCK_VARIABLES = {
    "MANGA_BEDROCK_MODEL_ID": "model_id",
    "MANGA_BEDROCK_API": "api",
    "MANGA_BEDROCK_MAX_CONCURRENCY": "max_concurrency",
    "MANGA_BEDROCK_MAX_RUN_USD": "max_run_usd",
    "MANGA_BEDROCK_MAX_RUN_TOKENS": "max_run_tokens",
    "MANGA_BEDROCK_READ_TIMEOUT_S": "read_timeout_s",
    "MANGA_BEDROCK_INPUT_USD_PER_MTOK": "input_usd_per_mtok",
    "MANGA_BEDROCK_OUTPUT_USD_PER_MTOK": "output_usd_per_mtok",
}


class SettingError(ValueError):
    """A ``MANGA_*`` variable holds a value that is not allowed; the message is one line."""


def choice(name: str) -> str:
    """The value of a choice variable, or its default when unset or empty."""
    allowed, default = CHOICES[name]
    value = os.environ.get(name, "")
    if not value:
        return default
    if value not in allowed:
        raise SettingError(
            f"{name}={value!r} is not allowed: use one of {', '.join(allowed)} (lower case), or unset it "
            f"for the default, {default}."
        )
    return value


def claude_from_env(root: Path) -> BedrockClaude:
    """The one Bedrock client, configured by ``MANGA_BEDROCK_*`` and ``AWS_REGION``; credentials come only
    from the standard AWS chain, never from these variables."""
    fields: dict[str, Any] = {
        "cache_path": str(root / "claude_cache.sqlite"),
        "region_name": os.environ.get("AWS_REGION", "us-east-1"),
    }
    fields |= {field: os.environ[name] for name, field in BEDROCK_VARIABLES.items() if os.environ.get(name)}
    try:
        claude = BedrockClaude(**fields)
    except ValidationError as error:
        raise SettingError(_describe(error, fields)) from None
    try:
        claude.prices()
    except ValueError:
        raise SettingError(
            f"MANGA_BEDROCK_MODEL_ID={claude.model_id!r} has no known price: set "
            "MANGA_BEDROCK_INPUT_USD_PER_MTOK and MANGA_BEDROCK_OUTPUT_USD_PER_MTOK to its on-demand prices "
            "per million tokens, so that the run budget can be kept in dollars."
        ) from None
    return claude


def paraphraser_from_env(root: Path, claude: BedrockClaude) -> Paraphraser:
    """``MANGA_PARAPHRASER=bedrock`` sends train texts (PII scrubbed) to Claude through the shared client."""
    cache_path = str(root / "paraphrase_cache.sqlite")
    if choice("MANGA_PARAPHRASER") == "bedrock":
        return BedrockParaphraser(cache_path=cache_path, claude=claude)
    return OfflineParaphraser(cache_path=cache_path)


def bedrock_resources(root: Path) -> dict[str, ConfigurableResource]:
    """``claude``, ``paraphraser`` and ``assistant_teacher``. A resource whose variables are wrong becomes a
    ``MisconfiguredResource`` that fails any run needing it with the one-line reason, and the reason is
    logged when definitions load."""
    try:
        claude: BedrockClaude | MisconfiguredResource = claude_from_env(root)
    except SettingError as error:
        _LOGGER.error("%s", error)
        claude = MisconfiguredResource(problem=str(error))
    try:
        if isinstance(claude, MisconfiguredResource) and choice("MANGA_PARAPHRASER") == "bedrock":
            paraphraser: Paraphraser | MisconfiguredResource = MisconfiguredResource(problem=claude.problem)
        else:
            paraphraser = paraphraser_from_env(root, claude)  # type: ignore[arg-type]
    except SettingError as error:
        _LOGGER.error("%s", error)
        paraphraser = MisconfiguredResource(problem=str(error))
    return {"claude": claude, "paraphraser": paraphraser, "assistant_teacher": _assistant_teacher(claude)}


def _assistant_teacher(
    claude: BedrockClaude | MisconfiguredResource,
) -> AssistantTeacher | MisconfiguredResource:
    """``MANGA_LLM_TEACHER=bedrock`` has Claude write the fallback student's training answers."""
    try:
        if choice("MANGA_LLM_TEACHER") != "bedrock":
            return OfflineAssistantTeacher()
    except SettingError as error:
        _LOGGER.error("%s", error)
        return MisconfiguredResource(problem=str(error))
    if isinstance(claude, MisconfiguredResource):
        return MisconfiguredResource(problem=claude.problem)
    return BedrockAssistantTeacher(claude=claude)


def _describe(error: ValidationError, fields: dict[str, Any]) -> str:
    """The first bad variable, its value, pydantic's rule, and what the setting means."""
    variables = {field: name for name, field in BEDROCK_VARIABLES.items()}
    first = error.errors()[0]
    field = str(first["loc"][0])
    name = variables.get(field, field)
    rule = first["msg"].replace("Input should be", "it should be")
    meaning = BedrockClaude.model_fields[field].description
    return f"{name}={fields[field]!r} is not allowed: {rule}. {name} sets {field}: {meaning}"
