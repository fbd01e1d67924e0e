"""The intent graph with its DEFAULT config on a real set nobody tuned it for: BANKING77 (77 intents).

For each size (labelled texts per intent: 10, 30, 100, or `full` for all 10,003 train texts) and each seed,
the seed draws that many train texts per intent as the user's labelled file (validation is carved from it,
as for any user file), BANKING77's test.csv is the test split, and the remaining train texts, without
labels, are seven days of query log. Every asset of the intent graph is then materialised with no run config
at all, and the eval report's figures are kept. The table gives mean ± sd over the seeds of a size.

    PYTHONPATH=. python benchmarks/intent_real_data.py --per-intent 10 30 100 full --seeds 0 1 2
    PYTHONPATH=. python benchmarks/intent_real_data.py --per-intent 10 --seeds 0    # one run, about 20 min
    PYTHONPATH=. python benchmarks/intent_real_data.py --intents 5 --per-intent 20   # 5 intents, 2 min a run
    PYTHONPATH=. python benchmarks/intent_real_data.py --per-intent 10 --seeds 0 --student-init general \
        --general-workspace /tmp/general/artifacts/work

On the full set the draw is all of it, so its seeds vary training instead: `--full-seeds 0` (the default)
runs the defaults untouched, and another seed sets `training.seed` of every training loop (teacher, its
refinement, both baselines, both stages) to it, all else at its default:

    PYTHONPATH=. python benchmarks/intent_real_data.py --per-intent full --full-seeds 1 2   # 25 min a run

`--per-intent longtail` makes an imbalanced set, as real traffic gives: the intents, in an order the seed
shuffles, keep from all of their texts down to a sixteenth on a geometric curve, in every part alike: half of
an intent's kept train texts are labelled, the other half its query log, and its test texts are cut to the
same share. About 1,700 labelled texts (from some 90 down to 3 per intent) and 1,000 test texts for all 77:

    PYTHONPATH=. python benchmarks/intent_real_data.py --per-intent longtail --seeds 0

`--query-log simulated` leaves the untaken train texts out and lands the demo's 31 days of the simulated
manga query log instead, as `make demo` does for a user who sets only `MANGA_LABELED_*`: the transfer texts
are then another domain's.

`--intents 5` (or 64, ...) keeps that many of the 77 intents, drawn with `random.Random(0)` from the sorted
intent names, in the labelled file, the query log and the test split alike: the small and the many-intent
ends of the range a user may bring.

`--student-init general` runs the `narrow` preset: the students and both baselines start from
`general_student` (default config, default corpus) with the longer task stages that start needs; with
`--general-workspace` pointing at the training workspace of an earlier `benchmarks/general_student.py` run,
that encoder is reused rather than trained again. `--general-shape 3x192x6x768` trains (or reuses) a general
student of another shape, for the retention-speed curve.

Each run is kept under `--workdir` (default .artifacts/intent_real_data) with its result JSON, so a run that
is done is not repeated and the table covers every run done so far. Prints a table and writes
benchmarks/results/intent_real_data.json. The data is ../shared/data/banking77 or $BANKING77_DIR; without
it the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import random
import statistics
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
from _common import parse_shape

from manga_distill_assets.assets.queries.assets import WINDOW_DAYS
from manga_distill_assets.assets.queries.clock import partition_clock
from manga_distill_assets.data.query_log import days_before

RESULTS = Path(__file__).parent / "results" / "intent_real_data.json"
BANKING77 = Path(
    os.environ.get(
        "BANKING77_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banking77"
    )
)
LOG_DAYS = 7
RAREST_SHARE = 1 / 16
"""`--per-intent longtail`: the share of its texts the rarest intent keeps (the most frequent keeps all)."""
LONGTAIL_MIN_TEXTS = 2
"""...and the fewest labelled, query-log or test texts an intent keeps, so each split can hold it."""
MODELS = (
    "teacher",
    "teacher_supervised",
    "student",
    "baseline",
    "baseline_teacher_init",
    "student_onnx_int8",
)
"""The report's rows in the table; `teacher` is the refined teacher, and runs from before the refinement have
no `teacher_supervised` (their teacher was the supervised one), so its cell is empty for them."""


def main() -> None:
    arguments = parse_arguments()
    if not (BANKING77 / "train.csv").is_file() or not (BANKING77 / "test.csv").is_file():
        print(f"skipped: BANKING77 is not at {BANKING77} (train.csv and test.csv, columns text,category).")
        return
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    workdir = Path(arguments.workdir)
    student_init = arguments.student_init
    if student_init == "general" and arguments.general_shape:
        student_init = f"general-{arguments.general_shape}"
    suffix = (
        ("" if student_init == "teacher" else f"-{student_init}")
        + (f"-{arguments.intents}intents" if arguments.intents else "")
        + ("" if arguments.query_log == "rest" else f"-{arguments.query_log}log")
    )
    for size in arguments.per_intent:
        for seed in arguments.full_seeds if size == "full" else arguments.seeds:
            name = f"{size}-seed{seed}{suffix}"
            result_file = workdir / "runs" / f"{name}.json"
            if result_file.is_file():
                continue
            with partition_clock() as now:
                result = run(workdir / name, size, seed, arguments, student_init, now)
            result_file.parent.mkdir(parents=True, exist_ok=True)
            result_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    runs = [json.loads(path.read_text()) for path in sorted((workdir / "runs").glob("*.json"))]
    summary = summarise(runs)
    print_table(summary)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"summary": summary, "runs": runs}, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS}")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-intent", nargs="+", default=["10", "30", "100", "full"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--full-seeds",
        nargs="+",
        type=int,
        default=[0],
        help="training seeds of the full set: 0 is the defaults, another is every training loop's seed",
    )
    parser.add_argument("--workdir", default=".artifacts/intent_real_data")
    parser.add_argument(
        "--intents", type=int, default=0, help="keep this many intents, drawn with seed 0 (0: all 77)"
    )
    parser.add_argument(
        "--query-log",
        choices=["rest", "simulated"],
        default="rest",
        help="rest: the train texts not drawn, unlabelled; simulated: the demo's manga query log",
    )
    parser.add_argument("--student-init", choices=["teacher", "general"], default="teacher")
    parser.add_argument(
        "--general-workspace", default="", help="training workspace holding a trained general_student"
    )
    parser.add_argument(
        "--general-shape",
        default="",
        help="with --student-init general: general_student's layers x hidden x heads x feed-forward, e.g. "
        "3x192x6x768 (default: its config's, 4x192x6x768)",
    )
    return parser.parse_args()


def read_banking77(name: str, intents: frozenset[str] = frozenset()) -> list[dict[str, str]]:
    with (BANKING77 / name).open(newline="", encoding="utf-8") as handle:
        return of_intents(list(csv.DictReader(handle)), intents)


def of_intents(rows: list[dict[str, str]], intents: frozenset[str]) -> list[dict[str, str]]:
    """The rows of `intents`, or every row where none are named."""
    return [row for row in rows if row["category"] in intents] if intents else rows


def drawn_intents(rows: list[dict[str, str]], count: int) -> frozenset[str]:
    """`count` of the rows' intents drawn with seed 0, or none (every intent) for 0; drawn once, from the
    train rows, so the test split keeps the very same intents."""
    if not count:
        return frozenset()
    names = sorted({row["category"] for row in rows})
    if not 1 < count <= len(names):
        raise SystemExit(f"--intents {count}: choose between 2 and the {len(names)} intents of BANKING77.")
    return frozenset(random.Random(0).sample(names, count))


def draw(rows: list[dict[str, str]], size: str, seed: int) -> tuple[list[dict[str, str]], list[str]]:
    """`size` texts per intent drawn with `seed` (all for `full`), and the rest of the texts, unlabelled; for
    `longtail`, half of each intent's share labelled and the other half unlabelled."""
    if size == "full":
        return rows, [row["text"] for row in rows]
    by_intent = by_category(rows)
    rng = random.Random(seed)
    labelled, unlabelled = [], []
    if size == "longtail":
        for intent, share in long_tail_shares(sorted(by_intent), seed).items():
            kept = rng.sample(by_intent[intent], tail_count(len(by_intent[intent]), share, 2))
            labelled += kept[: len(kept) // 2]
            unlabelled += [row["text"] for row in kept[len(kept) // 2 :]]
        return labelled, unlabelled
    for intent in sorted(by_intent):
        labelled += rng.sample(by_intent[intent], min(int(size), len(by_intent[intent])))
    chosen = {id(row) for row in labelled}
    return labelled, [row["text"] for row in rows if id(row) not in chosen]


def drawn_test(rows: list[dict[str, str]], size: str, seed: int) -> list[dict[str, str]]:
    """The test split: all of it, or for `longtail` each intent's share of its texts, drawn with `seed`."""
    if size != "longtail":
        return rows
    by_intent = by_category(rows)
    rng = random.Random(seed)
    return [
        row
        for intent, share in long_tail_shares(sorted(by_intent), seed).items()
        for row in rng.sample(by_intent[intent], tail_count(len(by_intent[intent]), share, 1))
    ]


def by_category(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    by_intent: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_intent.setdefault(row["category"], []).append(row)
    return by_intent


def long_tail_shares(intents: list[str], seed: int) -> dict[str, float]:
    """The share of its texts each intent keeps, from 1 down to `RAREST_SHARE` on a geometric curve, the
    intents in an order shuffled by `seed`, so each seed makes other intents rare."""
    order = list(intents)
    random.Random(seed).shuffle(order)
    steps = max(len(order) - 1, 1)
    return {intent: RAREST_SHARE ** (rank / steps) for rank, intent in enumerate(order)}


def tail_count(available: int, share: float, parts: int) -> int:
    """`share` of `available` texts, at least `LONGTAIL_MIN_TEXTS` for each of `parts`, at most all."""
    return min(available, max(round(available * share), LONGTAIL_MIN_TEXTS * parts))


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows({"text": row["text"], "category": row["category"]} for row in rows)


def write_query_log(root: Path, texts: list[str], now: datetime) -> list[str]:
    """The texts over the `LOG_DAYS` days before `now` (UTC) in the `LocalQueryLog` layout."""
    days = days_before(now, LOG_DAYS)
    for index, day in enumerate(days):
        folder = root / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            json.dumps({"text": text, "ts": f"{day}T12:00:00Z", "session_id": f"b77-{index}-{row}"})
            for row, text in enumerate(texts[index::LOG_DAYS])
        ]
        (folder / "part-0.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return days


def run(
    root: Path, size: str, seed: int, arguments: argparse.Namespace, student_init: str, now: datetime
) -> dict[str, Any]:
    """One run of the graph, its partitions as of `now` (`partition_clock`); `student_init` names the setting
    in the results (teacher, general, or general-<shape> with `--general-shape`)."""
    from manga_distill_assets.assets.general.config import GeneralStudentConfig
    from manga_distill_assets.assets.intent_classifier.config import EncoderShape
    from manga_distill_assets.definitions import defs
    from manga_distill_assets.presets import narrow_run_config
    from manga_distill_assets.resources.query_log import SimulatedQueryLog
    from manga_distill_assets.resources.workspace import TrainingWorkspace

    train = read_banking77("train.csv")
    intents = drawn_intents(train, arguments.intents)
    labelled, unlabelled = draw(of_intents(train, intents), size, seed)
    root.mkdir(parents=True, exist_ok=True)
    write_rows(root / "labelled.csv", labelled)
    write_rows(root / "test.csv", drawn_test(read_banking77("test.csv", intents), size, seed))
    resources = run_resources(root)
    if arguments.query_log == "simulated":
        days, unlabelled = days_before(now, WINDOW_DAYS + 1), []
        resources["query_log"] = SimulatedQueryLog()
    else:
        days = write_query_log(root / "query_log", unlabelled, now)
    ops: dict[str, dg.Config] = {}
    if arguments.general_workspace:
        resources["training_workspace"] = TrainingWorkspace(root=arguments.general_workspace)
    general = arguments.student_init == "general"
    if general:
        ops = dict(narrow_run_config().ops)
    if general and arguments.general_shape:
        shape = EncoderShape(**dataclasses.asdict(parse_shape(arguments.general_shape)))
        ops["general_student"] = GeneralStudentConfig(shape=shape)
    if size == "full" and seed:
        ops = with_training_seed(ops, seed)
    instance = dg.DagsterInstance.ephemeral()

    def materialize(selection: dg.AssetSelection, partition_key: str | None = None) -> bool:
        return dg.materialize(
            list(defs.assets),
            selection=selection,
            partition_key=partition_key,
            instance=instance,
            resources=resources,
            run_config=dg.RunConfig(ops={key: ops[key] for key in ops if key in selection_keys(selection)}),
            raise_on_error=False,
        ).success

    def selection_keys(selection: dg.AssetSelection) -> set[str]:
        graph = defs.resolve_asset_graph()
        return {key.to_user_string() for key in selection.resolve(graph)}

    started = time.perf_counter()
    if general and not materialize(dg.AssetSelection.assets("general_student")):
        raise SystemExit("general_student failed (see its log above); every later step starts from it.")
    materialize(dg.AssetSelection.assets("labeled_intents"))
    for day in days:
        materialize(dg.AssetSelection.assets("raw_queries"), partition_key=day)
    materialize(dg.AssetSelection.assets("unlabeled_queries"), partition_key=days[-1])
    materialize(dg.AssetSelection.groups("intent_classifier"))
    wall = time.perf_counter() - started
    report = stored_report(instance)
    teacher = latest_metadata(instance, "teacher_model")
    refinement = latest_metadata(instance, "teacher_refined")
    onnx = latest_metadata(instance, "student_onnx")
    return {
        "per_intent": size,
        "seed": seed,
        "student_init": student_init,
        "query_log": arguments.query_log,
        "intents": len({row["category"] for row in labelled}),
        "labelled_texts": len(labelled),
        "unlabelled_texts": len(unlabelled),
        "wall_seconds": wall,
        "cpus": os.cpu_count(),
        "teacher_epochs_run": teacher.get("epochs_run"),
        "teacher_stop_reason": teacher.get("stop_reason"),
        "refinement_epochs_run": refinement.get("epochs_run"),
        "refinement_stop_reason": refinement.get("stop_reason"),
        "accuracy": {name: report[name]["accuracy"] for name in MODELS},
        "macro_f1": {name: report[name]["macro_f1"] for name in MODELS},
        "validation_accuracy": report["validation_accuracy"],
        "distillation_gain": report["distillation_gain"],
        "retention": report["retention"],
        "speedup_p50": {name: report[name]["speedup_p50_vs_teacher"] for name in MODELS[1:]},
        "int8_agreement": report["student_onnx_int8"]["parity"]["agreement"],
        "int8_matmuls_kept_fp32": onnx.get("int8_matmuls_kept_fp32"),
        "int8_agreement_all_matmuls_calibration": onnx.get("int8_calibration_agreement_all_matmuls"),
        "teacher_is_best": report["teacher_is_best"],
        "paired": report["paired"],
        "quality_gate": report["quality_gate"],
    }


def with_training_seed(ops: dict[str, dg.Config], seed: int) -> dict[str, dg.Config]:
    """`ops` with every training loop of the intent graph at training seed `seed`, each otherwise as `ops`
    has it or at its defaults (the baselines get stage 1's seed, so all three students still start from the
    same weights)."""
    from manga_distill_assets.assets.intent_classifier.config import (
        BaselineConfig,
        Stage1Config,
        Stage2Config,
        TeacherConfig,
        TeacherRefinementConfig,
    )

    defaults: dict[str, dg.Config] = {
        "teacher_model": TeacherConfig(),
        "teacher_refined": TeacherRefinementConfig(),
        "baseline_student": BaselineConfig(),
        "baseline_student_teacher_init": BaselineConfig(),
        "student_stage1": Stage1Config(),
        "student_stage2": Stage2Config(),
    }
    seeded = {key: ops.get(key, config) for key, config in defaults.items()}
    return ops | {
        key: config.model_copy(update={"training": config.training.model_copy(update={"seed": seed})})
        for key, config in seeded.items()
    }


def run_resources(root: Path) -> dict[str, Any]:
    """A run folder's resources: its artifacts, query log, labelled file and BANKING77 test split."""
    from manga_distill_assets.definitions import local_resources
    from manga_distill_assets.resources.labeled_source import LabeledIntentsSource
    from manga_distill_assets.resources.query_log import LocalQueryLog

    return {
        **local_resources(root / "artifacts"),
        "query_log": LocalQueryLog(root=str(root / "query_log")),
        "labeled_source": LabeledIntentsSource(
            path=str(root / "labelled.csv"),
            test_path=str(root / "test.csv"),
            label_column="category",
            split_column=None,
        ),
    }


def latest_metadata(instance: dg.DagsterInstance, key: str) -> dict[str, Any]:
    records = instance.fetch_materializations(dg.AssetKey(key), limit=1).records
    if not records:
        raise SystemExit(f"{key} was not materialised; see the run log above.")
    return {name: value.value for name, value in records[0].asset_materialization.metadata.items()}


def stored_report(instance: dg.DagsterInstance) -> dict[str, Any]:
    """The eval report as stored beside the models: it is there even when its quality gate failed."""
    uri = latest_metadata(instance, "eval_report")["report_uri"]
    return json.loads((Path(uri.removeprefix("file://")) / "eval_report.json").read_text())


def mean_sd(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": float("nan"), "sd": float("nan"), "n": 0}
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def setting(run: dict[str, Any]) -> tuple[str, str, int, str]:
    """What a run's row in the table is keyed by (runs from before `--intents` used all 77, and those from
    before `--query-log` the rest of the train texts)."""
    return (
        run["per_intent"],
        run.get("student_init", "teacher"),
        run.get("intents", 77),
        run.get("query_log", "rest"),
    )


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    summary = []
    for key in dict.fromkeys(setting(run) for run in runs):
        size, student_init, intents, query_log = key
        group = [run for run in runs if setting(run) == key]
        summary.append(
            {
                "intents": intents,
                "per_intent": size,
                "student_init": student_init,
                "query_log": query_log,
                "seeds": [run["seed"] for run in group],
                **{
                    f"{name}_accuracy": mean_sd(
                        [run["accuracy"][name] for run in group if name in run["accuracy"]]
                    )
                    for name in MODELS
                },
                "gain_accuracy": mean_sd([run["distillation_gain"]["accuracy"] for run in group]),
                "gain_macro_f1": mean_sd([run["distillation_gain"]["macro_f1"] for run in group]),
                "retention": mean_sd([run["retention"] for run in group]),
                "student_speedup_p50": mean_sd([run["speedup_p50"]["student"] for run in group]),
                "int8_speedup_p50": mean_sd([run["speedup_p50"]["student_onnx_int8"] for run in group]),
                "int8_agreement": mean_sd([run["int8_agreement"] for run in group]),
                "teacher_epochs_run": mean_sd([run["teacher_epochs_run"] for run in group]),
                "wall_minutes": mean_sd([run["wall_seconds"] / 60 for run in group]),
                "gates_passed": sum(run["quality_gate"]["passed"] for run in group),
            }
        )
    return summary


def print_table(summary: list[dict[str, Any]]) -> None:
    def cell(stat: dict[str, float], digits: int = 4) -> str:
        return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"

    columns = [
        "intents",
        "per intent",
        "student init",
        "query log",
        "runs",
        *(f"{name} acc" for name in MODELS),
        "gain acc",
        "gain F1",
        "retention",
        "int8 agree",
        "speed-up student / int8",
        "teacher epochs",
        "wall min",
        "gates passed",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in summary:
        cells = [
            str(row["intents"]),
            str(row["per_intent"]),
            row["student_init"],
            row["query_log"],
            str(len(row["seeds"])),
            *(cell(row[f"{name}_accuracy"]) for name in MODELS),
            cell(row["gain_accuracy"]),
            cell(row["gain_macro_f1"]),
            cell(row["retention"], 3),
            cell(row["int8_agreement"]),
            f"{row['student_speedup_p50']['mean']:.2f}× / {row['int8_speedup_p50']['mean']:.2f}×",
            cell(row["teacher_epochs_run"], 1),
            cell(row["wall_minutes"], 1),
            f"{row['gates_passed']}/{len(row['seeds'])}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
