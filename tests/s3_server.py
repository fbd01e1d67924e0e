"""A real S3 endpoint for tests: moto's standalone server on a free local port, reached over HTTP.

Talking HTTP to a server (rather than patching botocore in-process) tests what production runs: a real
boto3 client, an `endpoint_url`, request signing, pagination and error responses.

Use the `s3_endpoint` fixture (list "tests.s3_server" in the root conftest's `pytest_plugins`, or import the
fixtures into a test module): it gives the endpoint URL of an empty S3, with dummy credentials in the
environment for that test only; `s3_client` is a boto3 client on it. `enforced_iam` makes the server deny
what an IAM policy does not allow, for tests of access errors. Where the server cannot start, the test is
skipped locally with the reason, but fails when `CI` is set: CI must never silently skip it.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, NoReturn

import boto3
import pytest

START_TIMEOUT_S = 10.0
LOCAL_HOSTS = "127.0.0.1,localhost"
# moto's own dummy keys: the server takes any key until IAM is enforced, and these clients act before that.
SETUP_KEY_ID = "testing"
SETUP_SECRET = "testing"
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
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SETUP_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SETUP_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, ",".join(filter(None, [LOCAL_HOSTS, os.environ.get(name)])))
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    return s3_server


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    """A boto3 client on the empty S3 of `s3_endpoint`, with the setup keys."""
    return admin_client(s3_endpoint)


def admin_client(endpoint: str) -> Any:
    """A client with the setup keys, for preparing and inspecting S3 around the code under test."""
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=SETUP_KEY_ID, aws_secret_access_key=SETUP_SECRET
    )


def object_keys(client: Any, bucket: str) -> list[str]:
    """Every key in `bucket`, sorted, over as many pages as it takes."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@contextmanager
def enforced_iam(endpoint: str, policy: list[dict]) -> Iterator[tuple[str, str]]:
    """Keys of a new IAM user allowed only `policy`, with the server enforcing IAM until the block ends.

    Access is then really denied by the server, not simulated in the client: moto's server enforces IAM
    policies once `POST /moto-api/reset-auth` sets the number of unauthenticated requests it still allows
    to 0.
    """
    iam = boto3.client(
        "iam", endpoint_url=endpoint, aws_access_key_id=SETUP_KEY_ID, aws_secret_access_key=SETUP_SECRET
    )
    iam.create_user(UserName="pipeline")
    document = {"Version": "2012-10-17", "Statement": policy}
    iam.put_user_policy(UserName="pipeline", PolicyName="pipeline", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName="pipeline")["AccessKey"]
    _set_unauthenticated_allowance(endpoint, "0")
    try:
        yield key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        _set_unauthenticated_allowance(endpoint, "inf")


def _set_unauthenticated_allowance(endpoint: str, count: str) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with _DIRECT.open(request, timeout=10) as response:
        response.read()


# moto 5.2.6 and later authorise a request by its API operation's name (`s3:ListObjectsV2`, `s3:HeadObject`)
# where AWS checks the IAM action that covers it (`s3:ListBucket`, `s3:GetObject`). A policy granting an IAM
# action also grants those operation names, so each test denies exactly what AWS would deny, on either moto.
_OPERATIONS_OF_ACTION = {
    "s3:ListBucket": ["s3:ListObjectsV2", "s3:ListObjects", "s3:HeadBucket"],
    "s3:GetObject": ["s3:HeadObject"],
}


def allow(actions: list[str], *resources: str) -> dict:
    """An IAM policy statement allowing `actions` on the buckets or keys `resources`."""
    granted = [name for action in actions for name in [action, *_OPERATIONS_OF_ACTION.get(action, [])]]
    return {"Effect": "Allow", "Action": granted, "Resource": [f"arn:aws:s3:::{name}" for name in resources]}
