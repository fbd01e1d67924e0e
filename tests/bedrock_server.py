"""A Bedrock-compatible server for tests: bedrock-runtime's wire protocol on 127.0.0.1, with scripted faults.

It speaks what botocore's service model says bedrock-runtime speaks (rest-json): ``POST
/model/{modelId}/converse`` and ``POST /model/{modelId}/invoke`` (an Anthropic messages body), answers as
JSON, and errors as JSON ``{"message": ...}`` with the error name in the ``x-amzn-ErrorType`` header and the
status the model gives it. So a test drives the real boto3 client, with its signing, retries, timeouts and
error parsing, through an ``endpoint_url``.

The model is a stand-in: it answers ``Paraphrase i of: <message>`` for i = 1..n, where the message is the text
between the prompt's ``<message>`` tags and n the number the prompt asks for. It bills one input token per
word of the prompt and one output token per word of the answer, and keeps, per message: requests received,
answers billed, answers delivered, and requests abandoned (the client hung up, after a timeout or a kill,
before the answer was ready). Abandoned requests are not billed unless ``bills_abandoned`` is set: Bedrock may
bill them (the model ran), and a test of the spend cap sets it so that they are billed as if answered.

Faults are scripted per test with ``BedrockServer.inject``, or drawn at random for every request with
``BedrockServer.randomise`` (a fault mix such as 30% throttling, 5% 5xx, 3% malformed, 20% slow). Use the
``bedrock_server`` fixture (list "tests.bedrock_server" in the root conftest's ``pytest_plugins``): it gives a
server with no faults and zeroed counts, and dummy credentials in the environment for that test only. Where
the server cannot start, the test is skipped locally with the reason, but fails when ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import socket
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NoReturn

import pytest

LOCAL_HOSTS = "127.0.0.1,localhost"
FaultKind = Literal[
    "throttle",
    "unavailable",
    "internal",
    "access_denied",
    "validation",
    "slow",
    "malformed",
    "wrong_count",
    "garbled",
]
# (status, x-amzn-ErrorType) of each error fault, as in botocore's bedrock-runtime service model.
ERRORS: dict[str, tuple[int, str]] = {
    "throttle": (429, "ThrottlingException"),
    "unavailable": (503, "ServiceUnavailableException"),
    "internal": (500, "InternalServerException"),
    "access_denied": (403, "AccessDeniedException"),
    "validation": (400, "ValidationException"),
}
MALFORMED_ANSWER = "Sure! Here are a few ways a customer might say that:\n1. Where's my stuff?"
_ROUTE = re.compile(r"^/model/(?P<model_id>[^/]+)/(?P<operation>converse|invoke)$")
_MESSAGE = re.compile(r"<message>\n(?P<message>.*)\n</message>", re.DOTALL)
_COUNT = re.compile(r"exactly (\d+) paraphrases")


class BedrockServerUnavailable(RuntimeError):
    """The test server could not bind a local port."""


@dataclass
class Fault:
    """What the server does instead of answering, for the next ``times`` requests about ``text`` (None: any).

    ``slow`` waits ``delay_s`` and then answers (or abandons the request if the client hangs up meanwhile);
    ``malformed`` answers prose instead of a JSON list; ``wrong_count`` answers a list of ``count`` items;
    ``garbled`` answers (and bills) a body that is not JSON at all.
    """

    kind: FaultKind
    times: int = 1
    text: str | None = None
    delay_s: float = 0.0
    count: int = 2


def paraphrases_for(message: str, n: int) -> list[str]:
    """The answer the server gives for a message: what a test expects back."""
    return [f"Paraphrase {i} of: {message}" for i in range(1, n + 1)]


class BedrockServer:
    """The server's state: scripted faults and what it received and billed, safe to read from a test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.requests: Counter[str] = Counter()
        self.billed: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.abandoned: Counter[str] = Counter()
        self.waiting: Counter[str] = Counter()
        self.operations: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.model_ids: set[str] = set()
        self.bodies: list[dict[str, Any]] = []
        self.input_tokens = 0
        self.output_tokens = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.bills_abandoned = False
        self.latency_s = 0.0
        self._fault_mix: dict[FaultKind, float] = {}
        self._slow_delay_s = 0.0
        self._rng = random.Random(0)
        self._quota_per_s = 0.0
        self._quota_tokens = 0.0
        self._quota_at = 0.0
        self._http = _QuietHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            for counter in (
                self.requests,
                self.billed,
                self.delivered,
                self.abandoned,
                self.waiting,
                self.operations,
                self.errors,
            ):
                counter.clear()
            self.model_ids.clear()
            self.bodies.clear()
            self.input_tokens = self.output_tokens = 0
            self.peak_in_flight = self.in_flight
            self.bills_abandoned = False
            self.latency_s = 0.0
            self._fault_mix = {}
            self._quota_per_s = 0.0

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each request takes the first one that matches its text and has times left."""
        with self._lock:
            self._faults.extend(faults)

    def randomise(self, mix: dict[FaultKind, float], slow_delay_s: float = 0.0, seed: int = 0) -> None:
        """Give every request not taken by a scripted fault one of these faults, each with its probability
        (a "slow" answer waits ``slow_delay_s``); the draws are repeatable for a seed."""
        if sum(mix.values()) > 1:
            raise ValueError(f"Fault probabilities {mix} add up to more than 1.")
        with self._lock:
            self._fault_mix = dict(mix)
            self._slow_delay_s = slow_delay_s
            self._rng = random.Random(seed)

    def limit_rate(self, per_s: float) -> None:
        """Throttle what exceeds ``per_s`` requests per second (a token bucket holding one second's worth), as
        Bedrock's on-demand quota does."""
        with self._lock:
            self._quota_per_s = per_s
            self._quota_tokens = per_s
            self._quota_at = time.monotonic()

    def _over_quota(self) -> bool:
        """Call with the lock held."""
        if not self._quota_per_s:
            return False
        now = time.monotonic()
        self._quota_tokens = min(
            self._quota_per_s, self._quota_tokens + (now - self._quota_at) * self._quota_per_s
        )
        self._quota_at = now
        if self._quota_tokens < 1:
            return True
        self._quota_tokens -= 1
        return False

    def wait_until_idle(self, timeout_s: float = 30.0) -> None:
        """Wait for every request to be answered or abandoned, so that the counts are final."""
        deadline = time.monotonic() + timeout_s
        while self.in_flight:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.in_flight} requests still open after {timeout_s} s")
            time.sleep(0.01)

    @property
    def tokens_billed(self) -> int:
        return self.input_tokens + self.output_tokens

    def _receive(self, operation: str, model_id: str, body: dict[str, Any], message: str) -> Fault | None:
        with self._lock:
            self.requests[message] += 1
            self.operations[operation] += 1
            self.model_ids.add(model_id)
            self.bodies.append(body)
            for fault in self._faults:
                if fault.times > 0 and fault.text in (None, message):
                    fault.times -= 1
                    return fault
            if self._over_quota():
                return Fault("throttle")
            draw = self._rng.random()
            for kind, probability in self._fault_mix.items():
                if draw < probability:
                    return Fault(kind, delay_s=self._slow_delay_s)
                draw -= probability
        return None

    def _deliver(self, message: str) -> None:
        with self._lock:
            self.delivered[message] += 1

    def _bill(self, message: str, prompt: str, answer: str) -> tuple[int, int]:
        tokens = (len(prompt.split()), len(answer.split()))
        with self._lock:
            self.billed[message] += 1
            self.input_tokens += tokens[0]
            self.output_tokens += tokens[1]
        return tokens

    def _wait(self, message: str, delay_s: float, connection: socket.socket) -> bool:
        """Wait ``delay_s``; False, and the request abandoned, as soon as the client hangs up."""
        with self._lock:
            self.waiting[message] += 1
        stays = _client_stays(connection, delay_s)
        with self._lock:
            self.waiting[message] -= 1
            if not self.waiting[message]:
                del self.waiting[message]
            if not stays:
                self.abandoned[message] += 1
        return stays


class _QuietHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Silent when a client hung up (a timeout, a kill): that is a scripted fault, not a server bug."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _client_stays(connection: socket.socket, delay_s: float) -> bool:
    deadline = time.monotonic() + delay_s
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([connection], [], [], remaining)
        if readable:
            try:
                if not connection.recv(1, socket.MSG_PEEK):
                    return False
            except OSError:
                return False
            time.sleep(min(remaining, 0.01))
    return True


def _handler_for(server: BedrockServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: a test reads the server's counts, not its access log."""

        def do_POST(self) -> None:
            with server._lock:
                server.in_flight += 1
                server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
            try:
                self._handle()
            finally:
                with server._lock:
                    server.in_flight -= 1

        def _handle(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            route = _ROUTE.match(urllib.parse.urlsplit(self.path).path)
            if route is None:
                self._send_json(404, {"message": f"No route for {self.path}"}, "UnknownOperationException")
                return
            operation, model_id = route["operation"], urllib.parse.unquote(route["model_id"])
            prompt = _prompt_of(body)
            message_match = _MESSAGE.search(prompt)
            message = message_match["message"] if message_match else prompt
            count_match = _COUNT.search(prompt)
            n = int(count_match.group(1)) if count_match else 5
            fault = server._receive(operation, model_id, body, message)
            if fault is not None and fault.kind in ERRORS:
                status, error_type = ERRORS[fault.kind]
                with server._lock:
                    server.errors[fault.kind] += 1
                self._send_json(status, {"message": f"Injected {error_type}."}, error_type)
                return
            delay_s = server.latency_s + (fault.delay_s if fault is not None and fault.kind == "slow" else 0)
            answer = _answer_for(fault, message, n)
            if delay_s and not server._wait(message, delay_s, self.connection):
                if server.bills_abandoned:
                    server._bill(message, prompt, answer)
                self.close_connection = True
                return
            input_tokens, output_tokens = server._bill(message, prompt, answer)
            payload = _response_body(operation, model_id, answer, input_tokens, output_tokens)
            if fault is not None and fault.kind == "garbled":
                self._send_bytes(200, json.dumps(payload).encode()[:-7])
                return
            self._send_json(200, payload)
            server._deliver(message)

        def _send_json(self, status: int, payload: dict[str, Any], error_type: str | None = None) -> None:
            self._send_bytes(status, json.dumps(payload).encode(), error_type)

        def _send_bytes(self, status: int, data: bytes, error_type: str | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
            if error_type is not None:
                self.send_header("x-amzn-ErrorType", error_type)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _prompt_of(body: dict[str, Any]) -> str:
    """The text of the last user message, from a Converse body or an Anthropic messages body."""
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content", "")
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


def _answer_for(fault: Fault | None, message: str, n: int) -> str:
    if fault is not None and fault.kind == "malformed":
        return MALFORMED_ANSWER
    if fault is not None and fault.kind == "wrong_count":
        return json.dumps(paraphrases_for(message, fault.count))
    return json.dumps(paraphrases_for(message, n))


def _response_body(
    operation: str, model_id: str, answer: str, input_tokens: int, output_tokens: int
) -> dict[str, Any]:
    if operation == "converse":
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": answer}]}},
            "stopReason": "end_turn",
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
            "metrics": {"latencyMs": 1},
        }
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model_id,
        "content": [{"type": "text", "text": answer}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def _skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"Bedrock test server unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"Bedrock test server unavailable: {reason}")


def start_bedrock_server() -> BedrockServer:
    try:
        server = BedrockServer()
    except OSError as err:
        raise BedrockServerUnavailable(f"could not bind a port on 127.0.0.1 ({err})") from err
    server.start()
    return server


@pytest.fixture(scope="session")
def bedrock_server_session() -> Iterator[BedrockServer]:
    """One server for the whole session; each test gets it reset."""
    try:
        server = start_bedrock_server()
    except BedrockServerUnavailable as err:
        _skip_or_fail(str(err))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bedrock_server(
    bedrock_server_session: BedrockServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> BedrockServer:
    """A server with no faults and zeroed counts, and dummy AWS credentials in this test's environment only.

    Shared AWS config and credential files point at nothing, so nothing on this machine (a profile, a
    retry mode, a real key) leaks into the test.
    """
    bedrock_server_session.reset()
    no_files = tmp_path_factory.mktemp("no-aws-files")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-never-shown")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key-never-shown")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(no_files / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(no_files / "credentials"))
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, ",".join(filter(None, [LOCAL_HOSTS, os.environ.get(name)])))
    for name in (
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_RETRY_MODE",
        "AWS_MAX_ATTEMPTS",
    ):
        monkeypatch.delenv(name, raising=False)
    return bedrock_server_session
