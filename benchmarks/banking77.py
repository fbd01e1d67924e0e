"""The whole intent pipeline on real data: BANKING77 (77 banking intents, 10,003 train and 3,080 test texts).

`labeled_intents` reads ../shared/data/banking77/train.csv (validation carved from it) and test.csv
through the `MANGA_LABELED_*` variables, as a user would point the graph at their own file. BANKING77 has
no query log, so its train texts, without labels, are written as JSON Lines day files into a local
query-log folder and become the unlabeled queries. Every asset of the intent graph (the ONNX student too,
where the definitions have it) is then materialised with the `banking77` preset, one asset per run so that
each step's wall time is on record, and the eval report's rows become the table.

    nice -n 10 .venv/bin/python benchmarks/banking77.py            # a fresh tmp folder, removed afterwards
    nice -n 10 .venv/bin/python benchmarks/banking77.py --workdir .artifacts/banking77   # kept, and resumable

Prints a table and writes benchmarks/results/banking77.json. Without ../shared/data/banking77 it says so and
exits 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import torch
from _common import RESULTS, write_results

from manga_distill_assets.assets.queries.clock import partition_clock
from manga_distill_assets.data.query_log import days_before

BANKING77 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banking77"
LOG_DAYS = 7
INPUT_ASSETS = ("labeled_intents",)
COLUMNS = ("accuracy", "macro_f1", "retention", "params", "size_MB", "p50_ms", "speedup_p50")


def main() -> None:
    arguments = parse_arguments()
    if not (BANKING77 / "train.csv").is_file() or not (BANKING77 / "test.csv").is_file():
        print(f"skipped: BANKING77 is not at {BANKING77} (train.csv and test.csv, columns text,category).")
        return
    point_labeled_source_at_banking77()
    with partition_clock() as now:
        if arguments.workdir:
            report = run(Path(arguments.workdir), arguments.preset, now)
        else:
            with tempfile.TemporaryDirectory(prefix="banking77-") as scratch:
                report = run(Path(scratch), arguments.preset, now)
    print_table(report)
    suffix = f"_{arguments.preset}" if arguments.preset != "banking77" else ""
    write_results(report, RESULTS / f"banking77{suffix}.json")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--preset",
        default="banking77",
        help="run configuration from manga_distill_assets/presets.py; smoke checks the plumbing in minutes",
    )
    parser.add_argument(
        "--workdir",
        default="",
        help="keep artifacts here (a rerun reuses the logit cache, resumes training); default: a tmp folder",
    )
    return parser.parse_args()


def point_labeled_source_at_banking77() -> None:
    """Set before the definitions build their resources, which read these variables."""
    os.environ.update(
        {
            "MANGA_LABELED_PATH": str(BANKING77 / "train.csv"),
            "MANGA_LABELED_TEST_PATH": str(BANKING77 / "test.csv"),
            "MANGA_LABELED_TEXT_COLUMN": "text",
            "MANGA_LABELED_LABEL_COLUMN": "category",
            "MANGA_LABELED_SPLIT_COLUMN": "",
        }
    )


def run(root: Path, preset: str, now: datetime) -> dict[str, Any]:
    from manga_distill_assets.assets.intent_classifier import MODEL_ASSETS
    from manga_distill_assets.definitions import defs, local_resources
    from manga_distill_assets.presets import PRESETS
    from manga_distill_assets.resources.query_log import LocalQueryLog

    log_root = root / "query_log"
    days = write_query_log(log_root, train_texts(), now)
    resources = {**local_resources(root / "artifacts"), "query_log": LocalQueryLog(root=str(log_root))}
    available = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    models = [key for key in MODEL_ASSETS if key in available]
    instance = dg.DagsterInstance.ephemeral()
    timings: dict[str, float] = {}
    failed_checks: list[str] = []

    def materialize(keys: list[str], partition_key: str | None = None) -> dg.ExecuteInProcessResult:
        started = time.perf_counter()
        ops = PRESETS[preset]().ops
        result = dg.materialize(
            list(defs.assets),
            selection=dg.AssetSelection.assets(*keys),
            partition_key=partition_key,
            instance=instance,
            resources=resources,
            run_config=dg.RunConfig(ops={key: ops[key] for key in keys if key in ops}),
            raise_on_error=False,
        )
        label = ",".join(keys) if partition_key is None else f"{keys[0]}[{partition_key}]"
        timings[label] = time.perf_counter() - started
        if not result.success:
            stored = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
            if not set(keys) <= stored:
                raise SystemExit(f"materialising {label} failed; see the run log above.")
            # The asset is stored but a blocking check failed: a finding to report, not a reason to stop.
            failed_checks.append(label)
        return result

    started = time.perf_counter()
    materialize(list(INPUT_ASSETS))
    for day in days:
        materialize(["raw_queries"], partition_key=day)
    materialize(["unlabeled_queries"], partition_key=days[-1])
    for key in models:
        last = materialize([key])
    report = last.output_for_node("eval_report")
    return {
        "data": str(BANKING77),
        "preset": preset,
        "assets": models,
        "wall_seconds": time.perf_counter() - started,
        "seconds_per_step": timings,
        "failed_blocking_checks": failed_checks,
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "test_rows": report["test_rows"],
        "retention": report["retention"],
        "speedup_p50": report["speedup_p50"],
        "rows": result_rows(report),
    }


def train_texts() -> list[str]:
    with (BANKING77 / "train.csv").open(newline="", encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def write_query_log(root: Path, texts: list[str], now: datetime) -> list[str]:
    """The texts spread over the `LOG_DAYS` days before `now` (UTC), in the `LocalQueryLog` layout
    `<root>/dt=YYYY-MM-DD/part-0.jsonl`; returns the days, oldest first."""
    days = days_before(now, LOG_DAYS)
    for index, day in enumerate(days):
        folder = root / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            json.dumps(
                {
                    "text": text,
                    "ts": f"{day}T12:00:00Z",
                    "session_id": f"b77-{index}-{row}",
                    "locale": "en-GB",
                }
            )
            for row, text in enumerate(texts[index::LOG_DAYS])
        ]
        (folder / "part-0.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return days


def result_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model the report scored (its other entries, such as the distillation gain, are not)."""
    from manga_distill_assets.assets.intent_classifier.evaluation import MODELS

    teacher_accuracy = report["teacher"]["accuracy"]
    rows = []
    for name in MODELS:
        row = report[name]
        rows.append(
            {
                "model": name,
                "accuracy": row["accuracy"],
                "macro_f1": row["macro_f1"],
                "retention": row["accuracy"] / teacher_accuracy,
                "params": row["params"],
                "size_MB": row["size_bytes"] / 1e6,
                "p50_ms": row["latency_ms"]["p50"],
                "p99_ms": row["latency_ms"]["p99"],
                "speedup_p50": report["teacher"]["latency_ms"]["p50"] / row["latency_ms"]["p50"],
            }
        )
    return rows


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\nBANKING77, preset {report['preset']}, {report['test_rows']} test texts; whole run "
        f"{report['wall_seconds'] / 60:.1f} min on {report['cpus']} CPUs\n"
    )
    print("| model | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for row in report["rows"]:
        cells = [
            f"{row['accuracy']:.4f}",
            f"{row['macro_f1']:.4f}",
            f"{row['retention']:.3f}",
            f"{row['params']:,}",
            f"{row['size_MB']:.2f}",
            f"{row['p50_ms']:.2f}",
            f"{row['speedup_p50']:.2f}x",
        ]
        print(f"| {row['model']} | " + " | ".join(cells) + " |")
    if report["failed_blocking_checks"]:
        print("\nblocking checks failed on: " + ", ".join(report["failed_blocking_checks"]))
    print("\nseconds per step: " + ", ".join(f"{k} {v:.0f}" for k, v in report["seconds_per_step"].items()))


if __name__ == "__main__":
    main()
