"""Ensemble vs single teacher: the same stage-2 recipe from the same stage-1 student, once on the ensemble's
targets and once on the teacher's, each run per seed, so the difference between the students is the targets'.

Like the distillation studies, a partition stores per-seed metrics, not models, and trains in a fresh folder
that is deleted afterwards (no resume from a finished run; honest training time).
"""

import dataclasses
import tempfile
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from manga_distill_assets.assets.ensemble.config import EnsembleStudyConfig
from manga_distill_assets.assets.intent_classifier.common import (
    GPU_OP_TAGS,
    GPU_POOL,
    label_ids,
    label_names,
    log_progress,
    matching_ref,
    split,
)
from manga_distill_assets.assets.intent_classifier.students import distil_stored, kept_rows
from manga_distill_assets.assets.markdown import markdown_table
from manga_distill_assets.data.fingerprint import frame_fingerprint
from manga_distill_assets.distill.evaluation import classification_report, predict_logits
from manga_distill_assets.resources.model_store import ModelStore
from manga_distill_assets.resources.workspace import TrainingWorkspace

TARGETS = ("targets=ensemble", "targets=single_teacher")
RESULT_COLUMNS = [
    "variant",
    "seed",
    "accuracy",
    "macro_f1",
    "training_seconds",
    "optimizer_steps",
    "transfer_rows",
]


@dg.asset(
    group_name="ensemble",
    code_version="1",
    kinds={"pytorch"},
    partitions_def=dg.StaticPartitionsDefinition(list(TARGETS)),
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
)
def ensemble_vs_single_teacher_study(
    context: dg.AssetExecutionContext,
    config: EnsembleStudyConfig,
    student_stage1: dict,
    ensemble_soft_labels: pd.DataFrame,
    teacher_soft_labels: pd.DataFrame,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
) -> dg.Output[pd.DataFrame]:
    """Stage 2 on the ensemble's or the single teacher's soft labels, per seed; test accuracy per seed."""
    stage1 = matching_ref(student_stage1, labeled_intents, "ensemble_vs_single_teacher_study")
    soft_labels = ensemble_soft_labels if context.partition_key == TARGETS[0] else teacher_soft_labels
    rows = kept_rows(soft_labels, config.origins())
    test = split(labeled_intents, "test")
    names = label_names(labeled_intents)
    truth = label_ids(test["label"], names)
    results = []
    for seed in config.seeds:
        with tempfile.TemporaryDirectory(dir=training_workspace.folder("ensemble_study")) as tmp:
            training = dataclasses.replace(
                config.training.training_config(Path(tmp)), seed=seed, resume=False
            )
            started = time.perf_counter()
            result, tokenizer = distil_stored(
                stage1,
                rows,
                labeled_intents,
                model_store,
                training,
                config.output(),
                log_progress(context, f"{context.partition_key} seed {seed}"),
            )
            seconds = time.perf_counter() - started
        predictions = predict_logits(result.model, tokenizer, test["text"].tolist()).argmax(axis=1)
        quality = classification_report(truth, predictions.tolist(), names)
        results.append(
            {
                "variant": context.partition_key,
                "seed": seed,
                "accuracy": quality["accuracy"],
                "macro_f1": quality["macro_f1"],
                "training_seconds": seconds,
                "optimizer_steps": result.optimizer_steps,
                "transfer_rows": len(rows),
            }
        )
        context.log.info(f"{context.partition_key} seed {seed}: test accuracy {quality['accuracy']:.4f}")
    frame = pd.DataFrame(results, columns=RESULT_COLUMNS)
    return dg.Output(
        frame,
        data_version=dg.DataVersion(frame_fingerprint(frame.drop(columns="training_seconds"))),
        metadata={
            "seeds": dg.MetadataValue.md(markdown_table(frame.to_dict("records"))),
            "accuracy_mean": float(frame["accuracy"].mean()),
            "accuracy_std": float(frame["accuracy"].std(ddof=0)),
            "macro_f1_mean": float(frame["macro_f1"].mean()),
            "training_seconds_total": float(frame["training_seconds"].sum()),
        },
    )


ENSEMBLE_STUDY_JOB = dg.define_asset_job(
    "ensemble_vs_single_teacher_study_job",
    selection=dg.AssetSelection.assets("ensemble_vs_single_teacher_study"),
    description="Both partitions of the ensemble vs single-teacher study, one run each.",
)
