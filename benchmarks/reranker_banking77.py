"""The reranker group through the user-file route, on real text nobody tuned it for: BANKING77 as question
retrieval.

A bank's help search: each query is a customer question from BANKING77's test split, its candidates are
BM25's best questions from a pool drawn from the train split, and a candidate is graded 1 when it asks for
the same intent as the query (one of 77) and 0 otherwise: a relevance log with binary judgements, as click
logs often are. Queries are split 70/15/15 at random; a query whose candidates are all graded 0 stays in
the file, as it would in a real log, for the reader to skip and count. The train texts outside the pool,
without labels, are the query log. The file is the `rerank_source` (what `MANGA_RERANK_PATH` sets) and
`benchmarks/reranker.py` materialises the group with the default config (no run config at all):

    PYTHONPATH=. python benchmarks/reranker_banking77.py --workdir /tmp/reranker-banking77

Prints the same table as benchmarks/reranker.py and writes benchmarks/results/reranker_banking77.json. The
data is ../shared/data/banking77 or $BANKING77_DIR; without it the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import random
from datetime import datetime
from pathlib import Path

import pandas as pd
from intent_real_data import BANKING77, read_banking77, write_query_log
from reranker import in_workdir, print_table, run, write_report

from manga_distill_assets.data.rerank_candidates import Bm25Index

SPLITS = (("train", 0.70), ("validation", 0.15), ("test", 0.15))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=500, help="test-split questions used as queries")
    parser.add_argument("--pool", type=int, default=3000, help="train-split questions to retrieve from")
    parser.add_argument("--candidates", type=int, default=20, help="BM25 candidates per query")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="", help="keep artifacts here; default: a tmp folder")
    parser.add_argument(
        "--preset", default="demo", help="run configuration from manga_distill_assets/presets.py"
    )
    arguments = parser.parse_args()
    if not (BANKING77 / "train.csv").is_file() or not (BANKING77 / "test.csv").is_file():
        print(f"skipped: BANKING77 is not at {BANKING77} (train.csv and test.csv, columns text,category).")
        return
    report = in_workdir(
        arguments.workdir, "reranker-banking77-", lambda root, now: run_on_file(root, arguments, now)
    )
    print_table(report)
    name = "reranker_banking77" if arguments.preset == "demo" else f"reranker_banking77_{arguments.preset}"
    write_report(report, name)


def run_on_file(root: Path, arguments: argparse.Namespace, now: datetime) -> dict:
    from manga_distill_assets.resources.query_log import LocalQueryLog
    from manga_distill_assets.resources.rerank_source import RerankPairsSource

    rng = random.Random(arguments.seed)
    train = read_banking77("train.csv")
    rng.shuffle(train)
    pool, unlabelled = train[: arguments.pool], [row["text"] for row in train[arguments.pool :]]
    queries = rng.sample(read_banking77("test.csv"), arguments.queries)
    frame = relevance_file(queries, pool, arguments.candidates, rng)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "banking77_relevance.csv"
    frame.to_csv(path, index=False)
    write_query_log(root / "query_log", unlabelled, now)
    defaults = {"queries": 0, "candidates": 0, "student_init": "", "general_workspace": ""}
    options = argparse.Namespace(**defaults, preset=arguments.preset)
    resources = {
        "rerank_source": RerankPairsSource(path=str(path)),
        "query_log": LocalQueryLog(root=str(root / "query_log")),
    }
    report = run(root, options, now, resources)
    positives = frame.groupby("query_id")["grade"].max()
    return report | {
        "file": {
            "rows": len(frame),
            "queries": int(frame["query_id"].nunique()),
            "queries_without_a_relevant_candidate": int((positives == 0).sum()),
            "relevant_share": float((frame["grade"] > 0).mean()),
            "pool": len(pool),
            "log_texts": len(unlabelled),
            "seed": arguments.seed,
        }
    }


def relevance_file(
    queries: list[dict[str, str]], pool: list[dict[str, str]], candidates: int, rng: random.Random
) -> pd.DataFrame:
    """One row per (query, BM25 candidate): grade 1 for the query's intent, 0 for any other."""
    index = Bm25Index([row["text"] for row in pool])
    splits = [name for name, share in SPLITS for _ in range(round(share * len(queries)))]
    splits += ["train"] * (len(queries) - len(splits))
    rng.shuffle(splits)
    rows = []
    for number, (query, split) in enumerate(zip(queries, splits, strict=True)):
        for doc in index.top(query["text"], candidates):
            rows.append(
                {
                    "query_id": f"q{number}",
                    "query": query["text"],
                    "doc_id": f"d{doc}",
                    "doc": pool[doc]["text"],
                    "grade": int(pool[doc]["category"] == query["category"]),
                    "split": split,
                }
            )
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
