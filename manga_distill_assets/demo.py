"""`make demo`: land 31 simulated days, build the transfer set, distil, and print the report.

Runs go into the Dagster instance at DAGSTER_HOME, so `make ui` shows every materialisation afterwards.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Mapping
from datetime import datetime

import dagster as dg
from transformers.utils import logging as transformers_logging

from manga_distill_assets.assets.intent_classifier.config import Stage1Config
from manga_distill_assets.assets.intent_classifier.evaluation import summary_markdown
from manga_distill_assets.assets.queries.assets import WINDOW_DAYS
from manga_distill_assets.assets.queries.clock import partition_clock
from manga_distill_assets.data.query_log import days_before
from manga_distill_assets.definitions import defs, simulated_log_with_own_labels
from manga_distill_assets.presets import PRESETS

MODEL_ASSETS = dg.AssetSelection.groups("intent_classifier")
INFO_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--days", type=int, default=WINDOW_DAYS + 1)
    args = parser.parse_args()
    # Content-hash data versions and the user-code automation sensor are beta in Dagster; say so once, here.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    transformers_logging.set_verbosity_error()
    with partition_clock() as now:
        _run(args, now)


def _run(args: argparse.Namespace, now: datetime) -> None:
    """The demo, with every partition seen as of `now` (a demo that passes midnight UTC keeps its days)."""
    instance = dg.DagsterInstance.get()
    days = days_before(now, args.days)
    started = time.perf_counter()
    if warning := simulated_log_with_own_labels(defs.resources):
        print(f"note: {warning}\n")

    land = defs.resolve_job_def("land_raw_queries")
    for day in days:
        _check(land.execute_in_process(partition_key=day, instance=instance, run_config=INFO_LOGS), day)
    print(f"raw_queries: {len(days)} days landed ({days[0]} .. {days[-1]})")

    def run(what: str, selection: dg.AssetSelection, ops=None, **kwargs) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            list(defs.assets),
            selection=selection,
            instance=instance,
            resources=defs.resources,
            run_config=run_config_for(selection, ops or {}),
            raise_on_error=False,
            **kwargs,
        )
        state = "materialised" if result.success else "FAILED"
        print(f"{what}: {state} ({time.perf_counter() - started:.0f} s so far)")
        return result

    _check(run("labeled_intents", dg.AssetSelection.assets("labeled_intents")), "labeled_intents")
    window = dg.AssetSelection.assets("unlabeled_queries")
    _check(run(f"unlabeled_queries {days[-1]}", window, partition_key=days[-1]), "unlabeled_queries")
    ops = PRESETS[args.preset]().ops
    stage1 = ops.get("student_stage1")
    if isinstance(stage1, Stage1Config) and stage1.student.init == "general":
        general = run("general_student", dg.AssetSelection.assets("general_student"), ops=ops)
        _check(general, "general_student")
    result = run("model assets", MODEL_ASSETS, ops=ops)
    gates = {check.check_name: check for check in result.get_asset_check_evaluations()}
    if "student_quality_gate" not in gates:
        _check(result, "model assets")
    print()
    print(summary_markdown(result.output_for_node("eval_report")))
    gate = gates["student_quality_gate"]
    retention, floor = gate.metadata["retention"].value, gate.metadata["floor"].value
    print(f"\nquality gate {'passed' if gate.passed else 'FAILED'}: retention {retention:.3f}, floor {floor}")
    if not gate.passed:
        print(gate.description)
    print(
        f"demo finished in {time.perf_counter() - started:.0f} s; `make ui` shows the graph at http://127.0.0.1:3000"
    )
    if not gate.passed:
        raise SystemExit(1)


def run_config_for(selection: dg.AssetSelection, ops: Mapping[str, dg.Config]) -> dg.RunConfig:
    """`ops` narrowed to the assets `selection` picks, with INFO logs: a preset configures every target, and
    Dagster refuses config for an asset the run does not materialise."""
    selected = {key.to_user_string() for key in selection.resolve(defs.resolve_asset_graph())}
    return dg.RunConfig(
        ops={key: value for key, value in ops.items() if key in selected}, loggers=INFO_LOGS["loggers"]
    )


def _check(result: dg.ExecuteInProcessResult, what: str) -> None:
    if not result.success:
        raise SystemExit(f"{what} failed; see the run in `make ui` for the error")


if __name__ == "__main__":
    main()
