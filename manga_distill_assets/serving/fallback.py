"""MangaAssist's fallback: Claude on Bedrock within a deadline, otherwise the self-hosted student.

Bedrock's SLA is 99.5%; the customer should see an answer, not an error page. A question goes to Claude (PII
scrubbed first) with a deadline; throttling, 5xx, a timeout or any other failed call sends it to the student,
and so does an open circuit breaker, which stops calling Claude after `failure_threshold` failures in a row
and lets one probe through every `reset_after_s` (half-open) until a probe succeeds. Every answer says who
gave it and why. The student's generation time is reserved out of the deadline, so even under a full outage
each question is answered within it.

    python -m manga_distill_assets.serving.fallback "Who wrote Berserk?" --student PATH_TO_LLM_STUDENT
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import boto3
import torch
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ReadTimeoutError
from transformers import AutoModelForCausalLM, AutoTokenizer

from manga_distill_assets.data.manga_qa import MAX_QUESTION_CHARS, check_question
from manga_distill_assets.data.pii import scrub_pii
from manga_distill_assets.distill.generation import generate_answers

DEFAULT_MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
_THROTTLING = frozenset({"ThrottlingException", "TooManyRequestsException"})


class Source(StrEnum):
    CLAUDE = "claude"
    STUDENT = "student"


@dataclass(frozen=True)
class FallbackAnswer:
    """An answer and who gave it; `reason` says why the student answered ("" when Claude did)."""

    text: str
    source: Source
    reason: str
    latency_ms: float


class CircuitBreaker:
    """Closed: calls pass. Open after `failure_threshold` failures in a row: calls are refused until
    `reset_after_s` has passed, then one probe passes (half-open); its success closes the breaker, its failure
    opens it again for another `reset_after_s`."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_after_s <= 0:
            raise ValueError("CircuitBreaker needs failure_threshold >= 1 and reset_after_s > 0.")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half_open" if self._clock() - self._opened_at >= self.reset_after_s else "open"

    def allow(self) -> bool:
        """May this call go to Claude? In half-open state only one probe at a time may."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self.reset_after_s or self._probing:
                return False
            self._probing = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._probing = 0, None, False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            self._probing = False


class ClaudeUnavailable(RuntimeError):
    """Claude did not answer; `reason` is one word for the answer's record (throttled, server_error, ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class BedrockClaude:
    """Claude through Converse (temperature 0) with botocore's timeouts set to the deadline and no retries:
    a retry could not finish inside the deadline, and the student is the better second try."""

    def __init__(
        self,
        system: str,
        *,
        model_id: str = DEFAULT_MODEL_ID,
        region_name: str = "us-east-1",
        endpoint_url: str | None = None,
        timeout_s: float = 1.0,
        max_tokens: int = 256,
    ) -> None:
        self.system, self.model_id, self.max_tokens = system, model_id, max_tokens
        self._client = boto3.client(
            "bedrock-runtime",
            region_name=region_name,
            endpoint_url=endpoint_url,
            config=Config(
                connect_timeout=timeout_s,
                read_timeout=timeout_s,
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=32,
            ),
        )

    def __call__(self, question: str) -> str:
        try:
            response = self._client.converse(
                modelId=self.model_id,
                system=[{"text": self.system}],
                messages=[{"role": "user", "content": [{"text": question}]}],
                inferenceConfig={"maxTokens": self.max_tokens, "temperature": 0.0},
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            reason = (
                "throttled"
                if code in _THROTTLING or status == 429
                else "server_error"
                if status >= 500
                else "client_error"
            )
            raise ClaudeUnavailable(reason, f"{code or status}: {error}") from error
        except ReadTimeoutError as error:
            raise ClaudeUnavailable("timeout", str(error)) from error
        except NoCredentialsError as error:
            raise ClaudeUnavailable("no_credentials", str(error)) from error
        except BotoCoreError as error:
            raise ClaudeUnavailable("unreachable", str(error)) from error
        blocks = response.get("output", {}).get("message", {}).get("content", [])
        text = "".join(block.get("text", "") for block in blocks).strip()
        if not text:
            raise ClaudeUnavailable("empty", "Claude returned an empty answer")
        return text


class FallbackAssistant:
    """Answers every question within `deadline_s`: Claude if it answers in time, the student otherwise.

    The student generates until `student_margin_s` before the deadline (one decoding step and the decoding of
    its text must still fit), so under load its answer may be cut short, but it is never late.
    """

    def __init__(
        self,
        claude: Callable[[str], str],
        student: Callable[[str, float], str],
        *,
        deadline_s: float = 1.5,
        student_reserve_s: float = 0.5,
        student_margin_s: float = 0.1,
        breaker: CircuitBreaker | None = None,
        max_concurrency: int = 16,
        max_question_chars: int = MAX_QUESTION_CHARS,
    ) -> None:
        if not 0 < student_reserve_s < deadline_s:
            raise ValueError(
                f"student_reserve_s ({student_reserve_s}) must be positive and below "
                f"deadline_s ({deadline_s})."
            )
        self.claude, self.student = claude, student
        self.deadline_s, self.student_reserve_s = deadline_s, student_reserve_s
        self.student_margin_s = student_margin_s
        self.breaker = breaker or CircuitBreaker()
        self.max_question_chars = max_question_chars
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="claude")

    def answer(self, question: str | bytes) -> FallbackAnswer:
        started = time.perf_counter()
        text = check_question(_decoded(question), "question", self.max_question_chars)
        if not self.breaker.allow():
            return self._from_student(text, "circuit_open", started)
        future = self._pool.submit(self.claude, scrub_pii(text))
        try:
            reply = future.result(timeout=self.deadline_s - self.student_reserve_s)
        except FutureTimeout:
            self.breaker.record_failure()
            return self._from_student(text, "timeout", started)
        except ClaudeUnavailable as error:
            self.breaker.record_failure()
            return self._from_student(text, error.reason, started)
        self.breaker.record_success()
        return FallbackAnswer(reply, Source.CLAUDE, "", (time.perf_counter() - started) * 1000)

    def _from_student(self, question: str, reason: str, started: float) -> FallbackAnswer:
        """The student gets what is left of the deadline, so its answer arrives in time even if cut short."""
        elapsed_s = time.perf_counter() - started
        time_left_s = max(self.deadline_s - elapsed_s - self.student_margin_s, 0.01)
        text = self.student(question, time_left_s)
        return FallbackAnswer(text, Source.STUDENT, reason, (time.perf_counter() - started) * 1000)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _decoded(question: str | bytes) -> str:
    """Text from bytes, or from a command line decoded with surrogate escapes; non-UTF-8 is refused."""
    try:
        if isinstance(question, bytes):
            return question.decode("utf-8")
        question.encode("utf-8")
    except UnicodeError:
        raise ValueError("The question is not valid UTF-8 text. Send it encoded as UTF-8.") from None
    return question


class StudentModel:
    """The fine-tuned student from its `save_pretrained` folder (safetensors only), answering greedily."""

    def __init__(self, folder: Path, system: str, max_new_tokens: int = 64) -> None:
        self.model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.system, self.max_new_tokens = system, max_new_tokens
        self._lock = threading.Lock()
        generate_answers(
            self.model, self.tokenizer, system, ["warm-up"], max_new_tokens=1
        )  # first call is slow

    def __call__(self, question: str, time_left_s: float) -> str:
        with self._lock, torch.inference_mode():
            return generate_answers(
                self.model,
                self.tokenizer,
                self.system,
                [question],
                max_new_tokens=self.max_new_tokens,
                max_time_s=time_left_s,
            )[0]


def main(argv: list[str] | None = None) -> int:
    from manga_distill_assets.data.assistant_prompt import system_prompt

    parser = argparse.ArgumentParser(
        description="Answer a question with Claude, or the student if Claude fails."
    )
    parser.add_argument("question")
    parser.add_argument("--student", required=True, type=Path, help="the llm_student model folder")
    parser.add_argument("--model-id", default=DEFAULT_MODEL_ID)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--endpoint-url", default=None, help="a Bedrock-compatible endpoint (default: AWS)")
    parser.add_argument("--deadline-ms", type=float, default=1500.0)
    parser.add_argument("--student-reserve-ms", type=float, default=500.0)
    args = parser.parse_args(argv)
    system = system_prompt().text
    assistant = FallbackAssistant(
        BedrockClaude(
            system,
            model_id=args.model_id,
            region_name=args.region,
            endpoint_url=args.endpoint_url,
            timeout_s=(args.deadline_ms - args.student_reserve_ms) / 1000,
        ),
        StudentModel(args.student, system),
        deadline_s=args.deadline_ms / 1000,
        student_reserve_s=args.student_reserve_ms / 1000,
    )
    try:
        answer = assistant.answer(args.question)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        assistant.close()
    print(json.dumps(asdict(answer), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
