"""Each Bedrock failure is read for what it means: retried or not, and billed or not."""

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from manga_distill_assets.bedrock.errors import Outcome, classify


def _client_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "Converse")


@pytest.mark.parametrize(
    ("code", "status", "outcome"),
    [
        ("ThrottlingException", 429, Outcome.THROTTLED),
        ("ServiceUnavailableException", 503, Outcome.UNAVAILABLE),
        ("InternalServerException", 500, Outcome.UNAVAILABLE),
        ("ModelNotReadyException", 429, Outcome.THROTTLED),
        ("ModelTimeoutException", 408, Outcome.ABANDONED),
        ("ValidationException", 400, Outcome.REJECTED),
        ("AccessDeniedException", 403, Outcome.FATAL),
        ("ResourceNotFoundException", 404, Outcome.FATAL),
    ],
)
def test_service_errors(code: str, status: int, outcome: Outcome) -> None:
    assert classify(_client_error(code, status)) is outcome


def test_a_read_timeout_is_abandoned_as_the_model_may_still_run_and_bill_it() -> None:
    assert classify(ReadTimeoutError(endpoint_url="http://x")) is Outcome.ABANDONED


@pytest.mark.parametrize(
    "error", [ConnectTimeoutError(endpoint_url="http://x"), EndpointConnectionError(endpoint_url="http://x")]
)
def test_a_request_that_never_connected_is_unavailable_and_unbilled(error: Exception) -> None:
    assert classify(error) is Outcome.UNAVAILABLE  # type: ignore[arg-type]


def test_missing_credentials_stop_the_run() -> None:
    assert classify(NoCredentialsError()) is Outcome.FATAL
