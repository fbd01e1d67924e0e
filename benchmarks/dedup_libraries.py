"""Our MinHash-LSH beside datasketch's, on the same generated queries: speed and exactness.

`data/dedup.py` keeps its own MinHash-LSH only while it is the faster or the exact one. This script measures
both on the distinct dedup keys of `text_pipeline.py`'s generated queries (3-character shingles, 64
permutations, threshold 0.8, the defaults), single-threaded on one pinned core:

- speed: ours is the whole `deduplicate` (signatures, LSH, exact confirmation, star clustering);
  datasketch's is only `MinHash.bulk` signatures plus `MinHashLSH` insert and query, the part a replacement
  would take over, so datasketch's figure is a lower bound of what a replacement would cost;
- exactness, on a sample small enough to compare every pair: the near-duplicate pairs (true Jaccard >= 0.8)
  each method's LSH proposes as candidates (recall), and, for ours, the near-duplicate pairs left between
  texts it kept.

    .venv/bin/python benchmarks/dedup_libraries.py --n 100000 --exact-sample 3000
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

from _common import RESULTS, pin_to_one_core, write_results
from datasketch import MinHash, MinHashLSH
from text_pipeline import QueryGenerator

from manga_distill_assets.data.dedup import deduplicate
from manga_distill_assets.data.normalize import dedup_key, normalize_text

THRESHOLD, NUM_PERM, SHINGLE = 0.8, 64, 3


def shingles(key: str) -> set[bytes]:
    return {key[i : i + SHINGLE].encode() for i in range(max(1, len(key) - SHINGLE + 1))}


def datasketch_candidates(keys: list[str]) -> set[tuple[int, int]]:
    """Every pair datasketch's LSH proposes, as (earlier, later) indices into `keys`."""
    signatures = MinHash.bulk([shingles(key) for key in keys], num_perm=NUM_PERM)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    with lsh.insertion_session() as session:
        for index, signature in enumerate(signatures):
            session.insert(index, signature)
    return {
        (min(index, other), max(index, other))
        for index, signature in enumerate(signatures)
        for other in lsh.query(signature)
        if other != index
    }


def true_pairs(keys: list[str]) -> set[tuple[int, int]]:
    sets = [shingles(key) for key in keys]
    return {
        (i, j)
        for i, j in itertools.combinations(range(len(keys)), 2)
        if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= THRESHOLD
    }


def distinct_keys(n: int, seed: int) -> list[str]:
    keys = dict.fromkeys(dedup_key(normalize_text(text)) for text in QueryGenerator(seed).queries(n))
    return [key for key in keys if key]


def run(n: int, exact_sample: int, seed: int) -> dict[str, Any]:
    pinning = pin_to_one_core()
    keys = distinct_keys(n, seed)
    started = time.perf_counter()
    deduplicate(keys, threshold=THRESHOLD, num_perm=NUM_PERM, shingle=SHINGLE)
    ours_seconds = time.perf_counter() - started
    started = time.perf_counter()
    datasketch_candidates(keys)
    datasketch_seconds = time.perf_counter() - started

    sample = keys[:exact_sample]
    truth = true_pairs(sample)
    found = datasketch_candidates(sample)
    kept = set(deduplicate(sample, threshold=THRESHOLD, num_perm=NUM_PERM, shingle=SHINGLE).kept.tolist())
    left_among_kept = sum(1 for i, j in truth if i in kept and j in kept)
    return {
        "n_queries": n,
        "distinct_keys": len(keys),
        "pinning": pinning,
        "ours_full_dedup_s": round(ours_seconds, 3),
        "datasketch_signatures_and_lsh_s": round(datasketch_seconds, 3),
        "exact_sample_keys": len(sample),
        "true_near_duplicate_pairs": len(truth),
        "datasketch_candidate_recall": round(len(truth & found) / max(1, len(truth)), 4),
        "ours_pairs_left_among_kept": left_among_kept,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="generated queries")
    parser.add_argument("--exact-sample", type=int, default=3_000, help="distinct keys compared pair by pair")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = run(args.n, args.exact_sample, args.seed)
    print("| measure | value |\n|---|---|")
    for name, value in report.items():
        print(f"| {name} | {value} |")
    write_results(report, RESULTS / "dedup_libraries.json")


if __name__ == "__main__":
    main()
