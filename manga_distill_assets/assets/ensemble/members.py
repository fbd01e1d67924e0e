"""The ensemble's members: the intent teacher, further fine-tuned transformers, and a classical model, each
stored in the model store with its validation accuracy and its calibration temperature."""

import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from transformers import AutoTokenizer

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.ensemble.config import (
    ClassicalMemberConfig,
    EnsembleMembersConfig,
    TransformerMemberConfig,
)
from manga_distill_assets.assets.ensemble.scoring import (
    CHAR_TFIDF,
    TRANSFORMER,
    cached_logits,
    members_version,
)
from manga_distill_assets.assets.intent_classifier.common import (
    GPU_OP_TAGS,
    GPU_POOL,
    label_ids,
    label_names,
    log_progress,
    matching_ref,
    split,
)
from manga_distill_assets.assets.intent_classifier.teacher import default_teacher_base
from manga_distill_assets.assets.markdown import markdown_table
from manga_distill_assets.data.fingerprint import frame_fingerprint, lines_fingerprint
from manga_distill_assets.distill.artifacts import check_label_map, load_model, save_model
from manga_distill_assets.distill.calibration import fit_temperature, negative_log_likelihood
from manga_distill_assets.distill.char_tfidf import CharTfidfClassifier, fit_char_tfidf
from manga_distill_assets.distill.students import from_pretrained
from manga_distill_assets.distill.training import LabeledTexts, train_teacher
from manga_distill_assets.resources.logit_cache import LogitCache
from manga_distill_assets.resources.model_store import ModelRef, ModelStore
from manga_distill_assets.resources.workspace import TrainingWorkspace

MEMBER_KIND = "ensemble_member"
CLASSICAL_KIND = "ensemble_char_tfidf"


@dg.asset(
    group_name="ensemble",
    code_version="2",
    kinds={"pytorch", "scikitlearn"},
    automation_condition=on_input_content_change(),
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
)
def ensemble_members(
    context: dg.AssetExecutionContext,
    config: EnsembleMembersConfig,
    teacher_model: dict,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    logit_cache: LogitCache,
    training_workspace: TrainingWorkspace,
) -> dg.Output[list]:
    """One entry per member: name, kind, model reference, share, validation accuracy and the temperature
    that calibrates it on validation (the ensemble averages calibrated probabilities)."""
    names = label_names(labeled_intents)
    members: list[dict] = []
    if config.include_teacher:
        ref = matching_ref(teacher_model, labeled_intents, "ensemble_members")
        members.append(_entry("teacher", TRANSFORMER, ref, config.teacher_weight))
    for member in config.transformers:
        ref = _transformer_member(context, member, labeled_intents, names, model_store, training_workspace)
        members.append(_entry(member.name, TRANSFORMER, ref, member.weight))
    if config.classical.enabled:
        ref = _classical_member(config.classical, labeled_intents, names, model_store)
        members.append(_entry(config.classical.name, CHAR_TFIDF, ref, config.classical.weight))
    _check_members(members)
    validation = split(labeled_intents, "validation")
    truth = np.asarray(label_ids(validation["label"], names))
    for entry in members:
        logits, _ = cached_logits(
            entry, validation["text"].tolist(), model_store, logit_cache, config.batch_size
        )
        entry["temperature"] = fit_temperature(logits, truth) if config.calibrate else 1.0
        entry["validation_accuracy"] = float(np.mean(logits.argmax(axis=1) == truth))
        entry["validation_nll"] = negative_log_likelihood(logits, truth, 1.0)
        entry["calibrated_validation_nll"] = negative_log_likelihood(logits, truth, entry["temperature"])
        context.log.info(
            f"member {entry['name']}: validation accuracy {entry['validation_accuracy']:.4f}, "
            f"T {entry['temperature']:.3f}, NLL {entry['validation_nll']:.4f} -> "
            f"{entry['calibrated_validation_nll']:.4f}"
        )
    table = [
        {key: entry[key] for key in ("name", "kind", "weight", "validation_accuracy", "temperature")}
        for entry in members
    ]
    return dg.Output(
        members,
        data_version=dg.DataVersion(lines_fingerprint([members_version(members)])),
        metadata={
            "members": dg.MetadataValue.md(markdown_table(table)),
            "member_count": len(members),
            **{f"{entry['name']}_validation_accuracy": entry["validation_accuracy"] for entry in members},
            **{f"{entry['name']}_temperature": entry["temperature"] for entry in members},
        },
    )


def _entry(name: str, kind: str, ref: ModelRef, weight: float) -> dict:
    return {"name": name, "kind": kind, "model": ref.to_dict(), "weight": weight}


def _check_members(members: list[dict]) -> None:
    if len(members) < 2:
        raise dg.Failure(
            description=f"The ensemble has {len(members)} member(s); an ensemble needs at least two. Enable "
            "the teacher or the classical member, or list transformer members in ensemble_members' config.",
            allow_retries=False,
        )
    names = [entry["name"] for entry in members]
    if len(set(names)) != len(names):
        raise dg.Failure(
            description=f"Ensemble member names {names} repeat; give every member its own name.",
            allow_retries=False,
        )


def _transformer_member(
    context: dg.AssetExecutionContext,
    member: TransformerMemberConfig,
    labeled: pd.DataFrame,
    names: list[str],
    store: ModelStore,
    workspace: TrainingWorkspace,
) -> ModelRef:
    """A registered checkpoint, whose label map must be the labelled set's, or a fine-tuned base model."""
    if member.registered_checkpoint:
        folder = Path(member.registered_checkpoint)
        if not folder.is_dir():
            raise dg.Failure(
                description=f"Ensemble member {member.name}: registered_checkpoint {folder} is not a folder. "
                "Point it at a save_pretrained folder (safetensors) of a fine-tuned classifier.",
                allow_retries=False,
            )
        model, tokenizer = load_model(folder)
        try:
            check_label_map(model, names, source=f"ensemble member {member.name} ({folder})")
        except ValueError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from error
        return _store_member(store, model, tokenizer, member.name, names)
    base = member.base_model or default_teacher_base()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = from_pretrained(base, dict(enumerate(names)), seed=member.training.seed)
    train = split(labeled, "train")
    if member.max_train_examples and len(train) > member.max_train_examples:
        train = train.groupby("label", group_keys=False).sample(
            frac=member.max_train_examples / len(train), random_state=member.training.seed
        )
    validation = split(labeled, "validation")
    with workspace.checkpoints(
        MEMBER_KIND, member.name, frame_fingerprint(train), member.model_dump_json()
    ) as checkpoints:
        model = train_teacher(
            model,
            tokenizer,
            LabeledTexts(train["text"].tolist(), label_ids(train["label"], names)),
            LabeledTexts(validation["text"].tolist(), label_ids(validation["label"], names)),
            member.training.training_config(checkpoints),
            progress=log_progress(context, f"member {member.name}"),
        ).model
        return _store_member(store, model, tokenizer, member.name, names)


def _store_member(store: ModelStore, model, tokenizer, name: str, names: list[str]) -> ModelRef:
    with tempfile.TemporaryDirectory() as tmp:
        saved = save_model(model, tokenizer, Path(tmp) / name)
        return store.put(saved, kind=MEMBER_KIND, label_map=dict(enumerate(names)), metrics={})


def _classical_member(
    config: ClassicalMemberConfig, labeled: pd.DataFrame, names: list[str], store: ModelStore
) -> ModelRef:
    if config.registered_checkpoint:
        classical = CharTfidfClassifier.load(Path(config.registered_checkpoint))
        if classical.labels != names:
            raise dg.Failure(
                description=f"Classical member {config.registered_checkpoint} predicts {classical.labels}, "
                f"but the labelled set has {names}. Refit it on the current labelled set.",
                allow_retries=False,
            )
    else:
        train = split(labeled, "train")
        settings = config.settings()
        vectorizer, classifier = fit_char_tfidf(
            train["text"].tolist(), label_ids(train["label"], names), names, settings
        )
        classical = CharTfidfClassifier.from_sklearn(vectorizer, classifier, names, settings)
    with tempfile.TemporaryDirectory() as tmp:
        folder = classical.save(Path(tmp) / config.name)
        return store.put(folder, kind=CLASSICAL_KIND, label_map=dict(enumerate(names)), metrics={})
