"""The refined teacher: the supervised teacher trained once more on its own soft labels of the transfer set.

The supervised teacher learns from the labelled texts alone, while its student also learns from the
paraphrases and the query log through the teacher's soft labels; where labels are scarce that student often
ended up more accurate than its teacher. Trained as stage 2 trains the student (`train_stage2` on the kept
rows of `teacher_soft_labels`, validation keeping the best checkpoint), the teacher sees what its student
will see, and the students, the teacher-init baseline and the report then start from it.
"""

import math

import dagster as dg
import pandas as pd

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.intent_classifier.common import (
    GPU_OP_TAGS,
    GPU_POOL,
    matching_ref,
    ref_output,
)
from manga_distill_assets.assets.intent_classifier.config import TeacherRefinementConfig
from manga_distill_assets.assets.intent_classifier.students import distil_and_store
from manga_distill_assets.resources.model_store import ModelStore
from manga_distill_assets.resources.workspace import TrainingWorkspace


@dg.asset(
    group_name="intent_classifier",
    code_version="1",
    kinds={"pytorch"},
    automation_condition=on_input_content_change(),
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
)
def teacher_refined(
    context: dg.AssetExecutionContext,
    config: TeacherRefinementConfig,
    teacher_model: dict,
    teacher_soft_labels: pd.DataFrame,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
) -> dg.Output[dict]:
    """The teacher every later step learns from: `teacher_model` distilled into itself, (1-α)·CE + α·T²·KL on
    its own logits of the kept transfer rows. The supervised teacher's validation accuracy is in the metadata
    beside the refined one's, and eval_report shows both on the test split."""
    supervised = matching_ref(teacher_model, labeled_intents, "teacher_refined")
    before = {f"supervised_{key}": float(value) for key, value in supervised.metrics.items()}
    if not config.enabled:
        context.log.info("teacher_refined: disabled, the supervised teacher is passed on")
        return ref_output(supervised, {"refined": False, **before})
    refined = distil_and_store(
        context,
        "teacher_refined",
        config,
        teacher_model,
        teacher_soft_labels,
        labeled_intents,
        model_store,
        training_workspace,
    )
    supervised_accuracy = before.get("supervised_validation_accuracy", math.nan)
    refined_accuracy = refined.metadata["validation_accuracy"].value
    context.log.info(
        f"teacher_refined: validation accuracy {supervised_accuracy:.4f} -> {refined_accuracy:.4f}"
    )
    return dg.Output(
        refined.value,
        data_version=refined.data_version,
        metadata={"refined": True, **refined.metadata, **before},
    )
