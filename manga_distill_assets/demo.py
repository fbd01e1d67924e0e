"""`make demo`: land 31 simulated days, build the transfer set, distil, and print the report.

Runs go into the Dagster instance at DAGSTER_HOME, so `make ui` shows every materialisation afterwards.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from manga_distill_assets.assets.models.evaluation import summary_markdown
from manga_distill_assets.assets.queries.assets import WINDOW_DAYS
from manga_distill_assets.definitions import defs
from manga_distill_assets.presets import PRESETS

MODEL_ASSETS = dg.AssetSelection.groups("models")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--days", type=int, default=WINDOW_DAYS + 1)
    args = parser.parse_args()
    instance = dg.DagsterInstance.get()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    days = [(yesterday - timedelta(days=offset)).isoformat() for offset in reversed(range(args.days))]
    started = time.perf_counter()

    land = defs.resolve_job_def("land_raw_queries")
    for day in days:
        _check(land.execute_in_process(partition_key=day, instance=instance), f"raw_queries {day}")
    print(f"raw_queries: {len(days)} days landed ({days[0]} .. {days[-1]})")

    def run(what: str, selection: dg.AssetSelection, **kwargs) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            list(defs.assets), selection=selection, instance=instance, resources=defs.resources, **kwargs
        )
        _check(result, what)
        print(f"{what}: materialised ({time.perf_counter() - started:.0f} s so far)")
        return result

    run("labeled_intents", dg.AssetSelection.assets("labeled_intents"))
    run(
        f"unlabeled_queries {days[-1]}", dg.AssetSelection.assets("unlabeled_queries"), partition_key=days[-1]
    )
    result = run("model assets", MODEL_ASSETS, run_config=PRESETS[args.preset]())
    print()
    print(summary_markdown(result.output_for_node("eval_report")))
    print(
        f"\ndemo finished in {time.perf_counter() - started:.0f} s; `make ui` shows the graph at http://127.0.0.1:3000"
    )


def _check(result: dg.ExecuteInProcessResult, what: str) -> None:
    if not result.success:
        raise SystemExit(f"{what} failed; see the run in `make ui` for the error")


if __name__ == "__main__":
    main()
