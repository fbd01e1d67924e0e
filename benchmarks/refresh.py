"""What the incremental machinery saves: a nightly refresh (one new day landed, automation carries the change)
against a full refresh (every asset rebuilt in an empty artifact folder, as a pipeline without caches and
content versions would do every night).

Both use the shipped definitions and a run preset (`smoke` by default, `demo` for the real sizes), simulated
query logs and the offline paraphraser. The nightly side materialises exactly what
`evaluate_automation_conditions` requests, tick by tick, until a tick requests nothing. Counted on each side:
wall time, the assets run, texts the teacher scored for soft labels (logit-cache misses), teacher forward
passes in stage 1 (transfer texts x epochs whenever stage 1 runs; a run that resumes a finished checkpoint
does fewer), whether the teacher was fine-tuned again, and texts sent to the
paraphrasing backend (Bedrock calls in production; `sent` of `claude_paraphrases`).

    nice -n 10 .venv/bin/python benchmarks/refresh.py                 # smoke preset, 5 days + 1 new
    nice -n 10 .venv/bin/python benchmarks/refresh.py --preset demo --days 30

Prints a table and writes benchmarks/results/refresh_<preset>.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
from _common import RESULTS, write_results

from manga_distill_assets.assets.intent_classifier import MODEL_ASSETS
from manga_distill_assets.assets.queries.clock import partition_clock
from manga_distill_assets.data.query_log import days_before
from manga_distill_assets.definitions import defs, local_resources
from manga_distill_assets.presets import PRESETS
from manga_distill_assets.resources.query_log import SimulatedQueryLog

INTENT_ASSETS = ("labeled_intents", *MODEL_ASSETS)
MAX_TICKS = 10


@dataclass
class Refresh:
    """One refresh's cost, summed over the runs it launched."""

    seconds: float = 0.0
    assets: list[str] = field(default_factory=list)
    soft_label_texts_scored: int = 0
    stage1_teacher_forwards: int = 0
    teacher_fine_tuned: bool = False
    paraphrase_texts_sent: int = 0
    failed_blocking_checks: list[str] = field(default_factory=list)


@dataclass
class World:
    """The shipped graph over one artifact folder and one ephemeral instance."""

    root: Path
    preset: str
    instance: dg.DagsterInstance = field(default_factory=dg.DagsterInstance.ephemeral)

    def __post_init__(self) -> None:
        self.resources = {**local_resources(self.root), "query_log": SimulatedQueryLog()}
        self.defs = dg.Definitions(
            assets=list(defs.assets), sensors=list(defs.sensors), resources=self.resources
        )
        available = {key.to_user_string() for key in self.defs.resolve_asset_graph().get_all_asset_keys()}
        self.intent_assets = [key for key in INTENT_ASSETS if key in available]

    def materialize(self, refresh: Refresh, keys: list[str], partition_key: str | None = None) -> None:
        ops = PRESETS[self.preset]().ops
        started = time.perf_counter()
        result = dg.materialize(
            list(defs.assets),
            selection=dg.AssetSelection.assets(*keys),
            partition_key=partition_key,
            instance=self.instance,
            resources=self.resources,
            run_config=dg.RunConfig(ops={key: ops[key] for key in keys if key in ops}),
            raise_on_error=False,
        )
        refresh.seconds += time.perf_counter() - started
        labels = [f"{key}[{partition_key}]" if partition_key else key for key in keys]
        refresh.assets.extend(labels)
        stored = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
        if not set(keys) <= stored:
            raise SystemExit(f"materialising {', '.join(labels)} failed; see the run log above.")
        if not result.success:
            # Stored, but a blocking check failed: a finding to report, not a reason to stop.
            refresh.failed_blocking_checks.extend(labels)
        self.count(refresh, keys)

    def count(self, refresh: Refresh, keys: list[str]) -> None:
        if "teacher_soft_labels" in keys:
            refresh.soft_label_texts_scored += int(self.metadata("teacher_soft_labels")["scored"])
        if "claude_paraphrases" in keys:
            refresh.paraphrase_texts_sent += int(self.metadata("claude_paraphrases")["sent"])
        if "student_stage1" in keys:
            epochs = PRESETS[self.preset]().ops.get("student_stage1")
            epochs = epochs.training.epochs if epochs is not None else 2.0
            refresh.stage1_teacher_forwards += int(self.metadata("student_stage1")["transfer_texts"] * epochs)
        refresh.teacher_fine_tuned |= "teacher_model" in keys

    def metadata(self, key: str) -> dict[str, Any]:
        record = self.instance.fetch_materializations(dg.AssetKey(key), limit=1).records[0]
        return {name: value.value for name, value in record.asset_materialization.metadata.items()}

    def build(self, refresh: Refresh, days: list[str], window_end: str) -> None:
        """Everything from nothing: the labelled set, the landed days, the window, every model.

        The models read the newest `unlabeled_queries` partition, so the window ends on `window_end` (the
        newest day) even when that day has not landed yet.
        """
        self.materialize(refresh, ["labeled_intents"])
        for day in days:
            self.materialize(refresh, ["raw_queries"], partition_key=day)
        self.materialize(refresh, ["unlabeled_queries"], partition_key=window_end)
        self.materialize(refresh, [key for key in self.intent_assets if key != "labeled_intents"])


class Automation:
    """Successive automation ticks against one world, carrying the cursor."""

    def __init__(self, world: World, now: datetime) -> None:
        self.world = world
        self.now = now
        self.cursor = None

    def tick(self) -> dict[str, set[str | None]]:
        result = dg.evaluate_automation_conditions(
            defs=self.world.defs, instance=self.world.instance, cursor=self.cursor, evaluation_time=self.now
        )
        self.cursor = result.cursor
        keys = self.world.defs.resolve_asset_graph().get_all_asset_keys()
        return {
            key.to_user_string(): set(result.get_requested_partitions(key))
            for key in keys
            if result.get_num_requested(key)
        }

    def settle(self, refresh: Refresh) -> int:
        """Materialise what each tick requests until one requests nothing; returns the ticks taken."""
        for ticks in range(1, MAX_TICKS + 1):
            requested = self.tick()
            if not requested:
                return ticks
            unpartitioned = sorted(key for key, partitions in requested.items() if partitions == {None})
            if unpartitioned:
                self.world.materialize(refresh, unpartitioned)
            for key, partitions in sorted(requested.items()):
                for partition in sorted(p for p in partitions if p is not None):
                    self.world.materialize(refresh, [key], partition_key=partition)
        raise RuntimeError(f"automation still requested assets after {MAX_TICKS} ticks; see the run logs.")


def main() -> None:
    arguments = parse_arguments()
    with partition_clock() as now:
        days = days_before(now, arguments.days + 1)
        history, new_day = days[:-1], days[-1]
        with tempfile.TemporaryDirectory(prefix="refresh-") as scratch:
            world = World(Path(scratch) / "nightly", arguments.preset)
            world.build(Refresh(), history, window_end=new_day)
            automation = Automation(world, now)
            automation.settle(Refresh())
            nightly = Refresh()
            # What the `nightly_refresh` schedule launches: the new day and a re-read of the labelled file.
            world.materialize(nightly, ["raw_queries"], partition_key=new_day)
            world.materialize(nightly, ["labeled_intents"])
            ticks = automation.settle(nightly)
            full = Refresh()
            World(Path(scratch) / "full", arguments.preset).build(full, days, window_end=new_day)
        report = {
            "preset": arguments.preset,
            "history_days": len(history),
            "new_day": new_day,
            "automation_ticks": ticks,
            "nightly": vars(nightly),
            "full": vars(full),
            "speedup": full.seconds / nightly.seconds,
        }
    print_table(report)
    write_results(report, RESULTS / f"refresh_{arguments.preset}.json")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="smoke", help="run preset (default smoke)"
    )
    parser.add_argument("--days", type=int, default=5, help="days landed before the new one (default 5)")
    return parser.parse_args()


def print_table(report: dict[str, Any]) -> None:
    nightly, full = report["nightly"], report["full"]
    print(
        f"\nrefresh, preset {report['preset']}: {report['history_days']} days landed, "
        f"then {report['new_day']}\n"
    )
    rows = [
        ("wall time, s", f"{nightly['seconds']:.1f}", f"{full['seconds']:.1f}"),
        ("asset runs", str(len(nightly["assets"])), str(len(full["assets"]))),
        ("teacher fine-tuned", str(nightly["teacher_fine_tuned"]), str(full["teacher_fine_tuned"])),
        (
            "soft-label texts scored",
            str(nightly["soft_label_texts_scored"]),
            str(full["soft_label_texts_scored"]),
        ),
        (
            "stage-1 teacher forwards",
            str(nightly["stage1_teacher_forwards"]),
            str(full["stage1_teacher_forwards"]),
        ),
        (
            "texts sent to paraphraser",
            str(nightly["paraphrase_texts_sent"]),
            str(full["paraphrase_texts_sent"]),
        ),
    ]
    print(f"| {'':<28} | {'nightly':>10} | {'full':>10} |")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 12}|")
    for name, left, right in rows:
        print(f"| {name:<28} | {left:>10} | {right:>10} |")
    print(f"\nnightly ran: {', '.join(nightly['assets'])}")
    print(f"full / nightly wall time: {report['speedup']:.1f}x")
    for side in ("nightly", "full"):
        if report[side]["failed_blocking_checks"]:
            print(f"{side}: blocking checks failed on {', '.join(report[side]['failed_blocking_checks'])}")


if __name__ == "__main__":
    main()
