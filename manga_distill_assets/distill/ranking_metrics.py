"""Ranking quality of a reranker over per-query candidate lists, and how far two rankers agree.

Every function takes one array per query (grades, or scores of that query's candidates in the same order)
and averages over queries. NDCG uses scikit-learn's `ndcg_score` (linear gains, ties averaged); MRR counts a
candidate relevant from `relevant_grade` on (2 by default, as TREC DL does for graded passage judgements;
`relevant_grade_for` picks 1 for judgements that never go above 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau
from sklearn.metrics import ndcg_score

Lists = Sequence[np.ndarray]


def per_query(frame: pd.DataFrame, column: str) -> list[np.ndarray]:
    """`column` of each query's rows, queries in sorted query_id order, rows in the frame's order."""
    return [rows[column].to_numpy(dtype=np.float64) for _, rows in frame.groupby("query_id", sort=True)]


def ndcg_at(grades: Lists, scores: Lists, k: int) -> float:
    _check(grades, scores)
    return float(np.mean([ndcg_score([g], [s], k=k) for g, s in zip(grades, scores, strict=True)]))


def mrr_at(grades: Lists, scores: Lists, k: int, relevant_grade: int = 2) -> float:
    """Mean reciprocal rank of the first relevant candidate within the top `k` (0 where none is)."""
    _check(grades, scores)
    ranks = []
    for g, s in zip(grades, scores, strict=True):
        ordered = np.asarray(g)[np.argsort(-np.asarray(s), kind="stable")][:k]
        hits = np.flatnonzero(ordered >= relevant_grade)
        ranks.append(1.0 / (hits[0] + 1) if len(hits) else 0.0)
    return float(np.mean(ranks))


def relevant_grade_for(grades: Lists) -> int:
    """The grade from which MRR counts a candidate relevant: 2 on the 0-3 scale (TREC DL's rule), and 1
    where no judgement goes above 1 (binary clicks written 0/1), where counting from 2 would find nothing
    relevant and every ranker would score an MRR of 0."""
    return 2 if max(float(np.max(g)) for g in grades) >= 2 else 1


def top_k_agreement(reference: Lists, candidate: Lists, k: int) -> float:
    """Mean share of the reference's top `k` candidates that the candidate ranker also puts in its top `k`."""
    _check(reference, candidate)
    shares = []
    for r, c in zip(reference, candidate, strict=True):
        size = min(k, len(r))
        top_r = set(np.argsort(-np.asarray(r), kind="stable")[:size])
        top_c = set(np.argsort(-np.asarray(c), kind="stable")[:size])
        shares.append(len(top_r & top_c) / size)
    return float(np.mean(shares))


def kendall_tau(reference: Lists, candidate: Lists) -> float:
    """Mean Kendall τ-b between two rankers' scores of each query's candidates (1 for a constant pair)."""
    _check(reference, candidate)
    taus = []
    for r, c in zip(reference, candidate, strict=True):
        tau = kendalltau(r, c).statistic
        taus.append(1.0 if np.isnan(tau) else float(tau))
    return float(np.mean(taus))


def _check(first: Lists, second: Lists) -> None:
    if len(first) != len(second) or not len(first):
        raise ValueError(
            f"Ranking metrics need the same non-zero number of queries, got {len(first)} and {len(second)}."
        )
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        if len(a) != len(b) or len(a) < 2:
            raise ValueError(
                f"Query {i} has {len(a)} grades and {len(b)} scores; each needs the same count ≥ 2."
            )
