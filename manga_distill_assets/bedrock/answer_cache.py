"""Every answer Claude was paid for, kept so that no request is paid for twice.

Keyed by (model id, SHA-256 of the system prompt, the caller's key). The SHA-256 of the user prompt is kept
beside the answer: a key asked again with a different user prompt is a different question, so it is not served
from the cache. SQLite in WAL mode with synchronous=FULL, one committed transaction per answer, so a run
killed half-way keeps every answer that had arrived.
"""

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from manga_distill_assets.bedrock.requests import ChatAnswer, ChatRequest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    model_id TEXT NOT NULL,
    system_sha256 TEXT NOT NULL,
    key TEXT NOT NULL,
    user_sha256 TEXT NOT NULL,
    text TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    stop_reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (model_id, system_sha256, key)
)
"""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class AnswerCache:
    """One open connection for one batch; use it as a context manager."""

    def __init__(self, path: str | Path, model_id: str) -> None:
        self.path = Path(path)
        self.model_id = model_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection: sqlite3.Connection | None = None

    def __enter__(self) -> "AnswerCache":
        try:
            self._connection = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=FULL")
            with self._connection:
                self._connection.execute(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise sqlite3.DatabaseError(
                f"Claude answer cache {self.path} cannot be used ({error}). Check that its folder is "
                "writable; if the file is not a SQLite file written by this pipeline, move it aside "
                "(every answer in it would be paid for again)."
            ) from error
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def get_many(self, requests: Sequence[ChatRequest]) -> dict[str, ChatAnswer]:
        """The cached answers to those requests asked before with the same system and user prompt."""
        found: dict[str, ChatAnswer] = {}
        with self._transaction() as connection:
            for request in requests:
                row = connection.execute(
                    "SELECT user_sha256, text, input_tokens, output_tokens, stop_reason FROM answers "
                    "WHERE model_id = ? AND system_sha256 = ? AND key = ?",
                    (self.model_id, sha256(request.system), request.key),
                ).fetchone()
                if row is not None and row[0] == sha256(request.user):
                    found[request.key] = ChatAnswer(request.key, row[1], row[2], row[3], row[4], cached=True)
        return found

    def put(self, request: ChatRequest, answer: ChatAnswer) -> None:
        """Commit one answer before returning; a later answer to the same key replaces it."""
        with self._transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.model_id,
                    sha256(request.system),
                    request.key,
                    sha256(request.user),
                    answer.text,
                    answer.input_tokens,
                    answer.output_tokens,
                    answer.stop_reason,
                    datetime.now(UTC).isoformat(),
                ),
            )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._connection is None:
            raise RuntimeError("AnswerCache is used outside its `with` block.")
        try:
            with self._connection:
                yield self._connection
        except sqlite3.OperationalError as error:
            raise sqlite3.OperationalError(
                f"Claude answer cache {self.path} could not be read or written ({error}). Check that the "
                "folder is writable and that no other process holds the file locked for long."
            ) from error
