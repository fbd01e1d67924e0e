"""Candidates per query as retrieval gives them to the reranker: a BM25 stage plus mined hard negatives.

The reranker never sees the whole catalogue, only what the first stage retrieved, so it is trained and judged
on those lists. BM25 (`bm25s`) gives the lexical candidates; dense hard negatives (products the bi-encoder
finds close to the query but that are graded 0) are added because BM25 alone rarely retrieves the
near-misses a reranker most needs to learn to push down. The best-graded products are kept in every list
(sentence-transformers' reranking evaluator does the same with `always_rerank_positives`), so a query whose
relevant products BM25 missed still measures the reranker, not the retriever.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import bm25s
import numpy as np
import pandas as pd


class Bm25Index:
    """BM25 over a fixed list of passages (English stop words removed, lower case)."""

    def __init__(self, passages: Sequence[str]) -> None:
        if not passages:
            raise ValueError("BM25 needs at least one passage to index.")
        self.passages = list(passages)
        self._retriever = bm25s.BM25()
        self._retriever.index(_tokens(self.passages), show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """One BM25 score per passage, in index order (0 where no query word occurs)."""
        tokens = _tokens([query])[0]
        if not tokens:
            return np.zeros(len(self.passages), dtype=np.float32)
        return np.asarray(self._retriever.get_scores(tokens), dtype=np.float32)

    def top(self, query: str, count: int) -> list[int]:
        """Indices of the `count` best passages, best first; ties keep index order."""
        return np.argsort(-self.scores(query), kind="stable")[:count].tolist()


def _tokens(texts: Sequence[str]) -> list[list[str]]:
    return bm25s.tokenize(list(texts), return_ids=False, show_progress=False, stopwords="en")


def mine_dense_negatives(
    judged: pd.DataFrame, model_path: str, per_query: int, batch_size: int = 64
) -> dict[str, list[str]]:
    """Up to `per_query` grade-0 doc ids per query, closest first by the bi-encoder at `model_path`.

    sentence-transformers' `mine_hard_negatives` excludes every product graded above 0 for the query.
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    if per_query < 1:
        return {}
    positives = judged[judged["grade"] > 0]
    corpus = judged.drop_duplicates("doc_id")
    doc_id = dict(zip(corpus["doc"], corpus["doc_id"], strict=True))
    mined = mine_hard_negatives(
        Dataset.from_dict({"query": positives["query"].tolist(), "doc": positives["doc"].tolist()}),
        SentenceTransformer(model_path, device="cpu"),
        corpus=corpus["doc"].tolist(),
        num_negatives=per_query,
        sampling_strategy="top",
        output_format="n-tuple",
        batch_size=batch_size,
        verbose=False,
    )
    query_id = dict(zip(judged["query"], judged["query_id"], strict=False))
    negatives: dict[str, list[str]] = {}
    for row in mined:
        found = [doc_id[row[name]] for name in row if name.startswith("negative")]
        negatives.setdefault(query_id[row["query"]], found)
    return negatives


def select_candidates(
    judged: pd.DataFrame,
    count: int,
    hard_negatives: Mapping[str, Sequence[str]],
    ensured_positives: int = 2,
) -> pd.DataFrame:
    """`count` candidates per query of the full judgement table `judged` (one row per query and product):
    the query's hard negatives, its `ensured_positives` best-graded products, and BM25's best for the rest,
    in BM25 order. Adds a `bm25_rank` column (0 = BM25's best)."""
    if count < 2:
        raise ValueError(f"A query needs at least 2 candidates to rerank, got count={count}.")
    docs = judged.drop_duplicates("doc_id").reset_index(drop=True)
    index = Bm25Index(docs["doc"].tolist())
    position = {doc: i for i, doc in enumerate(docs["doc_id"])}
    chosen = []
    for query_id, rows in judged.groupby("query_id", sort=True):
        rows = rows.set_index("doc_id")
        scores = index.scores(rows["query"].iloc[0])
        order = [docs["doc_id"][i] for i in np.argsort(-scores, kind="stable")]
        best = rows["grade"].sort_values(ascending=False, kind="stable").index[:ensured_positives]
        keep = [doc for doc in best if rows.at[doc, "grade"] > 0]
        keep += [doc for doc in hard_negatives.get(query_id, []) if doc not in keep]
        keep += [doc for doc in order if doc not in keep][: max(0, count - len(keep))]
        keep = sorted(keep[:count], key=lambda doc: order.index(doc))
        picked = rows.loc[keep].reset_index()
        picked["bm25_score"] = [float(scores[position[doc]]) for doc in keep]
        picked["bm25_rank"] = range(len(keep))
        chosen.append(picked)
    return pd.concat(chosen, ignore_index=True)[[*judged.columns, "bm25_score", "bm25_rank"]]
