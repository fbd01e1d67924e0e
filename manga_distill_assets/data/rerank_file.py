"""A user's graded relevance file: one row per (query, candidate), checked before anything trains on it.

Columns: query_id, query, doc_id, doc, grade (an integer 0-3), split (train, validation or test). CSV or
Parquet. Each query's rows are its candidate list as the first-stage retrieval returned it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from manga_distill_assets.data.rerank_pairs import MAX_GRADE, PAIR_COLUMNS, SPLITS


class RerankFileError(ValueError):
    """The file cannot be used as it is; the message names the rows and what to change."""


def read_rerank_file(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise RerankFileError(f"Relevance file {path} does not exist: point `path` at a CSV or Parquet file.")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, keep_default_na=False)
    return check_rerank_pairs(frame, str(path))


def check_rerank_pairs(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """`frame`'s pair columns, typed, or a `RerankFileError` naming the first problem found in `source`."""
    missing = [column for column in PAIR_COLUMNS if column not in frame.columns]
    if missing:
        raise RerankFileError(
            f"{source} lacks the column(s) {missing}; the columns needed are {PAIR_COLUMNS}."
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
    without_doc = frame[(frame["doc_id"] == "") | (frame["doc"] == "")]
    for query_id in without_doc["query_id"].unique():
        if (frame.loc[frame["query_id"] == query_id, "doc"] != "").sum() < 2:
            raise RerankFileError(
                f"{source}: query {query_id!r} has no candidates to rank (fewer than 2 rows with a doc_id "
                "and a doc); add its retrieved candidates or drop the query."
            )
    if len(without_doc):
        raise RerankFileError(
            f"{source} row {without_doc.index[0]}: query {without_doc['query_id'].iloc[0]!r} has a candidate "
            "with an empty doc_id or doc; fill it in or drop the row."
        )
    duplicated = frame[frame.duplicated(["query_id", "doc_id"], keep="first")]
    if len(duplicated):
        row = duplicated.iloc[0]
        raise RerankFileError(
            f"{source} row {duplicated.index[0]}: the pair (query {row['query_id']!r}, doc "
            f"{row['doc_id']!r}) appears more than once; keep one row per pair (one grade per pair)."
        )
    _check_one_value(frame, "query_id", ("query", "split"), source)
    _check_one_value(frame, "doc_id", ("doc",), source)
    sizes = frame.groupby("query_id")["doc_id"].size()
    if (sizes < 2).any():
        raise RerankFileError(
            f"{source}: query {sizes[sizes < 2].index[0]!r} has no candidates to rank (one row only); "
            "add its retrieved candidates or drop the query."
        )
    best = frame.groupby("query_id")["grade"].max()
    if (best == 0).any():
        raise RerankFileError(
            f"{source}: every candidate of query {best[best == 0].index[0]!r} has grade 0, so no "
            "ranking of it is better than another (NDCG is undefined); drop the query or grade its "
            "relevant candidates."
        )
    return frame.reset_index(drop=True)


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
