"""What the model assets share: where they work, how they report progress, how a model is referenced."""

from collections.abc import Sequence

import dagster as dg
import pandas as pd

from manga_distill_assets.resources.model_store import ModelRef

LABELED_SPLITS = ("train", "validation", "test")


def log_progress(context: dg.AssetExecutionContext, stage: str):
    """Forward the core's training events to the run log, one line per logging step."""

    def forward(event: dict) -> None:
        fields = " ".join(f"{key}={_fmt(value)}" for key, value in event.items())
        context.log.info(f"{stage}: {fields}")

    return forward


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def label_names(labeled: pd.DataFrame) -> list[str]:
    return sorted(labeled["label"].unique().tolist())


def split(labeled: pd.DataFrame, name: str) -> pd.DataFrame:
    return labeled[labeled["split"] == name].reset_index(drop=True)


def label_ids(labels: Sequence[str], names: Sequence[str]) -> list[int]:
    index = {name: i for i, name in enumerate(names)}
    return [index[label] for label in labels]


def ref_output(ref: ModelRef, metadata: dict) -> dg.Output[dict]:
    """Models travel as small references; the sha256 of their folder is their data version."""
    return dg.Output(
        ref.to_dict(),
        data_version=dg.DataVersion(ref.sha256),
        metadata={"uri": ref.uri, "sha256": ref.sha256, **metadata},
    )


def loss_curve(history: Sequence[dict], key: str = "loss") -> dg.MetadataValue:
    """The loss curve as a markdown table (step, value) for the UI."""
    rows = [(entry["step"], entry[key]) for entry in history if key in entry and "step" in entry]
    lines = ["| step | " + key + " |", "|---|---|"] + [f"| {step} | {value:.4f} |" for step, value in rows]
    return dg.MetadataValue.md("\n".join(lines))


GPU_POOL = "gpu"
"""Training steps share the machine's CPU or GPU; the instance's pool limit runs them one at a time."""
