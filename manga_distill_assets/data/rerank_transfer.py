"""The reranker's transfer set: which (query, candidate) pairs the teacher scores, and the student's lists.

The train split's candidate lists are joined by the query log's most frequent product queries, with BM25's
candidates over the same documents, so the student learns the teacher's ranking on what customers really
type, not only on the labelled queries. Validation and test queries never enter it.
"""

import json
from hashlib import sha256

import numpy as np
import pandas as pd

from manga_distill_assets.data.normalize import dedup_key
from manga_distill_assets.data.rerank_candidates import Bm25Index


def pair_key(query: str, doc: str) -> str:
    """The cache key of a (query, doc) pair: unambiguous whatever characters either holds."""
    return json.dumps([query, doc], ensure_ascii=False)


def transfer_pairs(
    rerank_queries: pd.DataFrame, unlabeled: pd.DataFrame, max_log_queries: int, candidates: int
) -> pd.DataFrame:
    """The train split's pairs, plus BM25's `candidates` best documents for the query log's most frequent
    queries that match any document and are not validation or test queries."""
    train = rerank_queries[rerank_queries["split"] == "train"][["query_id", "query", "doc_id", "doc"]].assign(
        origin="train"
    )
    if not max_log_queries or unlabeled.empty:
        return train
    held_out = {dedup_key(q) for q in rerank_queries.loc[rerank_queries["split"] != "train", "query"]}
    docs = rerank_queries.drop_duplicates("doc_id").reset_index(drop=True)
    index = Bm25Index(docs["doc"].tolist())
    rows = []
    queries = unlabeled.sort_values(["frequency", "text"], ascending=[False, True], kind="stable")["text"]
    for query in queries:
        if len(rows) >= max_log_queries * candidates:
            break
        scores = index.scores(query)
        if dedup_key(query) in held_out or not scores.max() > 0:
            continue
        query_id = "log-" + sha256(query.encode("utf8")).hexdigest()[:12]
        for i in np.argsort(-scores, kind="stable")[:candidates]:
            rows.append((query_id, query, docs["doc_id"][i], docs["doc"][i], "log"))
    return pd.concat([train, pd.DataFrame(rows, columns=train.columns)], ignore_index=True)


def candidate_lists(
    scores: pd.DataFrame, list_size: int, seed: int
) -> tuple[list[str], list[list[str]], list[list[float]]]:
    """Per query: the teacher's best candidate first, then `list_size - 1` others drawn at random (kept in
    the teacher's order), so each list has a clear positive and negatives of every difficulty."""
    rng = np.random.default_rng(seed)
    queries, lists, teacher = [], [], []
    for _, rows in scores.groupby("query_id", sort=True):
        if len(rows) < 2:
            continue
        rows = rows.sort_values("teacher_score", ascending=False, kind="stable")
        size = min(list_size, len(rows))
        picked = [0, *sorted(rng.choice(np.arange(1, len(rows)), size - 1, replace=False).tolist())]
        if size < list_size:
            picked += [picked[-1]] * (list_size - size)  # pad short lists with a repeated last negative
        queries.append(rows["query"].iloc[0])
        lists.append(rows["doc"].iloc[picked].tolist())
        teacher.append(rows["teacher_score"].iloc[picked].tolist())
    return queries, lists, teacher
