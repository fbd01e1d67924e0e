"""The reranker group end to end on the packaged default, and the issue's done-means as a table.

Lands a few days of the simulated query log (their queries join the transfer set), then materialises
`rerank_queries`, `reranker_teacher`, `teacher_rerank_scores`, `reranker_student`, `reranker_onnx` and
`reranker_eval`, one asset per run so each step's wall time is on record, and checks the targets:

- teacher NDCG@3 above BM25's by a clear margin (reported as the difference);
- int8 student NDCG@3 retention ≥ 0.95;
- int8 student ≤ 15 ms p50 to score one query's 20 candidates at one thread, and ≥ 3× faster than the
  PyTorch teacher at the same thread count.

    nice -n 10 .venv/bin/python benchmarks/reranker.py                  # the demo defaults, a tmp folder
    nice -n 10 .venv/bin/python benchmarks/reranker.py --preset smoke   # the plumbing in about a minute
    nice -n 10 .venv/bin/python benchmarks/reranker.py --latency-only   # the speed targets alone, no training
    nice -n 10 .venv/bin/python benchmarks/reranker.py --student-init general \
        --general-workspace /tmp/general/artifacts/work                     # the student from general_student

`--latency-only` times the same architectures without training them (weights do not change the cost of a
forward pass): the packaged MiniLM as a one-output cross-encoder (the teacher), its layers 0, 2, 4, 5 pruned
to the preset's width with the vocabulary pruned to the pairs' tokens (the student), and that student's int8
ONNX graph with every matmul int8 (the fastest graph `reranker_onnx` can serve; its parity search may keep
some fp32), each scoring the generated test queries' candidate lists at one thread. The int8 graph is timed as
`reranker_onnx` exports it, on the real tokens only (`distill.unpadded`), and as the plain padded export
(`student_onnx_int8_padded`), each twice, alternating.

Prints a table and writes benchmarks/results/reranker.json (reranker_<preset>.json for other presets).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from manga_distill_assets.assets.queries.clock import partition_clock
from manga_distill_assets.data.query_log import days_before

RESULTS = Path(__file__).parent / "results"
LOG_DAYS = 3
ASSETS = (
    "rerank_queries",
    "reranker_teacher",
    "teacher_rerank_scores",
    "reranker_student",
    "reranker_onnx",
    "reranker_eval",
)
ROWS = ("bm25", "teacher", "student", "student_onnx_int8")
TARGETS = {"retention": 0.95, "int8_p50_ms": 15.0, "speedup_vs_teacher": 3.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--preset", default="demo", help="run configuration from manga_distill_assets/presets.py"
    )
    parser.add_argument("--workdir", default="", help="keep artifacts here; default: a tmp folder")
    parser.add_argument("--latency-only", action="store_true", help="time untrained models, no training")
    parser.add_argument(
        "--student-init",
        choices=("teacher", "general"),
        default="",
        help="reranker_student from the teacher's layers or from general_student (default: the preset's)",
    )
    parser.add_argument(
        "--general-workspace", default="", help="training workspace holding a trained general_student"
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=0,
        help="candidates per query (default: the preset's; 20 with --latency-only)",
    )
    parser.add_argument(
        "--queries",
        type=int,
        default=0,
        help="generated queries (default: the preset's; 100 timed with --latency-only)",
    )
    arguments = parser.parse_args()
    if arguments.latency_only:
        report = latency_only(arguments.preset, arguments.candidates or 20, arguments.queries or 100)
        print_latency(report)
        write_report(
            report,
            "reranker_latency" if arguments.preset == "demo" else f"reranker_latency_{arguments.preset}",
        )
        return
    report = in_workdir(arguments.workdir, "reranker-", lambda root, now: run(root, arguments, now))
    print_table(report)
    name = "reranker" if arguments.preset == "demo" else f"reranker_{arguments.preset}"
    if arguments.student_init == "general":
        name += "_general"
    write_report(report, f"{name}_{arguments.queries}q" if arguments.queries else name)


def in_workdir(
    workdir: str, prefix: str, runner: Callable[[Path, datetime], dict[str, Any]]
) -> dict[str, Any]:
    """`runner` on `workdir`, or, without one, on a tmp folder (named from `prefix`) removed afterwards, with
    the time its partitions are seen at (`partition_clock`)."""
    with partition_clock() as now:
        if workdir:
            return runner(Path(workdir), now)
        with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
            return runner(Path(scratch), now)


def write_report(report: dict[str, Any], name: str) -> None:
    """`report` as benchmarks/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")


def run(
    root: Path, arguments: argparse.Namespace, now: datetime, resources: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The group under `arguments.preset`; `--queries`, `--candidates` and `--student-init`, when set,
    override the preset. A student that starts from `general_student` materialises it first (reused from
    `--general-workspace` when that holds one trained with the same corpus, base and config). `resources`
    replace the local defaults of the same names (another query log, say)."""
    from manga_distill_assets.assets.reranker.config import (
        RerankEvalConfig,
        RerankQueriesConfig,
        RerankStudentConfig,
    )
    from manga_distill_assets.definitions import defs, local_resources
    from manga_distill_assets.presets import PRESETS
    from manga_distill_assets.resources.workspace import TrainingWorkspace

    preset, queries, candidates = arguments.preset, arguments.queries, arguments.candidates
    resources = local_resources(root / "artifacts") | (resources or {})
    if arguments.general_workspace:
        resources["training_workspace"] = TrainingWorkspace(root=arguments.general_workspace)
    instance = dg.DagsterInstance.ephemeral()
    ops = dict(PRESETS[preset]().ops)
    student = ops.get("reranker_student", RerankStudentConfig())
    if arguments.student_init:
        student = student.model_copy(update={"init": arguments.student_init})
        ops["reranker_student"] = student
    pairs = ops.get("rerank_queries", RerankQueriesConfig()).model_dump()
    evaluation = ops.get("reranker_eval", RerankEvalConfig()).model_dump()
    sizes = {"queries": queries} if queries else {}
    if candidates:
        sizes["candidates"] = candidates
        ops["reranker_eval"] = RerankEvalConfig(**{**evaluation, "candidates": candidates})
    ops["rerank_queries"] = RerankQueriesConfig(**{**pairs, **sizes})
    timings: dict[str, float] = {}
    failed_checks: list[str] = []

    def materialize(key: str, partition_key: str | None = None) -> dg.ExecuteInProcessResult:
        started = time.perf_counter()
        result = dg.materialize(
            list(defs.assets),
            selection=dg.AssetSelection.assets(key),
            partition_key=partition_key,
            instance=instance,
            resources=resources,
            run_config=dg.RunConfig(ops={key: ops[key]} if key in ops else {}),
            raise_on_error=False,
        )
        timings[key if partition_key is None else f"{key}[{partition_key}]"] = time.perf_counter() - started
        if not result.success:
            if not result.get_asset_materialization_events():
                raise SystemExit(f"materialising {key} failed; see the run log above.")
            failed_checks.append(key)  # stored, but a blocking check failed: a finding to report
        return result

    days = days_before(now, LOG_DAYS)
    materialize("labeled_intents")
    for day in days:
        materialize("raw_queries", partition_key=day)
    materialize("unlabeled_queries", partition_key=days[-1])
    if student.init == "general":
        materialize("general_student")
    started = time.perf_counter()
    for key in ASSETS:
        last = materialize(key)
    report = last.output_for_node("reranker_eval")
    int8, teacher, bm25 = report["student_onnx_int8"], report["teacher"], report["bm25"]
    return {
        "preset": preset,
        "student_init": student.init,
        "student_width": student.width.model_dump(),
        "layer_matching_epochs": student.layer_matching.epochs,
        "group_wall_seconds": time.perf_counter() - started,
        "seconds_per_step": timings,
        "failed_blocking_checks": failed_checks,
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "test_queries": report["test_queries"],
        "candidates": report["candidates"],
        "threads": report["threads"],
        "done_means": {
            "teacher_minus_bm25_ndcg_at_3": teacher["ndcg_at_3"] - bm25["ndcg_at_3"],
            "int8_retention": int8["retention_ndcg_at_3"],
            "int8_retention_met": int8["retention_ndcg_at_3"] >= TARGETS["retention"],
            "int8_p50_ms": int8["latency_ms"]["p50_ms"],
            "int8_p50_met": int8["latency_ms"]["p50_ms"] <= TARGETS["int8_p50_ms"],
            "int8_cpu_p50_ms": int8["latency_ms"]["cpu_p50_ms"],
            "int8_speedup_vs_teacher": int8["speedup_p50"],
            "int8_speedup_met": int8["speedup_p50"] >= TARGETS["speedup_vs_teacher"],
        },
        "rows": {name: report[name] for name in ROWS},
    }


def latency_only(preset: str, candidates: int, queries: int) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from manga_distill_assets.assets.intent_classifier.teacher import default_teacher_base
    from manga_distill_assets.assets.reranker.config import RerankStudentConfig
    from manga_distill_assets.data.rerank_candidates import select_candidates
    from manga_distill_assets.data.rerank_pairs import catalogue_products, generate_queries, graded_rows
    from manga_distill_assets.distill.cross_encoders import RELEVANCE_LABEL, encode_pairs
    from manga_distill_assets.distill.onnx_export import INT8_FILE, file_bytes, open_session
    from manga_distill_assets.distill.ranking_serving import export_reranker, onnx_latency, torch_latency
    from manga_distill_assets.distill.student_export import export_student
    from manga_distill_assets.distill.students import count_parameters, from_pretrained, from_teacher
    from manga_distill_assets.distill.vocab import prune_vocabulary
    from manga_distill_assets.distill.width_pruning import activation_importance, prune_width
    from manga_distill_assets.presets import PRESETS

    judged = graded_rows(generate_queries(queries, seed=0), catalogue_products(), seed=0)
    rows = select_candidates(judged, candidates, {}, ensured_positives=2)
    lists = [(group["query"].iloc[0], group["doc"].tolist()) for _, group in rows.groupby("query_id")]
    base = default_teacher_base()
    tokenizer = AutoTokenizer.from_pretrained(base)
    teacher = from_pretrained(base, RELEVANCE_LABEL, seed=0)
    config = PRESETS[preset]().ops.get("reranker_student", RerankStudentConfig())
    student = from_teacher(teacher, config.teacher_layers)
    if config.width.prunes(student.config):
        batches = [encode_pairs(tokenizer, [query] * len(docs), docs) for query, docs in lists[:16]]
        student = prune_width(
            student, activation_importance(student, batches), *config.width.sizes(student.config)
        )
    pruned = prune_vocabulary(student, tokenizer, [*rows["query"], *rows["doc"]])
    report: dict[str, Any] = {
        "preset": preset,
        "student_width": config.width.model_dump(),
        "candidates": candidates,
        "queries": len(lists),
        "threads": 1,
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "rows": {
            "teacher": {
                "params": count_parameters(teacher),
                "latency_ms": torch_latency(teacher, tokenizer, lists),
            },
            "student": {
                "params": count_parameters(pruned.model),
                "latency_ms": torch_latency(pruned.model, pruned.tokenizer, lists),
            },
        },
    }
    with tempfile.TemporaryDirectory() as scratch:
        graphs = {
            "student_onnx_int8": export_reranker(pruned.model, pruned.tokenizer, Path(scratch) / "onnx"),
            "student_onnx_int8_padded": export_student(
                pruned.model, pruned.tokenizer, Path(scratch) / "padded", quantize_ffn_output=True
            ),
        }
        sessions = {name: open_session(folder / INT8_FILE, threads=1) for name, folder in graphs.items()}
        rounds = [
            {name: onnx_latency(session, pruned.tokenizer, lists) for name, session in sessions.items()}
            for _ in range(2)
        ]
        for name, folder in graphs.items():
            fastest = min((timing[name] for timing in rounds), key=lambda latency: latency["p50_ms"])
            report["rows"][name] = {
                "size_bytes": file_bytes(folder / INT8_FILE),
                "latency_ms": fastest,
                "p50_ms_by_round": [timing[name]["p50_ms"] for timing in rounds],
            }
        masks = [
            encode_pairs(pruned.tokenizer, [query] * len(docs), docs)["attention_mask"]
            for query, docs in lists
        ]
        report["padding_share"] = 1 - sum(int(mask.sum()) for mask in masks) / sum(
            mask.numel() for mask in masks
        )
    teacher_p50 = report["rows"]["teacher"]["latency_ms"]["p50_ms"]
    for row in report["rows"].values():
        row["speedup_p50"] = teacher_p50 / row["latency_ms"]["p50_ms"]
    int8 = report["rows"]["student_onnx_int8"]
    report["done_means"] = {
        "int8_p50_ms": int8["latency_ms"]["p50_ms"],
        "int8_p50_met": int8["latency_ms"]["p50_ms"] <= TARGETS["int8_p50_ms"],
        "int8_speedup_vs_teacher": int8["speedup_p50"],
        "int8_speedup_met": int8["speedup_p50"] >= TARGETS["speedup_vs_teacher"],
    }
    return report


def print_latency(report: dict[str, Any]) -> None:
    print(
        f"\nreranker latency, untrained weights, preset {report['preset']}: {report['queries']} queries x "
        f"{report['candidates']} candidates at 1 thread ({report['padding_share']:.0%} of token positions "
        f"padding), load average {report['load_average'][0]:.1f} on {report['cpus']} CPUs\n"
    )
    print("| model | params | p50_ms | p90_ms | p99_ms | speed-up | cpu_p50_ms | cpu speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    teacher_cpu = report["rows"]["teacher"]["latency_ms"]["cpu_p50_ms"]
    for name, row in report["rows"].items():
        latency = row["latency_ms"]
        print(
            f"| {name} | {row.get('params', '')} | {latency['p50_ms']:.1f} | {latency['p90_ms']:.1f} | "
            f"{latency['p99_ms']:.1f} | {row['speedup_p50']:.2f} | {latency['cpu_p50_ms']:.1f} | "
            f"{teacher_cpu / latency['cpu_p50_ms']:.2f} |"
        )
    print("\ndone means:", json.dumps(report["done_means"]))


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\nreranker, preset {report['preset']}: {report['test_queries']} test queries, "
        f"latency over {report['candidates']} candidates at {report['threads']} thread(s), "
        f"load average {report['load_average'][0]:.1f} on {report['cpus']} CPUs\n"
    )
    header = (
        "model",
        "NDCG@3",
        "NDCG@10",
        "MRR@10",
        "retention",
        "params",
        "size_MB",
        "p50_ms",
        "p99_ms",
        "speed-up",
        "cpu_p50_ms",
    )
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, row in report["rows"].items():
        latency = row.get("latency_ms", {})
        cells = (
            name,
            f"{row['ndcg_at_3']:.4f}",
            f"{row['ndcg_at_10']:.4f}",
            f"{row['mrr_at_10']:.4f}",
            f"{row['retention_ndcg_at_3']:.4f}",
            str(row.get("params", "")),
            f"{row['size_bytes'] / 1e6:.1f}" if "size_bytes" in row else "",
            f"{latency['p50_ms']:.1f}" if latency else "",
            f"{latency['p99_ms']:.1f}" if latency else "",
            f"{row['speedup_p50']:.2f}" if "speedup_p50" in row else "",
            f"{latency['cpu_p50_ms']:.1f}" if latency else "",
        )
        print("| " + " | ".join(cells) + " |")
    print("\ndone means:")
    for key, value in report["done_means"].items():
        print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    print(f"group wall time {report['group_wall_seconds']:.0f} s; steps: {report['seconds_per_step']}")


if __name__ == "__main__":
    main()
