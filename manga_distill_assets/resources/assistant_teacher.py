"""The teacher that writes the assistant's answers: Claude on Bedrock, or offline from the catalogue.

Claude goes through the one shared client (`BedrockClaude`): PII scrubbed before sending, bounded concurrency,
retries, a hard run budget, every answer committed to its cache as it arrives and never paid for twice. The
request key is a hash of the system prompt's version and the question, so a new prompt version is asked
again. Refusals, empty and over-long answers are dropped and counted; the rest are the student's targets.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from hashlib import sha256

import dagster as dg
from pydantic import Field

from manga_distill_assets.bedrock.errors import BedrockBudgetExceeded
from manga_distill_assets.bedrock.requests import ChatRequest, ChatRun
from manga_distill_assets.data.assistant_prompt import SystemPrompt, system_prompt
from manga_distill_assets.data.catalogue_assistant import OFFLINE_VOICE_VERSION, catalogue_answer, is_refusal
from manga_distill_assets.resources.claude import BedrockClaude

_LOGGER = logging.getLogger(__name__)


@dataclass
class TeacherRun:
    """What one call brought back: kept answers by question, and counts of everything else. `over_budget`
    counts questions not sent because the budget stopped the run; `failed` those Bedrock never answered."""

    answers: dict[str, str] = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    cached: int = 0
    over_budget: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    spent_usd: float = 0.0
    worst_case_usd: float = 0.0


class AssistantTeacher(dg.ConfigurableResource):
    """What every teacher shares: the versioned system prompt and the rules for a usable answer."""

    prompt_version: str | None = Field(
        default=None, description="System prompt version (assistant_system_prompts.csv); None: the newest."
    )
    max_tokens: int = Field(default=256, gt=0, description="Answer length limit sent with each request.")
    max_answer_words: int = Field(default=80, gt=0, description="Longer answers are dropped as over-long.")

    @property
    @abstractmethod
    def backend(self) -> str: ...

    @property
    @abstractmethod
    def model_id(self) -> str: ...

    @abstractmethod
    def answer_all(self, questions: Sequence[str], log: logging.Logger = _LOGGER) -> TeacherRun:
        """Kept answers to the distinct questions, and counts of what was sent, cached, dropped, paid."""

    def prompt(self) -> SystemPrompt:
        return system_prompt(self.prompt_version)

    def verdict(self, text: str) -> str:
        """Why an answer is not a training target ("" when it is one)."""
        if not text.strip():
            return "empty"
        if is_refusal(text):
            return "refusal"
        if len(text.split()) > self.max_answer_words:
            return "over_long"
        return ""

    def _keep(self, run: TeacherRun, raw: dict[str, str]) -> TeacherRun:
        for question, text in raw.items():
            verdict = self.verdict(text)
            if verdict:
                run.dropped[verdict] += 1
            else:
                run.answers[question] = text.strip()
        return run


class OfflineAssistantTeacher(AssistantTeacher):
    """Answers from the catalogue in the assistant's voice (data/catalogue_assistant.py): no AWS, no cost."""

    @property
    def backend(self) -> str:
        return "offline"

    @property
    def model_id(self) -> str:
        return OFFLINE_VOICE_VERSION

    def answer_all(self, questions: Sequence[str], log: logging.Logger = _LOGGER) -> TeacherRun:
        raw = {question: catalogue_answer(question) for question in dict.fromkeys(questions)}
        run = TeacherRun(
            sent=len(raw),
            input_tokens=sum(len(question.split()) for question in raw),
            output_tokens=sum(len(answer.split()) for answer in raw.values()),
        )
        return self._keep(run, raw)


class BedrockAssistantTeacher(AssistantTeacher):
    """Claude on Bedrock (temperature 0 unless the client says otherwise) through the shared client."""

    claude: BedrockClaude = Field(description="The Bedrock client every asset that calls Claude shares.")

    @property
    def backend(self) -> str:
        return "bedrock"

    @property
    def model_id(self) -> str:
        return self.claude.model_id

    def answer_all(self, questions: Sequence[str], log: logging.Logger = _LOGGER) -> TeacherRun:
        system = self.prompt()
        by_key = {self.request_key(system, question): question for question in dict.fromkeys(questions)}
        requests = [
            ChatRequest(key, system.text, question, self.max_tokens) for key, question in by_key.items()
        ]
        over_budget = 0
        try:
            chat: ChatRun = self.claude.chat(requests, log)
        except BedrockBudgetExceeded as stop:
            chat = stop.run  # type: ignore[assignment]
            over_budget = len(requests) - len(chat.answers) - len(chat.failed)
        for key, reason in list(chat.failed.items())[:5]:
            log.warning(f"Claude gave no answer to {by_key[key]!r}: {reason}")
        run = TeacherRun(
            sent=chat.sent,
            cached=chat.cached,
            over_budget=over_budget,
            failed=len(chat.failed),
            input_tokens=chat.input_tokens,
            output_tokens=chat.output_tokens,
            spent_usd=chat.spent_usd,
            worst_case_usd=chat.worst_case_usd,
        )
        run.dropped["over_long"] += sum(
            answer.stop_reason == "max_tokens" for answer in chat.answers.values()
        )
        raw = {
            by_key[key]: answer.text
            for key, answer in chat.answers.items()
            if answer.stop_reason != "max_tokens"
        }
        return self._keep(run, raw)

    @staticmethod
    def request_key(system: SystemPrompt, question: str) -> str:
        """A hash, never the customer's text: the key is stored in the cache as given."""
        return sha256(f"{system.version}\n{question}".encode()).hexdigest()
