"""The ensemble's soft targets on the transfer texts: every member's logits (cached per member and text),
calibrated and averaged."""

import dagster as dg
import numpy as np
import pandas as pd

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.ensemble.config import EnsembleSoftLabelConfig
from manga_distill_assets.assets.ensemble.scoring import cached_logits, members_version, mixture
from manga_distill_assets.assets.intent_classifier.common import label_ids, label_names, split
from manga_distill_assets.data.fingerprint import frame_fingerprint, lines_fingerprint
from manga_distill_assets.distill.ensemble import as_logits
from manga_distill_assets.resources.logit_cache import LogitCache
from manga_distill_assets.resources.model_store import ModelStore

ROW_COLUMNS = ["text", "origin", "label", "source_text"]
CHECK = "ensemble_beats_best_member"


@dg.asset(
    group_name="ensemble",
    code_version="1",
    kinds={"pytorch", "parquet"},
    automation_condition=on_input_content_change(),
    check_specs=[dg.AssetCheckSpec(CHECK, asset="ensemble_soft_labels")],
)
def ensemble_soft_labels(
    context: dg.AssetExecutionContext,
    config: EnsembleSoftLabelConfig,
    ensemble_members: list,
    teacher_soft_labels: pd.DataFrame,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    logit_cache: LogitCache,
):
    """The single teacher's transfer rows (labelled train, paraphrases, unlabeled queries), so both students
    learn from the same texts; `logits` holds log of the ensemble's mean calibrated probabilities, and
    `keep` says whether the ensemble backs a paraphrase's source label."""
    frame = teacher_soft_labels[ROW_COLUMNS].copy()
    texts = frame["text"].tolist()
    member_logits, scored = [], {}
    for entry in ensemble_members:
        logits, scored[entry["name"]] = cached_logits(
            entry, texts, model_store, logit_cache, config.batch_size
        )
        member_logits.append(logits)
        context.log.info(f"member {entry['name']}: {scored[entry['name']]} texts scored, the rest cached")
    probabilities = mixture(ensemble_members, member_logits)
    frame["keep"] = _keep(frame, probabilities, config.keep_threshold)
    frame["logits"] = list(as_logits(probabilities))
    accuracies = _validation_accuracies(ensemble_members, labeled_intents, model_store, logit_cache)
    best_name = max((name for name in accuracies if name != "ensemble"), key=accuracies.__getitem__)
    gain = accuracies["ensemble"] - accuracies[best_name]
    paraphrases = frame["origin"] == "paraphrase"
    yield dg.Output(
        frame,
        data_version=dg.DataVersion(
            lines_fingerprint(
                [frame_fingerprint(frame.drop(columns="logits")), members_version(ensemble_members)]
            )
        ),
        metadata={
            "rows": len(frame),
            **{f"scored_{name}": count for name, count in scored.items()},
            "scored": sum(scored.values()),
            "paraphrase_keep_rate": float(frame.loc[paraphrases, "keep"].mean())
            if paraphrases.any()
            else 0.0,
            **{f"{name}_validation_accuracy": value for name, value in accuracies.items()},
            "gain_over_best_member": gain,
        },
    )
    yield dg.AssetCheckResult(
        check_name=CHECK,
        passed=gain > 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"Validation accuracy: ensemble {accuracies['ensemble']:.4f}, best member {best_name} "
        f"{accuracies[best_name]:.4f}. "
        + (
            "The ensemble is worth distilling."
            if gain > 0
            else "The ensemble adds nothing over its best member: make the members more different (another "
            "base or data), re-weight them, or distil the best member alone."
        ),
        metadata={"ensemble": accuracies["ensemble"], "best_member": best_name, "gain": gain},
    )


def _keep(frame: pd.DataFrame, probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Labelled and unlabeled rows are always kept; a paraphrase only when the ensemble backs its label."""
    labels = frame["label"].to_numpy()
    agrees = (probabilities.argmax(axis=1) == labels) & (
        probabilities[np.arange(len(labels)), np.maximum(labels, 0)] >= threshold
    )
    return np.where(frame["origin"].to_numpy() == "paraphrase", agrees, True)


def _validation_accuracies(
    members: list, labeled: pd.DataFrame, store: ModelStore, cache: LogitCache
) -> dict[str, float]:
    """Each member's and the ensemble's validation accuracy (the members' logits come from the cache)."""
    validation = split(labeled, "validation")
    truth = np.asarray(label_ids(validation["label"], label_names(labeled)))
    texts = validation["text"].tolist()
    logits = [cached_logits(entry, texts, store, cache)[0] for entry in members]
    accuracies = {
        entry["name"]: float(np.mean(values.argmax(axis=1) == truth))
        for entry, values in zip(members, logits, strict=True)
    }
    accuracies["ensemble"] = float(np.mean(mixture(members, logits).argmax(axis=1) == truth))
    return accuracies
