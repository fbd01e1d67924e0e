"""Teacher logits cached by (teacher sha256, text), so a teacher never scores the same text twice."""

import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from pathlib import Path

import dagster as dg
import numpy as np

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS logits (teacher TEXT, text TEXT, logits BLOB, PRIMARY KEY (teacher, text))"
)
_CHUNK = 500


class LogitCache(dg.ConfigurableResource):
    """A SQLite file: each write commits in one transaction, so a crash never leaves half a batch."""

    path: str = ".artifacts/logit_cache.sqlite"

    def _connect(self) -> sqlite3.Connection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(_SCHEMA)
        return connection

    def get_many(self, teacher: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with closing(self._connect()) as connection:
            for start in range(0, len(texts), _CHUNK):
                chunk = list(texts[start : start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT text, logits FROM logits WHERE teacher = ? AND text IN ({marks})",
                    [teacher, *chunk],
                )
                found.update((text, np.frombuffer(blob, dtype=np.float32).copy()) for text, blob in rows)
        return found

    def put_many(self, teacher: str, logits: Mapping[str, np.ndarray]) -> None:
        rows = [
            (teacher, text, np.asarray(values, dtype=np.float32).tobytes()) for text, values in logits.items()
        ]
        with closing(self._connect()) as connection, connection:
            connection.executemany("INSERT OR REPLACE INTO logits VALUES (?, ?, ?)", rows)
