"""The reranker teacher's step floor: one epoch over a small relevance file against `min_steps`.

A user's file may hold 60 queries or 60,000. Trains the default teacher (the packaged MiniLM, BCE on
grade / 3, the `reranker_teacher` defaults otherwise) on the pairs of `--train-queries` of the packaged
generated train queries (drawn with seed 0), once per `--min-steps` value, and scores it on the packaged
validation and test splits beside BM25:

    .venv/bin/python benchmarks/reranker_teacher_steps.py --train-queries 60 --min-steps 0 600

Prints a table and writes benchmarks/results/reranker_teacher_steps.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
from transformers import AutoTokenizer

from manga_distill_assets.assets.intent_classifier.teacher import default_teacher_base
from manga_distill_assets.assets.reranker.config import RerankQueriesConfig, RerankTeacherConfig
from manga_distill_assets.data.rerank_candidates import mine_dense_negatives, select_candidates
from manga_distill_assets.data.rerank_pairs import catalogue_products, generate_queries, graded_rows
from manga_distill_assets.distill.cross_encoders import RELEVANCE_LABEL, pair_scores, train_teacher_reranker
from manga_distill_assets.distill.ranking_metrics import ndcg_at, per_query
from manga_distill_assets.distill.students import from_pretrained

RESULTS = Path(__file__).parent / "results"


def packaged_pairs() -> pd.DataFrame:
    """The `rerank_queries` asset's default frame, built by the same functions."""
    config = RerankQueriesConfig()
    products = catalogue_products(config.formats_per_title, config.seed)
    judged = graded_rows(generate_queries(config.queries, config.seed), products, config.seed)
    negatives = mine_dense_negatives(judged, default_teacher_base(), config.hard_negatives)
    return select_candidates(judged, config.candidates, negatives, config.ensured_positives)


def ndcg_at_3(rows: pd.DataFrame, column: str) -> float:
    return ndcg_at(per_query(rows, "grade"), per_query(rows, column), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-queries", type=int, default=60)
    parser.add_argument("--min-steps", type=int, nargs="+", default=[0, 600])
    arguments = parser.parse_args()
    pairs = packaged_pairs()
    train = pairs[pairs["split"] == "train"]
    chosen = train["query_id"].drop_duplicates().sample(frac=1, random_state=0).head(arguments.train_queries)
    train = train[train["query_id"].isin(chosen)]
    evaluation = {
        name: pairs[pairs["split"] == name].reset_index(drop=True) for name in ("validation", "test")
    }
    base, defaults = default_teacher_base(), RerankTeacherConfig().training
    rows = []
    for min_steps in arguments.min_steps:
        settings = dataclasses.replace(defaults.settings(), min_steps=min_steps)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as scratch:
            result = train_teacher_reranker(
                from_pretrained(base, RELEVANCE_LABEL, seed=defaults.seed),
                AutoTokenizer.from_pretrained(base),
                train["query"].tolist(),
                train["doc"].tolist(),
                train["grade"].tolist(),
                settings,
                Path(scratch),
            )
        row = {"min_steps": min_steps, "steps": result.steps, "seconds": time.perf_counter() - started}
        for name, frame in evaluation.items():
            scored = frame.assign(
                score=pair_scores(
                    result.model, result.tokenizer, frame["query"].tolist(), frame["doc"].tolist()
                )
            )
            row[f"{name}_ndcg_at_3"] = ndcg_at_3(scored, "score")
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "train_queries": arguments.train_queries,
        "train_pairs": len(train),
        "bm25_test_ndcg_at_3": ndcg_at_3(evaluation["test"], "bm25_score"),
        "rows": rows,
    }
    print(f"\n{report['train_pairs']} train pairs; BM25 test NDCG@3 {report['bm25_test_ndcg_at_3']:.4f}\n")
    print("| min_steps | steps | seconds | validation NDCG@3 | test NDCG@3 |\n|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['min_steps']} | {row['steps']} | {row['seconds']:.0f} | "
            f"{row['validation_ndcg_at_3']:.4f} | {row['test_ndcg_at_3']:.4f} |"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "reranker_teacher_steps.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
