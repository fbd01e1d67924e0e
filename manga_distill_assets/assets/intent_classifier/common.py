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


def matching_ref(value: dict, labeled: pd.DataFrame, used_by: str) -> ModelRef:
    """The model behind an upstream reference, refused (saying what to re-materialise) when its classes are
    not the labelled set's: a model built on older labels would score every class under a wrong name."""
    ref = ModelRef.from_dict(value)
    try:
        ref.require_labels(label_names(labeled), used_by)
    except ValueError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
    return ref


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

GPU_OP_TAGS: dict[str, object] = {
    "dagster-k8s/config": {
        "container_config": {
            "resources": {
                "requests": {"cpu": "4", "memory": "16Gi"},
                "limits": {"nvidia.com/gpu": 1, "memory": "32Gi"},
            }
        },
        "pod_spec_config": {
            "node_selector": {"nvidia.com/gpu.present": "true"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
}
"""Where steps run as Kubernetes pods (`k8s_job_executor`), each training step asks for one GPU on a GPU node;
every other executor ignores these tags. The node label is the one NVIDIA's GPU operator sets: change it, or
override it per step with the executor's `per_step_k8s_config`, where GPU nodes are labelled otherwise."""
