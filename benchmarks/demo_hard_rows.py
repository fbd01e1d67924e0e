"""Which rows of the packaged set decide `make demo`'s order: each model's errors on the regular rows and on
the rows hard on purpose.

About one row in six of the packaged intent set is hard by design (`kind` in
`manga_distill_assets/data/intent_generator.py`): `cue` rows whose label rests on one small cue (some on where
a title's published run ends, which only the catalogue knows) and `multi` rows, two requests labelled with
the more urgent one. The models of a demo are a few test texts apart, so it matters where those texts are.
This reads the models a finished demo stored (each asset's reference under `<artifacts>/assets`), scores the
validation and test splits with the code `eval_report` uses, and counts errors per kind:

    make demo && PYTHONPATH=. python benchmarks/demo_hard_rows.py

Prints a table and writes benchmarks/results/demo_hard_rows.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from _common import RESULTS, pin_torch_threads, write_results

from manga_distill_assets.data.intent_generator import generate_intent_rows
from manga_distill_assets.distill.artifacts import load_model
from manga_distill_assets.distill.evaluation import predict_logits
from manga_distill_assets.resources.model_store import LocalModelStore

MODELS = {
    "teacher (refined)": "teacher_refined",
    "teacher (supervised)": "teacher_model",
    "student": "student_stage2",
    "baseline (pre-trained init)": "baseline_student",
    "baseline (teacher init)": "baseline_student_teacher_init",
}
KINDS = ("regular", "cue", "multi")
SPLITS = ("validation", "test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, default=Path(".artifacts"), help="a demo's artifacts")
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    pin_torch_threads(arguments.threads)
    labelled = pd.read_parquet(arguments.artifacts / "assets" / "labeled_intents" / "data.parquet")
    rows = with_kinds(labelled)
    report = {
        "rows": {split: rows[rows["split"] == split]["kind"].value_counts().to_dict() for split in SPLITS},
        "errors": {
            name: errors_by_kind(model_folder(arguments.artifacts, asset), rows)
            for name, asset in MODELS.items()
        },
    }
    print_table(report)
    write_results(report, RESULTS / "demo_hard_rows.json")


def with_kinds(labelled: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows with the generator's `kind`, matched on the text; a set that is not the packaged one
    (a `MANGA_LABELED_PATH` file) has no kinds, and is refused by name."""
    kinds = generate_intent_rows().set_index("text")["kind"]
    found = labelled.assign(kind=labelled["text"].map(kinds))
    if found["kind"].isna().any():
        missing = int(found["kind"].isna().sum())
        raise SystemExit(
            f"{missing} labelled texts are not rows of the packaged intent set: this reads a demo run on "
            "manga_intents.csv (unset MANGA_LABELED_PATH and run `make demo`)."
        )
    return found


def model_folder(artifacts: Path, asset: str) -> Path:
    """The folder of the model `asset` last stored, resolved from its reference by the demo's model store."""
    reference = artifacts / "assets" / asset / "data.json"
    if not reference.is_file():
        raise SystemExit(f"{reference} is missing: materialise {asset} first (`make demo`).")
    store = LocalModelStore(root=str(artifacts / "models"))
    return store.get(json.loads(reference.read_text(encoding="utf-8")))


def errors_by_kind(folder: Path, rows: pd.DataFrame) -> dict[str, dict[str, int]]:
    model, tokenizer = load_model(folder)
    counts = {}
    for split in SPLITS:
        part = rows[rows["split"] == split]
        predicted = predict_logits(model, tokenizer, part["text"].tolist()).argmax(axis=1)
        names = np.array([model.config.id2label[int(index)] for index in predicted])
        wrong = names != part["label"].to_numpy()
        counts[split] = {kind: int((wrong & (part["kind"] == kind).to_numpy()).sum()) for kind in KINDS}
    return counts


def print_table(report: dict) -> None:
    """Errors per model and kind of row; the first row is how many rows of each kind a split has."""
    columns = [(split, kind) for split in SPLITS for kind in KINDS]
    print("| errors | " + " | ".join(f"{split} {kind}" for split, kind in columns) + " |")
    print("|---|" + "---|" * len(columns))
    print("| rows | " + " | ".join(str(report["rows"][split].get(kind, 0)) for split, kind in columns) + " |")
    for name, counts in report["errors"].items():
        print(f"| {name} | " + " | ".join(str(counts[split][kind]) for split, kind in columns) + " |")


if __name__ == "__main__":
    main()
