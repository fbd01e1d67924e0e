"""The ensemble's student: stage 2 of the intent graph, on the ensemble's soft targets, from the same
stage-1 student that student_stage2 starts from, so the two students differ only in their targets."""

from hashlib import sha256

import dagster as dg
import numpy as np
import pandas as pd

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.ensemble.config import EnsembleStudentConfig
from manga_distill_assets.assets.intent_classifier.common import GPU_OP_TAGS, GPU_POOL
from manga_distill_assets.assets.intent_classifier.students import distil_and_store
from manga_distill_assets.resources.model_store import ModelStore
from manga_distill_assets.resources.workspace import TrainingWorkspace


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
    """(1-α)·CE + α·T²·KL against the ensemble's mean calibrated probabilities. The texts are the teacher's,
    so the targets' digest joins the checkpoints' key: new members change the targets, not the texts."""
    targets = np.stack(ensemble_soft_labels["logits"].to_numpy()).astype(np.float32)
    return distil_and_store(
        context,
        "ensemble_student",
        config,
        student_stage1,
        ensemble_soft_labels,
        labeled_intents,
        model_store,
        training_workspace,
        sha256(targets.tobytes()).hexdigest(),
    )
