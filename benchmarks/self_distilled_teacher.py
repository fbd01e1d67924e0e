"""A self-distilled teacher: is a teacher trained once more on its own soft labels the best model of its run?

The supervised teacher sees only the labelled texts; the student also learns from the paraphrases and the
query log through the teacher's soft labels, and on easy sets it often edges past its teacher. Here the stored
teacher of a finished run is trained again as stage 2 trains the student (`train_stage2`, the run's kept
transfer rows, its own logits, the validation split), registered as the graph's teacher (`teacher_model`
`registered_checkpoint`), and every later asset is trained again from it with the defaults: soft labels, both
stages, both baselines, ONNX, the report. Not a default of the graph (docs/intent-on-real-data.md).

    PYTHONPATH=. python benchmarks/self_distilled_teacher.py \
        --banking77-run .artifacts/intent_real_data/20-seed0-5intents
    PYTHONPATH=. python benchmarks/self_distilled_teacher.py --demo    # after `make demo`, its Dagster home

It works on a copy (under --workdir) of the run folder written by `benchmarks/intent_real_data.py`, or of
`make demo`'s artifacts and Dagster home, and prints the run's report beside the self-distilled one: test
accuracy of every model and the paired tests. The JSON goes beside the copy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
from _common import write_results
from intent_real_data import MODELS, run_resources


def main() -> None:
    arguments = parse_arguments()
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    workdir = Path(arguments.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    if arguments.demo:
        artifacts = copied_demo(workdir)
        resources, instance, ops = demo_graph()
    else:
        source = Path(arguments.banking77_run)
        if not (source / "artifacts" / "models" / "teacher").is_dir():
            raise SystemExit(f"{source} holds no finished run of benchmarks/intent_real_data.py.")
        shutil.copytree(source, workdir)
        artifacts = workdir / "artifacts"
        resources, instance, ops = banking77_graph(workdir)
    default = stored_report(artifacts)
    started = time.perf_counter()
    teacher, steps, rows = self_distilled_teacher(artifacts, workdir / "teacher_self_distilled", arguments)
    training_seconds = time.perf_counter() - started
    from manga_distill_assets.assets.intent_classifier.config import TeacherConfig
    from manga_distill_assets.definitions import defs

    started = time.perf_counter()
    result = dg.materialize(
        list(defs.assets),
        selection=dg.AssetSelection.groups("intent_classifier"),
        instance=instance,
        resources=resources,
        run_config=dg.RunConfig(
            ops={**ops, "teacher_model": TeacherConfig(registered_checkpoint=str(teacher))}
        ),
        raise_on_error=False,
    )
    refined = result.output_for_node("eval_report")
    outcome = {
        "source": "demo" if arguments.demo else arguments.banking77_run,
        "learning_rate": arguments.learning_rate,
        "transfer_rows": rows,
        "optimizer_steps": steps,
        "training_seconds": training_seconds,
        "graph_seconds": time.perf_counter() - started,
        "default": summary(default),
        "self_distilled": summary(refined),
    }
    print_comparison(outcome)
    write_results(outcome, workdir / "self_distilled_teacher.json")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--banking77-run", help="a run folder of benchmarks/intent_real_data.py")
    source.add_argument("--demo", action="store_true", help="make demo's artifacts and DAGSTER_HOME")
    parser.add_argument("--workdir", default=".artifacts/self_distilled_teacher")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    return parser.parse_args()


def copied_demo(workdir: Path) -> Path:
    """Copies of `make demo`'s artifacts and Dagster home, which the definitions then read: they take both
    from the environment when first imported, so nothing may import them before this."""
    home, source = os.environ.get("DAGSTER_HOME"), Path(os.environ.get("MANGA_ARTIFACTS_DIR", ".artifacts"))
    if not home or not (source / "models" / "teacher").is_dir():
        raise SystemExit("--demo needs DAGSTER_HOME and the artifacts of a finished `make demo`.")
    artifacts, copied_home = workdir / "artifacts", workdir / "home"
    shutil.copytree(source, artifacts)
    shutil.copytree(home, copied_home)
    os.environ["DAGSTER_HOME"], os.environ["MANGA_ARTIFACTS_DIR"] = str(copied_home), str(artifacts)
    return artifacts


def demo_graph() -> tuple[dict[str, Any], dg.DagsterInstance, dict[str, Any]]:
    from manga_distill_assets.definitions import defs
    from manga_distill_assets.presets import PRESETS

    return defs.resources, dg.DagsterInstance.get(), dict(PRESETS["demo"]().ops)


def banking77_graph(root: Path) -> tuple[dict[str, Any], dg.DagsterInstance, dict[str, Any]]:
    """The run's resources in a fresh instance, with its labelled set and query log window materialised
    again (seconds) so the model assets find their inputs."""
    from manga_distill_assets.definitions import defs

    resources, instance = run_resources(root), dg.DagsterInstance.ephemeral()
    days = sorted(path.name.removeprefix("dt=") for path in (root / "query_log").glob("dt=*"))

    def materialize(key: str, partition_key: str | None = None) -> None:
        dg.materialize(
            list(defs.assets),
            selection=dg.AssetSelection.assets(key),
            partition_key=partition_key,
            instance=instance,
            resources=resources,
        )

    materialize("labeled_intents")
    for day in days:
        materialize("raw_queries", day)
    materialize("unlabeled_queries", days[-1])
    return resources, instance, {}


def stored_report(artifacts: Path) -> dict[str, Any]:
    """The run's own report, the newest stored beside its models."""
    reports = sorted((artifacts / "models" / "eval_report").glob("*/eval_report.json"), key=os.path.getmtime)
    report = json.loads(reports[-1].read_text())
    if "paired" not in report:
        raise SystemExit("The run's report has no paired tests: run it again with this version of the graph.")
    return report


def self_distilled_teacher(
    artifacts: Path, output: Path, arguments: argparse.Namespace
) -> tuple[Path, int, int]:
    """The stored teacher trained as stage 2 trains the student, on the stored soft labels of the kept
    transfer rows; saved as safetensors with its tokenizer."""
    import pandas as pd

    from manga_distill_assets.assets.intent_classifier.config import Stage2Config
    from manga_distill_assets.assets.intent_classifier.students import distil_on_rows, kept_rows
    from manga_distill_assets.distill.artifacts import load_model

    labeled = pd.read_parquet(artifacts / "assets" / "labeled_intents" / "data.parquet")
    soft_labels = pd.read_parquet(artifacts / "assets" / "teacher_soft_labels" / "data.parquet")
    (folder,) = [path for path in (artifacts / "models" / "teacher").iterdir() if path.is_dir()]
    teacher, tokenizer = load_model(folder)
    stage2 = Stage2Config()
    rows = kept_rows(soft_labels, stage2.origins())
    knobs = stage2.training.model_copy(update={"learning_rate": arguments.learning_rate})
    with tempfile.TemporaryDirectory() as checkpoints:
        trained = distil_on_rows(
            teacher, tokenizer, rows, labeled, knobs.training_config(Path(checkpoints)), stage2.output()
        )
    trained.model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    return output, trained.optimizer_steps, len(rows)


def summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "accuracy": {name: report[name]["accuracy"] for name in MODELS},
        "validation_accuracy": report["validation_accuracy"],
        "paired": report["paired"],
        "quality_gate": report["quality_gate"],
    }


def print_comparison(outcome: dict[str, Any]) -> None:
    print("| run | " + " | ".join(MODELS) + " | student − teacher | teacher − baseline | gate |")
    print("|" + "---|" * (len(MODELS) + 4))
    for teacher in ("default", "self_distilled"):
        run = outcome[teacher]
        pairs = [run["paired"][pair] for pair in ("student_vs_teacher", "teacher_vs_baseline")]
        cells = [f"{run['accuracy'][name]:.4f}" for name in MODELS] + [
            f"{pair['only_first_right']} against {pair['only_second_right']}, p = {pair['p_value']:.3g}"
            for pair in pairs
        ]
        gate = "passed" if run["quality_gate"]["passed"] else "failed"
        print(f"| {teacher} | " + " | ".join(cells) + f" | {gate} |")
    print(
        f"\nself-distillation: {outcome['optimizer_steps']} steps on {outcome['transfer_rows']} transfer "
        f"rows in {outcome['training_seconds']:.0f} s; the graph again from it: "
        f"{outcome['graph_seconds']:.0f} s"
    )


if __name__ == "__main__":
    main()
