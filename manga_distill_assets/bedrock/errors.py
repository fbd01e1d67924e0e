"""What a Bedrock failure means for the run (retry? billed? stop?), and what it tells the user to do."""

from dataclasses import dataclass
from enum import Enum

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)


class BedrockError(RuntimeError):
    """A Bedrock call failed; the message names the model, the region and what to change."""


class BedrockBudgetExceeded(BedrockError):
    """The run's budget would not cover the next request's worst case, so nothing more was sent.

    ``run`` holds what arrived before the stop (a ``ChatRun``); every answer in it is already cached.
    """

    def __init__(self, message: str, run: object) -> None:
        super().__init__(message)
        self.run = run


class MalformedResponse(ValueError):
    """Bedrock answered (and billed) a body this client cannot read."""


class Outcome(Enum):
    """What a failed request means. Only ABANDONED may have been billed."""

    THROTTLED = "throttled"  # refused for rate: not billed; slow down, then ask again
    UNAVAILABLE = "unavailable"  # refused by a fault on the service's side, or never sent: ask again
    ABANDONED = "abandoned"  # given up on while the model may still run it: billed at worst, ask again
    REJECTED = "rejected"  # this request is wrong (e.g. too long): the others go on
    FATAL = "fatal"  # no request can succeed (access, credentials, model id): stop the run


_THROTTLED_CODES = frozenset({"ThrottlingException", "TooManyRequestsException"})
_UNAVAILABLE_CODES = frozenset(
    {"ServiceUnavailableException", "InternalServerException", "ModelNotReadyException"}
)
_REJECTED_CODES = frozenset({"ValidationException", "ModelErrorException"})
_ABANDONED_TRANSPORT = (ReadTimeoutError, ConnectionClosedError, ResponseStreamingError)
_UNSENT_TRANSPORT = (ConnectTimeoutError, EndpointConnectionError)


def classify(error: BotoCoreError | ClientError) -> Outcome:
    if isinstance(error, _ABANDONED_TRANSPORT):
        return Outcome.ABANDONED
    if isinstance(error, _UNSENT_TRANSPORT):
        return Outcome.UNAVAILABLE
    if not isinstance(error, ClientError):
        return Outcome.FATAL
    code = error_code(error)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in _THROTTLED_CODES or status == 429:
        return Outcome.THROTTLED
    if code == "ModelTimeoutException":
        return Outcome.ABANDONED
    if code in _UNAVAILABLE_CODES or status >= 500:
        return Outcome.UNAVAILABLE
    if code in _REJECTED_CODES:
        return Outcome.REJECTED
    return Outcome.FATAL


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code", "Unknown")
    return type(error).__name__


@dataclass(frozen=True)
class Endpoint:
    """Where requests went, and the settings a user would change after a failure."""

    model_id: str
    region_name: str
    api: str
    endpoint_url: str | None
    read_timeout_s: float
    max_concurrency: int


def explain(error: BaseException, endpoint: Endpoint, tries: int) -> str:
    """One paragraph for the user: what failed, where, and what to do about it."""
    where = f"model '{endpoint.model_id}' in region '{endpoint.region_name}'"
    if isinstance(error, NoCredentialsError):
        return (
            f"No AWS credentials were found for Bedrock ({where}). Provide them through the standard AWS "
            "chain: AWS_PROFILE or ~/.aws/credentials, environment variables, SSO, or an instance role."
        )
    if isinstance(error, MalformedResponse):
        return f"Bedrock's answer could not be read for {where}, in {tries} tries ({error})."
    if isinstance(error, ReadTimeoutError):
        return (
            f"Bedrock did not answer within read_timeout_s={endpoint.read_timeout_s:g} s for {where}, in "
            f"{tries} tries. Raise read_timeout_s if the model needs longer, or re-run later."
        )
    if not isinstance(error, ClientError):
        return (
            f"Could not call Bedrock for {where}: {error}. Check network access to the bedrock-runtime "
            f"endpoint ({endpoint.endpoint_url or 'the default for the region'})."
        )
    code = error_code(error)
    message = error.response.get("Error", {}).get("Message", "")
    if code == "AccessDeniedException":
        return (
            f"Bedrock denied access to {where} ({code}: {message}). The AWS identity in use needs the "
            "bedrock:InvokeModel permission on this model, and the model must be enabled under "
            f"'Model access' in the Bedrock console for {endpoint.region_name}."
        )
    if code in {"ResourceNotFoundException", "ValidationException"}:
        return (
            f"Bedrock rejected the request for {where} ({code}: {message}). Check that model_id names a "
            f"model or inference profile available in {endpoint.region_name} that supports api="
            f"'{endpoint.api}', and that max_tokens and temperature are within that model's limits."
        )
    if classify(error) is Outcome.THROTTLED:
        return (
            f"Bedrock kept throttling requests for {where} ({code}: {message}), in {tries} tries. Lower "
            f"max_concurrency (now {endpoint.max_concurrency}), ask for a higher on-demand "
            "requests-per-minute quota for this model in Service Quotas, or re-run later."
        )
    if classify(error) in (Outcome.UNAVAILABLE, Outcome.ABANDONED):
        return (
            f"Bedrock kept failing for {where} ({code}: {message}), in {tries} tries. The fault is on the "
            "service's side: re-run later."
        )
    return f"Bedrock call for {where} failed ({code}: {message})."
