"""The ensemble's student: stage 2 of the intent graph, on the ensemble's soft targets, from the same
stage-1 student that student_stage2 starts from, so the two students differ only in their targets."""

from hashlib import sha256

import dagster as dg
import numpy as np
import pandas as pd

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.ensemble.config import EnsembleStudentConfig
from manga_distill_assets.assets.intent_classifier.common import (
    GPU_OP_TAGS,
    GPU_POOL,
    log_progress,
    loss_curve,
    matching_ref,
    ref_output,
)
from manga_distill_assets.assets.intent_classifier.students import distil_stage1_student, save_and_put
from manga_distill_assets.data.fingerprint import lines_fingerprint
from manga_distill_assets.distill.students import count_parameters
from manga_distill_assets.resources.model_store import ModelStore
from manga_distill_assets.resources.workspace import TrainingWorkspace

KIND = "ensemble_student"


def transfer_rows(soft_labels: pd.DataFrame, use_paraphrases: bool, use_unlabeled: bool) -> pd.DataFrame:
    """Kept rows of the chosen origins, as student_stage2 selects them."""
    origins = {"labeled"} | ({"paraphrase"} if use_paraphrases else set())
    origins |= {"unlabeled"} if use_unlabeled else set()
    return soft_labels[soft_labels["keep"] & soft_labels["origin"].isin(origins)].reset_index(drop=True)


@dg.asset(
    group_name="ensemble",
    code_version="1",
    kinds={"pytorch"},
    automation_condition=on_input_content_change(),
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
)
def ensemble_student(
    context: dg.AssetExecutionContext,
    config: EnsembleStudentConfig,
    student_stage1: dict,
    ensemble_soft_labels: pd.DataFrame,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
) -> dg.Output[dict]:
    """(1-α)·CE + α·T²·KL against the ensemble's mean calibrated probabilities."""
    stage1_ref = matching_ref(student_stage1, labeled_intents, "ensemble_student")
    rows = transfer_rows(ensemble_soft_labels, config.use_paraphrases, config.use_unlabeled)
    with training_workspace.checkpoints(
        KIND,
        stage1_ref.sha256,
        lines_fingerprint(rows["text"]),
        sha256(np.stack(rows["logits"].to_numpy()).astype(np.float32).tobytes()).hexdigest(),
        config.model_dump_json(),
    ) as checkpoints:
        result, tokenizer = distil_stage1_student(
            stage1_ref,
            rows,
            labeled_intents,
            model_store,
            config.training.training_config(checkpoints),
            config.output(),
            log_progress(context, "ensemble stage2"),
        )
        ref = save_and_put(
            model_store, result.model, tokenizer, KIND, stage1_ref.label_map, dict(result.metrics)
        )
    return ref_output(
        ref,
        {
            **{
                f"rows_{origin}": int((rows["origin"] == origin).sum())
                for origin in ("labeled", "paraphrase", "unlabeled")
            },
            "temperature": config.temperature,
            "alpha": config.alpha,
            "parameters": count_parameters(result.model),
            "optimizer_steps": result.optimizer_steps,
            "loss_curve": loss_curve(result.log_history),
            **{key: float(value) for key, value in result.metrics.items()},
        },
    )
