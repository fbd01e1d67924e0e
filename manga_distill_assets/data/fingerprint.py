"""Content fingerprints for tables, the basis of the graph's data versions.

A fingerprint depends on the values alone, never on the run, the time or pandas' internal hashing, so the
same content gives the same data version in any process and any release.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from hashlib import sha256

import pandas as pd


def frame_fingerprint(
    frame: pd.DataFrame, columns: Sequence[str] | None = None, *, ordered: bool = True
) -> str:
    """sha256 over the chosen columns, one canonical JSON line per row.

    `ordered=False` makes the fingerprint independent of row order, for tables that are sets.
    """
    columns = list(columns if columns is not None else frame.columns)
    lines = (
        json.dumps(row, ensure_ascii=False, default=str) for row in frame[columns].itertuples(index=False)
    )
    return lines_fingerprint(lines if ordered else sorted(lines), header=json.dumps(columns))


def lines_fingerprint(lines: Iterable[str], header: str = "") -> str:
    digest = sha256(header.encode("utf8"))
    for line in lines:
        digest.update(b"\n")
        digest.update(line.encode("utf8"))
    return digest.hexdigest()
