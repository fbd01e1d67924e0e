"""The four distillation studies, every partition, then `experiment_report`: the tables and each study's time.

`--preset demo` runs the studies' default (demo) config against the graph `make demo` left in DAGSTER_HOME
and MANGA_ARTIFACTS_DIR, one run per partition in that instance, so `make ui` shows them afterwards.
`--preset smoke` first builds the smoke graph (`python -m manga_distill_assets.demo --preset smoke`) in a tmp
folder with its own instance, then runs the smoke study config there.

    nice -n 10 .venv/bin/python benchmarks/studies.py --preset demo          # after `make demo`
    nice -n 10 .venv/bin/python benchmarks/studies.py --preset demo --studies alpha_study
    .venv/bin/python benchmarks/studies.py --preset smoke                    # the plumbing, in minutes

Prints each study's wall time and the report's tables; writes benchmarks/results/studies_<preset>.json
(studies_<preset>_<study>.json for a subset).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, write_results

REPOSITORY = Path(__file__).resolve().parents[1]


def main() -> None:
    arguments = parse_arguments()
    if arguments.preset == "smoke":
        with tempfile.TemporaryDirectory(prefix="studies-smoke-") as scratch:
            build_smoke_graph(Path(scratch))
            report = run(arguments.preset, arguments.studies)
    else:
        report = run(arguments.preset, arguments.studies)
    print_report(report)
    from manga_distill_assets.assets.experiments.config import STUDY_ASSETS

    chosen = "" if set(arguments.studies) == set(STUDY_ASSETS) else "_" + "+".join(arguments.studies)
    write_results(report, RESULTS / f"studies_{arguments.preset}{chosen}.json")


def parse_arguments() -> argparse.Namespace:
    from manga_distill_assets.assets.experiments.config import STUDY_ASSETS, STUDY_PRESETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(STUDY_PRESETS), default="demo")
    parser.add_argument("--studies", nargs="+", choices=STUDY_ASSETS, default=list(STUDY_ASSETS))
    return parser.parse_args()


def build_smoke_graph(root: Path) -> None:
    """Point this process's instance and artifacts at `root`, then materialise the smoke graph there."""
    os.environ.update({"DAGSTER_HOME": str(root / "home"), "MANGA_ARTIFACTS_DIR": str(root / "artifacts")})
    (root / "home").mkdir()
    (root / "home" / "dagster.yaml").write_text((REPOSITORY / "dagster.yaml").read_text(), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "manga_distill_assets.demo", "--preset", "smoke", "--days", "3"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def run(preset: str, studies: list[str]) -> dict[str, Any]:
    import dagster as dg

    from manga_distill_assets.assets.experiments.config import STUDY_PRESETS
    from manga_distill_assets.definitions import defs

    instance = dg.DagsterInstance.get()
    ops = STUDY_PRESETS[preset]()
    graph = defs.resolve_asset_graph()
    seconds: dict[str, float] = {}
    for study in studies:
        partitions = graph.get(dg.AssetKey(study)).partitions_def.get_partition_keys()
        started = time.perf_counter()
        for partition in partitions:
            materialize(defs, instance, study, partition, {study: ops[study]})
            print(f"{study}[{partition}] done ({time.perf_counter() - started:.0f} s so far)", flush=True)
        seconds[study] = time.perf_counter() - started
    result = materialize(defs, instance, "experiment_report", None, {})
    return {
        "preset": preset,
        "seconds_per_study": seconds,
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "report": result.output_for_node("experiment_report"),
    }


def materialize(defs, instance, key: str, partition: str | None, ops: dict):
    import dagster as dg

    result = dg.materialize(
        list(defs.assets),
        selection=dg.AssetSelection.assets(key),
        partition_key=partition,
        instance=instance,
        resources=defs.resources,
        run_config=dg.RunConfig(ops=ops),
        raise_on_error=False,
    )
    if not result.success:
        where = key if partition is None else f"{key}[{partition}]"
        raise SystemExit(f"materialising {where} failed; see the run log above (or `make ui`).")
    return result


def print_report(report: dict[str, Any]) -> None:
    from manga_distill_assets.assets.experiments.report import report_markdown

    print(f"\nstudies, preset {report['preset']}, on {report['cpus']} CPUs")
    for study, seconds in report["seconds_per_study"].items():
        print(f"  {study}: {seconds:.0f} s ({seconds / 60:.1f} min), every partition")
    print()
    print(report_markdown(report["report"]))


if __name__ == "__main__":
    main()
