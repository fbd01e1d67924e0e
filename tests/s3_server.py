"""A real S3 endpoint for tests: moto's standalone server on a free local port, reached over HTTP.

Talking HTTP to a server (rather than patching botocore in-process) tests what production runs: a real
boto3 client, an `endpoint_url`, request signing, pagination and error responses.

Use the `s3_endpoint` fixture (list "tests.s3_server" in the root conftest's `pytest_plugins`, or import the
fixtures into a test module): it gives the endpoint URL of an empty S3, with dummy credentials in the
environment for that test only. Where the server cannot start, the test is skipped locally with the reason,
but fails when `CI` is set: CI must never silently skip it.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, NoReturn

import pytest

START_TIMEOUT_S = 10.0
LOCAL_HOSTS = "127.0.0.1,localhost"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class S3ServerUnavailable(RuntimeError):
    """moto's server could not start here (not installed, no free port, or it did not answer)."""


@contextmanager
def start_s3_server(timeout_s: float = START_TIMEOUT_S) -> Iterator[str]:
    """Run moto's S3 server on 127.0.0.1 and a free port; yield its endpoint URL, stop it on exit."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as err:
        raise S3ServerUnavailable(f"moto's server is not importable ({err}); install moto[server]") from err
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    _start_within(server, timeout_s)
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        reset_s3_server(endpoint)
        yield endpoint
    finally:
        server.stop()


def _start_within(server: Any, timeout_s: float) -> None:
    """start() waits forever if the server thread dies before binding, so it is bounded from outside."""
    failures: list[Exception] = []

    def start() -> None:
        try:
            server.start()
        except Exception as err:
            failures.append(err)

    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    starter.join(timeout_s)
    if starter.is_alive():
        raise S3ServerUnavailable(f"moto's server did not bind a port within {timeout_s:.0f} s")
    if failures:
        raise S3ServerUnavailable(f"moto's server failed to start ({failures[0]!r})") from failures[0]


def reset_s3_server(endpoint: str) -> None:
    """Drop every bucket and object, so each test starts from an empty S3."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    try:
        with _DIRECT.open(request, timeout=START_TIMEOUT_S) as response:
            response.read()
    except OSError as err:
        raise S3ServerUnavailable(f"moto's server at {endpoint} did not answer ({err})") from err


def _skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"S3 test server unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"S3 test server unavailable: {reason}")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """One server for the whole session: starting it costs more than resetting it."""
    with ExitStack() as stack:
        try:
            endpoint = stack.enter_context(start_s3_server())
        except S3ServerUnavailable as err:
            _skip_or_fail(str(err))
        yield endpoint


@pytest.fixture
def s3_endpoint(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The endpoint URL of an empty S3, with dummy credentials in the environment only."""
    try:
        reset_s3_server(s3_server)
    except S3ServerUnavailable as err:
        _skip_or_fail(str(err))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, ",".join(filter(None, [LOCAL_HOSTS, os.environ.get(name)])))
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    return s3_server
