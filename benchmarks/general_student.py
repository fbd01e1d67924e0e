"""The general distillation stage with its defaults: wall time, and the matching loss it reaches.

Materialises `general_student` (group general_distillation) with the defaults a user gets, on the corpus the
environment names (MANGA_GENERAL_CORPUS; unset: ../shared/data/general_corpus/wikitext2_valid.txt), into a
Dagster instance and artifact folder under `--workdir`, so `benchmarks/general_init.py --workdir` can start
task students from the same encoder.

    nice -n 10 .venv/bin/python benchmarks/general_student.py --workdir /tmp/general

Prints a table (the loss every 50 steps, with its parts) and writes benchmarks/results/general_student.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import dagster as dg
from _common import RESULTS, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="Dagster instance and artifacts live here")
    parser.add_argument("--epochs", type=float, default=0.0, help="override the default epochs (0: default)")
    arguments = parser.parse_args()
    workdir = Path(arguments.workdir).resolve()
    os.environ["MANGA_ARTIFACTS_DIR"] = str(workdir / "artifacts")
    from manga_distill_assets.assets.general.config import GeneralStudentConfig
    from manga_distill_assets.definitions import defs

    config = GeneralStudentConfig()
    if arguments.epochs:
        config = config.model_copy(
            update={"training": config.training.model_copy(update={"epochs": arguments.epochs})}
        )
    (workdir / "dagster").mkdir(parents=True, exist_ok=True)
    instance = dg.DagsterInstance.local_temp(tempdir=str(workdir / "dagster"))
    started = time.perf_counter()
    result = dg.materialize(
        list(defs.assets),
        selection=dg.AssetSelection.assets("general_student"),
        instance=instance,
        resources=defs.resources,
        run_config=dg.RunConfig(ops={"general_student": config}),
    )
    seconds = time.perf_counter() - started
    materialization = result.asset_materializations_for_node("general_student")[0]
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    curve = metadata.pop("loss_curve")
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "config": config.model_dump(),
        "wall_seconds": round(seconds, 1),
        **{key: value for key, value in metadata.items() if key not in ("uri",)},
        "loss_curve_markdown": curve,
    }
    print(f"general_student: {seconds:.0f} s wall, {metadata['train_runtime_s']:.0f} s training")
    for key in ("passages", "words", "parameters", "optimizer_steps", "final_loss"):
        print(f"  {key}: {metadata[key]}")
    print(curve)
    write_results(report, RESULTS / "general_student.json")


if __name__ == "__main__":
    main()
