"""What a caller asks Claude and what comes back: the one vocabulary every asset that calls Claude shares."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatRequest:
    """One question for Claude.

    ``key`` is the caller's stable name for the question: together with the model and the system prompt it
    is the cache key, so the same key is never paid for twice; it is stored as given, so build it from
    scrubbed text or a hash, never from raw customer text. ``user`` may hold customer text: the client
    scrubs PII from it (and from ``system``) before anything is sent. ``max_tokens`` bounds the answer, and
    so the request's worst-case cost.
    """

    key: str
    system: str
    user: str
    max_tokens: int


@dataclass(frozen=True)
class ChatAnswer:
    """Claude's answer to one request, with the tokens it was billed; ``cached`` answers cost nothing now."""

    key: str
    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str
    cached: bool


@dataclass
class ChatRun:
    """Everything one ``chat`` call brought back, and what it cost.

    ``failed`` maps a key to why it has no answer (retries exhausted, or a request Bedrock rejected).
    ``spent_usd`` is what the answers that arrived were billed; ``worst_case_usd`` adds the worst case of
    every request that was abandoned (timed out or cut off) and may still be billed, so the true spend lies
    between the two. ``sent`` counts requests sent (retries included), ``cached`` the answers from the cache.
    """

    answers: dict[str, ChatAnswer]
    failed: dict[str, str]
    sent: int
    cached: int
    input_tokens: int
    output_tokens: int
    spent_usd: float
    worst_case_usd: float
    retries: int = 0
    abandoned: int = 0
