"""The Bedrock → student fallback with the real boto3 client against the loopback Bedrock server.

The deadline is checked as the time each student call is given: the wall-clock latency of a loaded machine
is measured by `benchmarks/fallback_llm.py fallback` (answers over the deadline, p99), not asserted here.
"""

import pytest

from manga_distill_assets.distill.chat_model import LlamaShape, tiny_llama, train_tokenizer
from manga_distill_assets.distill.generation import generate_answers
from manga_distill_assets.serving.fallback import (
    BedrockClaude,
    CircuitBreaker,
    FallbackAssistant,
    Source,
)
from tests.bedrock_server import Fault

SYSTEM = "Answer briefly."
DEADLINE_S = 1.0
RESERVE_S = 0.4
MARGIN_S = 0.1
QUESTIONS = [f"Is volume {number} of Berserk in stock?" for number in range(1, 41)]


class TimedStudent:
    """A real (untrained) tiny Llama generating within the time it is given, which it records."""

    def __init__(self) -> None:
        self.tokenizer = train_tokenizer([SYSTEM, *QUESTIONS], vocab_size=300)
        shape = LlamaShape(hidden_size=32, layers=1, heads=2, kv_heads=1, intermediate_size=64)
        self.model = tiny_llama(self.tokenizer, shape, 0)
        self.given_s: list[float] = []

    def __call__(self, question: str, time_left_s: float) -> str:
        self.given_s.append(time_left_s)
        answers = generate_answers(
            self.model, self.tokenizer, SYSTEM, [question], max_new_tokens=24, max_time_s=time_left_s
        )
        return answers[0] or "…"


@pytest.fixture
def student():
    return TimedStudent()


def assistant_for(server, student, breaker: CircuitBreaker | None = None) -> FallbackAssistant:
    claude = BedrockClaude(SYSTEM, endpoint_url=server.endpoint, timeout_s=DEADLINE_S - RESERVE_S)
    return FallbackAssistant(
        claude,
        student,
        deadline_s=DEADLINE_S,
        student_reserve_s=RESERVE_S,
        student_margin_s=MARGIN_S,
        breaker=breaker or CircuitBreaker(),
    )


def test_claude_answers_when_bedrock_is_healthy(bedrock_server, student):
    answer = assistant_for(bedrock_server, student).answer("Who wrote Berserk?")
    assert answer.source is Source.CLAUDE and answer.reason == ""
    assert "Who wrote Berserk?" in answer.text
    assert bedrock_server.bodies[0]["inferenceConfig"]["temperature"] == 0.0


def test_under_a_full_outage_every_question_is_answered_by_the_student_within_its_deadline(
    bedrock_server, student
):
    bedrock_server.inject(Fault("unavailable", times=10**6))
    assistant = assistant_for(bedrock_server, student, CircuitBreaker(failure_threshold=3, reset_after_s=60))
    answers = [assistant.answer(question) for question in QUESTIONS]
    assert {answer.source for answer in answers} == {Source.STUDENT}
    assert len(student.given_s) == len(QUESTIONS)
    assert all(0 < given <= DEADLINE_S - MARGIN_S for given in student.given_s)
    assert [answer.reason for answer in answers[:4]] == ["server_error"] * 3 + ["circuit_open"]
    assert sum(bedrock_server.requests.values()) == 3  # the open breaker spares Bedrock the rest


def test_throttling_goes_to_the_student_and_is_named(bedrock_server, student):
    bedrock_server.inject(Fault("throttle", text="Who wrote Monster?"))
    answer = assistant_for(bedrock_server, student).answer("Who wrote Monster?")
    assert (answer.source, answer.reason) == (Source.STUDENT, "throttled")


def test_a_slow_claude_times_out_to_the_student_within_the_deadline(bedrock_server, student):
    bedrock_server.inject(Fault("slow", delay_s=3.0))
    answer = assistant_for(bedrock_server, student).answer("Who wrote Monster?")
    assert (answer.source, answer.reason) == (Source.STUDENT, "timeout")
    (given,) = student.given_s
    assert 0 < given <= RESERVE_S - MARGIN_S  # the wait for Claude came out of the deadline


def test_under_30_percent_throttling_the_split_is_70_30_and_the_student_answers_within_the_deadline(
    bedrock_server, student
):
    throttled = [question for index, question in enumerate(QUESTIONS) if index % 10 in (0, 3, 6)]
    bedrock_server.inject(*(Fault("throttle", text=question) for question in throttled))
    assistant = assistant_for(bedrock_server, student)
    answers = [assistant.answer(question) for question in QUESTIONS]
    by_student = [answer for answer in answers if answer.source is Source.STUDENT]
    assert len(by_student) == len(throttled) == 12
    assert {answer.reason for answer in by_student} == {"throttled"}
    assert len(student.given_s) == 12 and all(0 < given <= DEADLINE_S - MARGIN_S for given in student.given_s)


def test_questions_are_pii_scrubbed_before_they_reach_bedrock(bedrock_server, student):
    assistant_for(bedrock_server, student).answer("Where is my order? Mail me at aiko.tanaka@example.com")
    sent = bedrock_server.bodies[0]["messages"][0]["content"][0]["text"]
    assert "aiko.tanaka@example.com" not in sent


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("   ", "empty"),
        ("x" * 1001, "over the limit"),
        (b"caf\xe9 manga", "not valid UTF-8"),
        ("caf\udce9 manga", "not valid UTF-8"),
    ],
)
def test_bad_questions_are_refused_with_a_reason_before_any_call(bedrock_server, student, question, message):
    with pytest.raises(ValueError, match=message):
        assistant_for(bedrock_server, student).answer(question)
    assert not bedrock_server.requests


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_the_threshold_and_lets_one_probe_through_when_half_open():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=10, clock=clock)
    breaker.record_failure()
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now = 10
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # one probe at a time


def test_a_failed_probe_reopens_the_breaker_and_a_successful_one_closes_it():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=5, clock=clock)
    breaker.record_failure()
    clock.now = 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now = 10
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def test_the_student_reserve_must_fit_inside_the_deadline(student):
    with pytest.raises(ValueError, match="student_reserve_s"):
        FallbackAssistant(lambda question: question, student, deadline_s=0.5, student_reserve_s=0.5)
