"""A user's graded relevance file: one row per (query, candidate), checked before anything trains on it.

Columns: query_id, query, doc_id, doc, grade (an integer 0-3), split (train, validation or test). CSV or
Parquet. Each query's rows are its candidate list as the first-stage retrieval returned it. A click log
(query, doc_id, doc, clicked, one row per impression, no grade) is graded from its click-through rates
first (`rerank_clicks`) and then checked the same way.

A malformed file (a missing column, a grade outside 0-3, an unknown split, a pair twice, one query id with two
texts) is refused. What real relevance logs routinely hold is skipped and counted instead: a candidate with an
empty doc, a query left with fewer than two candidates (nothing to rank), and a query whose candidates are all
graded 0 (every order is equally good, so NDCG is undefined and it teaches no ranking).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from manga_distill_assets.data.rerank_clicks import (
    CLICK_COLUMNS,
    ClickLogError,
    graded_from_clicks,
    is_click_log,
)
from manga_distill_assets.data.rerank_pairs import MAX_GRADE, PAIR_COLUMNS, SPLITS


class RerankFileError(ValueError):
    """The file cannot be used as it is; the message names the rows and what to change."""


@dataclass(frozen=True)
class CheckedPairs:
    """The usable pairs, and how many rows and queries were skipped for each reason."""

    frame: pd.DataFrame
    skipped: dict[str, int] = field(default_factory=dict)


def read_rerank_file(path: str | Path) -> CheckedPairs:
    path = Path(path)
    if not path.is_file():
        raise RerankFileError(f"Relevance file {path} does not exist: point `path` at a CSV or Parquet file.")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, keep_default_na=False)
    if is_click_log(frame.columns):
        try:
            frame = graded_from_clicks(frame, str(path))
        except ClickLogError as error:
            raise RerankFileError(str(error)) from error
    return check_rerank_pairs(frame, str(path))


def check_rerank_pairs(frame: pd.DataFrame, source: str) -> CheckedPairs:
    """`frame`'s rankable pairs, typed, with the skip counts; a `RerankFileError` naming the first problem
    found in `source` when the file is malformed or leaves no query to rank."""
    missing = [column for column in PAIR_COLUMNS if column not in frame.columns]
    if missing:
        raise RerankFileError(
            f"{source} lacks the column(s) {missing}; the columns needed are {PAIR_COLUMNS}, or "
            f"{CLICK_COLUMNS} for a click log (one row per impression, no grade column)."
        )
    frame = frame[PAIR_COLUMNS].copy()
    for column in ("query_id", "query", "doc_id", "doc", "split"):
        frame[column] = frame[column].astype(str).str.strip()
    _check_grades(frame, source)
    frame["grade"] = frame["grade"].astype("int64")
    bad_split = frame[~frame["split"].isin(SPLITS)]
    if len(bad_split):
        raise RerankFileError(
            f"{source} row {bad_split.index[0]}: split {bad_split['split'].iloc[0]!r} is not one of {SPLITS}."
        )
    without_doc = (frame["doc_id"] == "") | (frame["doc"] == "")
    skipped = {"rows_without_doc": int(without_doc.sum())}
    frame = frame[~without_doc]
    duplicated = frame[frame.duplicated(["query_id", "doc_id"], keep="first")]
    if len(duplicated):
        row = duplicated.iloc[0]
        raise RerankFileError(
            f"{source} row {duplicated.index[0]}: the pair (query {row['query_id']!r}, doc "
            f"{row['doc_id']!r}) appears more than once; keep one row per pair (one grade per pair)."
        )
    _check_one_value(frame, "query_id", ("query", "split"), source)
    _check_one_value(frame, "doc_id", ("doc",), source)
    queries = frame.groupby("query_id").agg(candidates=("doc_id", "size"), best=("grade", "max"))
    single = queries.index[queries["candidates"] < 2]
    all_zero = queries.index[(queries["candidates"] >= 2) & (queries["best"] == 0)]
    skipped |= {"queries_with_one_candidate": len(single), "queries_all_grade_0": len(all_zero)}
    frame = frame[~frame["query_id"].isin(single.union(all_zero))]
    if frame.empty:
        raise RerankFileError(
            f"{source}: no query is left to rank (skipped: {skipped}); a query needs at least two candidates "
            "with a doc, one of them graded above 0."
        )
    return CheckedPairs(frame.reset_index(drop=True), skipped)


def _check_grades(frame: pd.DataFrame, source: str) -> None:
    grades = pd.to_numeric(frame["grade"], errors="coerce")
    bad = frame[grades.isna() | (grades % 1 != 0) | (grades < 0) | (grades > MAX_GRADE)]
    if len(bad):
        raise RerankFileError(
            f"{source} row {bad.index[0]}: grade {bad['grade'].iloc[0]!r} (query "
            f"{bad['query_id'].iloc[0]!r}, doc {bad['doc_id'].iloc[0]!r}) is not an integer from 0 to "
            f"{MAX_GRADE}; map your labels onto 0-{MAX_GRADE}."
        )
    frame["grade"] = grades


def _check_one_value(frame: pd.DataFrame, key: str, columns: tuple[str, ...], source: str) -> None:
    for column in columns:
        counts = frame.groupby(key)[column].nunique()
        if (counts > 1).any():
            name = counts[counts > 1].index[0]
            raise RerankFileError(
                f"{source}: {key} {name!r} has more than one {column}; every row of one {key} must share it."
            )
