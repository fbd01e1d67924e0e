"""The distilled students: stage 1 (intermediate layers) and stage 2 (outputs)."""

import tempfile
from collections.abc import Sequence
from itertools import zip_longest
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from transformers import PreTrainedTokenizerBase

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.general.student import general_start
from manga_distill_assets.assets.intent_classifier.common import (
    GPU_OP_TAGS,
    GPU_POOL,
    label_ids,
    label_names,
    log_progress,
    loss_curve,
    matching_ref,
    ref_output,
    split,
)
from manga_distill_assets.assets.intent_classifier.config import (
    Stage1Config,
    Stage2Config,
)
from manga_distill_assets.assets.intent_classifier.soft_labels import ORIGINS
from manga_distill_assets.assets.intent_classifier.teacher import validation_scores
from manga_distill_assets.data.fingerprint import lines_fingerprint
from manga_distill_assets.distill.artifacts import load_model, save_model
from manga_distill_assets.distill.layer_match import uniform_layer_map
from manga_distill_assets.distill.losses import OutputDistillation
from manga_distill_assets.distill.students import (
    count_parameters,
    model_size_bytes,
)
from manga_distill_assets.distill.training import (
    LabeledTexts,
    TrainingConfig,
    TrainingResult,
    train_stage1,
    train_stage2,
)
from manga_distill_assets.distill.vocab import prune_vocabulary
from manga_distill_assets.resources.model_store import ModelRef, ModelStore
from manga_distill_assets.resources.workspace import TrainingWorkspace


def save_and_put(
    store: ModelStore, model, tokenizer, kind: str, id2label, metrics, projections=None
) -> ModelRef:
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model(model, tokenizer, Path(tmp) / kind, projections=projections)
        return store.put(folder, kind=kind, label_map=id2label, metrics=metrics)


def distil_stored(
    start: ModelRef,
    rows: pd.DataFrame,
    labeled: pd.DataFrame,
    store: ModelStore,
    training: TrainingConfig,
    output: OutputDistillation,
    progress,
) -> tuple[TrainingResult, PreTrainedTokenizerBase]:
    """Stage 2 (`train_stage2`) from the stored model `start` (a stage-1 student, or the supervised teacher
    being refined) on soft-label rows (text, logits, label), validated on `labeled`'s validation split;
    returns the result and the model's tokenizer."""
    model, tokenizer = load_model(store.get(start))
    validation = split(labeled, "validation")
    result = train_stage2(
        model,
        tokenizer,
        rows["text"].tolist(),
        np.stack(rows["logits"].to_numpy()).astype(np.float32),
        rows["label"].astype(int).tolist(),
        training,
        output=output,
        progress=progress,
        validation=LabeledTexts(
            validation["text"].tolist(), label_ids(validation["label"], label_names(labeled))
        ),
    )
    return result, tokenizer


def kept_rows(soft_labels: pd.DataFrame, origins: Sequence[str]) -> pd.DataFrame:
    """The stage-2 transfer set restricted to `origins`, with the teacher's paraphrase filter applied."""
    chosen = soft_labels["keep"] & soft_labels["origin"].isin(list(origins))
    return soft_labels[chosen].reset_index(drop=True)


def distil_and_store(
    context: dg.AssetExecutionContext,
    kind: str,
    config: Stage2Config,
    start: dict,
    soft_labels: pd.DataFrame,
    labeled: pd.DataFrame,
    store: ModelStore,
    workspace: TrainingWorkspace,
    *inputs: str,
) -> dg.Output[dict]:
    """Stage 2 from the stored model `start` on the kept `soft_labels` of `config.origins()`, stored as
    `kind`: student_stage2 from the stage-1 student on the refined teacher's targets, ensemble_student on the
    ensemble's, teacher_refined from the supervised teacher on its own. `inputs` are what else the training
    depends on, beside the start, the texts and the config (its checkpoints' folder). The model's validation
    accuracy and loss are measured as the teacher's and the baselines' are, so eval_report sets them side
    by side."""
    start_ref = matching_ref(start, labeled, kind)
    rows = kept_rows(soft_labels, config.origins())
    with workspace.checkpoints(
        kind, start_ref.sha256, lines_fingerprint(rows["text"]), *inputs, config.model_dump_json()
    ) as checkpoints:
        result, tokenizer = distil_stored(
            start_ref,
            rows,
            labeled,
            store,
            config.training.training_config(checkpoints),
            config.output(),
            log_progress(context, kind),
        )
        validation = split(labeled, "validation")
        metrics = result.metrics | validation_scores(
            result.model, tokenizer, validation, label_names(labeled), config.training.max_length
        )
        ref = save_and_put(store, result.model, tokenizer, kind, start_ref.label_map, metrics)
    final = result.log_history[-1] if result.log_history else {}
    return ref_output(
        ref,
        {
            **{f"rows_{origin}": int((rows["origin"] == origin).sum()) for origin in ORIGINS},
            "temperature": config.temperature,
            "alpha": config.alpha,
            "parameters": count_parameters(result.model),
            "optimizer_steps": result.optimizer_steps,
            "epochs_run": result.epochs_run,
            "stop_reason": result.stop_reason,
            "resumed_from": str(result.resumed_from) if result.resumed_from else None,
            "loss_curve": loss_curve(result.log_history),
            **{key: float(value) for key, value in metrics.items()},
            **{f"final_{key}": value for key, value in final.items() if isinstance(value, float)},
        },
    )


def transfer_texts(soft_labels: pd.DataFrame, cap: int) -> list[str]:
    """The soft-label table's texts: train texts first, then paraphrases and real queries (most frequent
    first, as the table holds them) in turn, so a cap keeps both kinds of transfer text."""
    by_origin = {
        origin: soft_labels.loc[soft_labels["origin"] == origin, "text"].tolist() for origin in ORIGINS
    }
    alternating = [
        text for pair in zip_longest(by_origin["paraphrase"], by_origin["unlabeled"]) for text in pair if text
    ]
    texts = list(dict.fromkeys([*by_origin["labeled"], *alternating]))
    return texts[:cap] if cap else texts


def vocabulary_texts(labeled: pd.DataFrame, extra: list[str]) -> list[str]:
    """Tokens worth keeping: everything but the test split, which stays unseen."""
    return [*labeled.loc[labeled["split"] != "test", "text"], *extra]


@dg.asset(
    group_name="intent_classifier",
    code_version="1",
    kinds={"pytorch"},
    ins={"general_student": dg.AssetIn(dagster_type=dg.Nothing)},
    automation_condition=on_input_content_change(optional=["general_student"]),
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
)
def student_stage1(
    context: dg.AssetExecutionContext,
    config: Stage1Config,
    teacher_refined: dict,
    teacher_soft_labels: pd.DataFrame,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
) -> dg.Output[dict]:
    """TinyBERT-style intermediate-layer distillation from the refined teacher on the transfer texts
    (embeddings, hidden states, attentions); the learned projections are saved beside the student. The texts
    are `teacher_soft_labels`' (the log reaches this asset with the teacher it refines, not one run before
    it). Under `init: general` the student starts from the latest general_student (a dependency only that
    init reads)."""
    teacher_ref = matching_ref(teacher_refined, labeled_intents, "student_stage1")
    teacher_folder = model_store.get(teacher_ref)
    config.student.check_teacher_depth(teacher_folder, "student")
    teacher, tokenizer = load_model(teacher_folder)
    id2label = {int(k): v for k, v in teacher_ref.label_map.items()}
    texts = transfer_texts(teacher_soft_labels, config.max_transfer_texts)
    general, general_sha = general_start(
        context, model_store, config.student.init, teacher.config.vocab_size, "student_stage1"
    )
    student = config.student.build(teacher, id2label, config.training.seed, general)
    matches = config.matches() or uniform_layer_map(
        student.config.num_hidden_layers, teacher.config.num_hidden_layers
    )
    with training_workspace.checkpoints(
        "student_stage1", teacher_ref.sha256, lines_fingerprint(texts), config.model_dump_json(), general_sha
    ) as checkpoints:
        result = train_stage1(
            student,
            teacher,
            tokenizer,
            texts,
            matches,
            config.training.training_config(checkpoints),
            beta=config.beta,
            gamma=config.gamma,
            progress=log_progress(context, "stage1"),
        )
        student, bytes_saved = result.model, 0
        if config.prune_vocabulary:
            pruning = prune_vocabulary(student, tokenizer, vocabulary_texts(labeled_intents, texts))
            student, tokenizer, bytes_saved = pruning.model, pruning.tokenizer, pruning.bytes_saved
        ref = save_and_put(
            model_store,
            student,
            tokenizer,
            "student_stage1",
            id2label,
            {"final_loss": result.final_loss},
            projections=result.projections,
        )
    final = result.log_history[-1] if result.log_history else {}
    return ref_output(
        ref,
        {
            "transfer_texts": len(texts),
            "layer_matches": ", ".join(f"{m.kind}:{m.student_layer}->{m.teacher_layer}" for m in matches),
            "parameters": count_parameters(student),
            "size_bytes": model_size_bytes(student),
            "vocabulary_bytes_saved": bytes_saved,
            "loss_curve": loss_curve(result.log_history),
            **{f"final_{key}": value for key, value in final.items() if isinstance(value, float)},
        },
    )


@dg.asset(
    group_name="intent_classifier",
    code_version="1",
    kinds={"pytorch"},
    automation_condition=on_input_content_change(),
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
)
def student_stage2(
    context: dg.AssetExecutionContext,
    config: Stage2Config,
    student_stage1: dict,
    refined_soft_labels: pd.DataFrame,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
) -> dg.Output[dict]:
    """Output distillation from the refined teacher's cached logits: (1-α)·CE + α·T²·KL. Labelled rows give
    hard and soft targets, kept paraphrases their source label and soft targets, unlabeled queries soft
    targets only."""
    return distil_and_store(
        context,
        "student_stage2",
        config,
        student_stage1,
        refined_soft_labels,
        labeled_intents,
        model_store,
        training_workspace,
    )
