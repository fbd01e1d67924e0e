"""The teacher that writes the assistant's answers: offline from the catalogue, or Claude on Bedrock.

Whatever the backend, a question is asked once per backend, model and system-prompt version: answers (refusals
included, so they are not paid for again) are committed to a SQLite cache as they arrive. Before anything is
sent, each uncached question's worst case (its prompt plus `max_tokens` of answer, at the configured prices)
is added up, and questions past `max_run_usd` are not sent but counted. Refusals, empty and over-long answers
are dropped and counted; the rest are the student's training targets.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg
from pydantic import Field

from manga_distill_assets.data.assistant_prompt import SystemPrompt, system_prompt
from manga_distill_assets.data.catalogue_assistant import OFFLINE_VOICE_VERSION, catalogue_answer, is_refusal
from manga_distill_assets.resources.paraphrase_cache import CacheKey, ParaphraseCache

_LOGGER = logging.getLogger(__name__)
# Tokens a chat request adds around its texts (role markers); a generous bound, for the worst case.
_REQUEST_OVERHEAD_TOKENS = 32


@dataclass(frozen=True)
class BackendReply:
    """One question's raw answer and its billed tokens."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class TeacherRun:
    """What one call brought back: kept answers by question, and counts of everything else."""

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
    """A cached, budgeted teacher; subclasses say how one batch of questions is answered."""

    cache_path: str = ".artifacts/teacher_answer_cache.sqlite"
    prompt_version: str | None = Field(
        default=None, description="System prompt version (assistant_system_prompts.csv); None: the newest."
    )
    max_tokens: int = Field(default=256, gt=0, description="Answer length limit sent with each request.")
    max_answer_words: int = Field(default=80, gt=0, description="Longer answers are dropped as over-long.")
    max_run_usd: float = Field(default=5.0, ge=0, description="No request is sent past this worst case.")
    input_usd_per_mtok: float = Field(default=0.0, ge=0, description="Price of a million input tokens.")
    output_usd_per_mtok: float = Field(default=0.0, ge=0, description="Price of a million output tokens.")

    @property
    @abstractmethod
    def backend(self) -> str: ...

    @property
    @abstractmethod
    def model_id(self) -> str: ...

    @abstractmethod
    def ask(
        self, system: SystemPrompt, questions: Sequence[str], log: logging.Logger
    ) -> dict[str, BackendReply]:
        """Answers for the questions that were answered; a question missing from the result failed."""

    def prompt(self) -> SystemPrompt:
        return system_prompt(self.prompt_version)

    def usd(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1e6

    def worst_case_usd(self, system: SystemPrompt, question: str) -> float:
        """A bound on one request's cost: words over-count nothing a tokenizer would split less."""
        prompt_tokens = 2 * (len(system.text.split()) + len(question.split())) + _REQUEST_OVERHEAD_TOKENS
        return self.usd(prompt_tokens, self.max_tokens)

    def answer_all(self, questions: Sequence[str], log: logging.Logger = _LOGGER) -> TeacherRun:
        system = self.prompt()
        cache = ParaphraseCache(self.cache_path)
        keys = {question: self._key(system, question) for question in dict.fromkeys(questions)}
        found = cache.get_many(keys.values())
        raw = {question: found[key][0] for question, key in keys.items() if key in found}
        run = TeacherRun(cached=len(raw))
        to_send = []
        for question in keys:
            if question in raw:
                continue
            worst = self.worst_case_usd(system, question)
            if run.worst_case_usd + worst > self.max_run_usd:
                run.over_budget += 1
                continue
            run.worst_case_usd += worst
            to_send.append(question)
        if run.over_budget:
            log.warning(
                f"{run.over_budget} questions not sent: their worst case would pass "
                f"max_run_usd={self.max_run_usd}. "
                "Raise max_run_usd to send them; the cache keeps what was answered."
            )
        if to_send:
            replies = self.ask(system, to_send, log)
            cache.put_many({keys[question]: [reply.text] for question, reply in replies.items()})
            run.sent = len(to_send)
            run.failed = len(to_send) - len(replies)
            run.input_tokens = sum(reply.input_tokens for reply in replies.values())
            run.output_tokens = sum(reply.output_tokens for reply in replies.values())
            run.spent_usd = self.usd(run.input_tokens, run.output_tokens)
            raw |= {question: reply.text for question, reply in replies.items()}
        for question, text in raw.items():
            verdict = self.verdict(text)
            if verdict:
                run.dropped[verdict] += 1
            else:
                run.answers[question] = text.strip()
        return run

    def verdict(self, text: str) -> str:
        """Why an answer is not a training target ("" when it is one)."""
        if not text.strip():
            return "empty"
        if is_refusal(text):
            return "refusal"
        if len(text.split()) > self.max_answer_words:
            return "over_long"
        return ""

    def _key(self, system: SystemPrompt, question: str) -> CacheKey:
        return CacheKey(self.backend, self.model_id, system.version, question, 1)


class OfflineAssistantTeacher(AssistantTeacher):
    """Answers from the catalogue in the assistant's voice (data/catalogue_assistant.py): no AWS needed."""

    @property
    def backend(self) -> str:
        return "offline"

    @property
    def model_id(self) -> str:
        return OFFLINE_VOICE_VERSION

    def ask(
        self, system: SystemPrompt, questions: Sequence[str], log: logging.Logger
    ) -> dict[str, BackendReply]:
        replies = {}
        for question in questions:
            text = catalogue_answer(question)
            replies[question] = BackendReply(text, len(question.split()), len(text.split()))
        return replies
