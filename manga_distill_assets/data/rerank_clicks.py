"""Graded pairs from a click log: what customers clicked among the products a query showed them.

One row per impression (a product shown for a query): query, doc_id, doc, clicked (1/0 or true/false); any
other column (a session, a timestamp, the position) is ignored. Each (query, product) pair's click-through
rate over its impressions becomes a grade on the relevance file's 0-3 scale: 0 when never clicked, then 1,
2 or 3 for a rate up to a third, up to two thirds, above. Queries are told apart by their normalised text
(`dedup_key`), and each query's pairs go to one split drawn from a hash of that key (70/15/15), so a query
never straddles splits and a longer log keeps every earlier query in its split.

The rate is not corrected for position bias (a top result draws clicks whatever its relevance): a log
that records positions can be graded more carefully by the user and given as a relevance file instead.
"""

from __future__ import annotations

from hashlib import sha256

import pandas as pd

from manga_distill_assets.data.normalize import dedup_key
from manga_distill_assets.data.rerank_pairs import MAX_GRADE, PAIR_COLUMNS

CLICK_COLUMNS = ("query", "doc_id", "doc", "clicked")
SPLIT_BOUNDS = (("train", 70), ("validation", 85), ("test", 100))
"""A query goes to the first split whose bound its hash bucket (0-99) is under: 70/15/15."""
_CLICKED = {"1": 1, "0": 0, "true": 1, "false": 0, "1.0": 1, "0.0": 0}


class ClickLogError(ValueError):
    """The click log cannot be graded as it is; the message names the row and what to change."""


def is_click_log(columns: pd.Index) -> bool:
    """A frame with the click columns and no grade is a click log rather than a relevance file."""
    return "grade" not in columns and set(CLICK_COLUMNS) <= set(columns)


def graded_from_clicks(log: pd.DataFrame, source: str) -> pd.DataFrame:
    """The relevance file's columns (query_id, query, doc_id, doc, grade, split), one row per pair shown."""
    clicks = log[list(CLICK_COLUMNS)].copy()
    for column in ("query", "doc_id", "doc"):
        clicks[column] = clicks[column].astype(str).str.strip()
    flags = clicks["clicked"].astype(str).str.strip().str.lower().map(_CLICKED)
    if flags.isna().any():
        row = flags.index[flags.isna()][0]
        raise ClickLogError(
            f"{source} row {row}: clicked {clicks['clicked'][row]!r} is not 1/0 or true/false; write whether "
            "the customer clicked this product for this query."
        )
    clicks["clicked"] = flags.astype("int64")
    clicks["key"] = clicks["query"].map(dedup_key)
    clicks = clicks[clicks["key"] != ""]
    pairs = (
        clicks.groupby(["key", "doc_id"], sort=True)
        .agg(clicks=("clicked", "sum"), shown=("clicked", "size"))
        .reset_index()
    )
    # ceil(MAX_GRADE x clicks / impressions) in integers, so a rate of exactly a third is grade 1.
    pairs["grade"] = (MAX_GRADE * pairs["clicks"] + pairs["shown"] - 1) // pairs["shown"]
    # One text per query (its first spelling in the log) and per product (its latest page text).
    pairs["query"] = pairs["key"].map(clicks.groupby("key")["query"].first())
    pairs["doc"] = pairs["doc_id"].map(clicks.groupby("doc_id")["doc"].last())
    pairs["query_id"] = pairs["key"].map(lambda key: "q-" + sha256(key.encode("utf8")).hexdigest()[:12])
    pairs["split"] = pairs["key"].map(split_of)
    return pairs[list(PAIR_COLUMNS)]


def split_of(key: str) -> str:
    """The split of a query, from a hash of its normalised text: stable across runs and longer logs."""
    bucket = int(sha256(key.encode("utf8")).hexdigest(), 16) % 100
    return next(name for name, bound in SPLIT_BOUNDS if bucket < bound)
