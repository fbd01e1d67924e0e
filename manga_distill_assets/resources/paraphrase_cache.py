"""A persistent cache of paraphrases, so a text goes to a paid backend once per backend, model and prompt.

SQLite in WAL mode with synchronous=FULL: each ``put_many`` is one committed transaction, so a run killed
half-way keeps every batch it already paid for, and several processes may read while one writes.
"""

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS paraphrases (
    key_sha256 TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model_id TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    text TEXT NOT NULL,
    n INTEGER NOT NULL,
    paraphrases_json TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""
# SQLite limits the number of bound parameters per statement; 500 stays under every build's limit.
_LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class CacheKey:
    """Everything an answer depends on: the same key always means the same request."""

    backend: str
    model_id: str
    prompt_version: str
    text: str
    n: int

    @property
    def sha256(self) -> str:
        fields = [self.backend, self.model_id, self.prompt_version, self.text, self.n]
        return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).hexdigest()


class ParaphraseCache:
    """Opened per operation rather than held, so the cache is safe to reopen from any process or run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute(_SCHEMA)

    def get_many(self, keys: Iterable[CacheKey]) -> dict[CacheKey, list[str]]:
        """The cached paraphrases of those keys that have an entry; keys never stored are simply absent."""
        by_digest = {key.sha256: key for key in keys}
        digests = list(by_digest)
        found: dict[CacheKey, list[str]] = {}
        with self._connect() as connection:
            for start in range(0, len(digests), _LOOKUP_CHUNK):
                chunk = digests[start : start + _LOOKUP_CHUNK]
                rows = connection.execute(
                    "SELECT key_sha256, paraphrases_json FROM paraphrases "
                    f"WHERE key_sha256 IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
                for digest, paraphrases_json in rows:
                    found[by_digest[digest]] = json.loads(paraphrases_json)
        return found

    def put_many(self, items: Mapping[CacheKey, Sequence[str]]) -> None:
        """Store a batch in one transaction, committed before returning; a later put of a key replaces it."""
        created_at = datetime.now(UTC).isoformat()
        rows = [
            (
                key.sha256,
                key.backend,
                key.model_id,
                key.prompt_version,
                key.text,
                key.n,
                json.dumps(list(paraphrases), ensure_ascii=False),
                created_at,
            )
            for key, paraphrases in items.items()
        ]
        with self._connect() as connection:
            connection.executemany("INSERT OR REPLACE INTO paraphrases VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection whose block commits on success and rolls back on error, then closes."""
        try:
            with closing(sqlite3.connect(self.path, timeout=60)) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=FULL")
                with connection:
                    yield connection
        except sqlite3.OperationalError as error:
            raise sqlite3.OperationalError(
                f"Paraphrase cache {self.path} could not be read or written ({error}). Check that the folder "
                "exists and is writable, and that no other process holds the file locked for long."
            ) from error
        except sqlite3.DatabaseError as error:
            raise sqlite3.DatabaseError(
                f"Paraphrase cache {self.path} cannot be used ({error}). If it is not a SQLite file written "
                "by this pipeline, move it aside or point cache_path at a new file; the cache is rebuilt "
                "from scratch, at the cost of paraphrasing every text again."
            ) from error
