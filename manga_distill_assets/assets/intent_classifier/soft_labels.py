"""Teacher logits for every transfer text, computed once per (teacher, text): the supervised teacher's, which
the teacher is refined on, and the refined teacher's, whose mean with the supervised teacher's the student
learns from."""

import dagster as dg
import numpy as np
import pandas as pd
import torch

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.intent_classifier.common import label_ids, label_names, matching_ref, split
from manga_distill_assets.assets.intent_classifier.config import (
    RefinedSoftLabelConfig,
    ScoringConfig,
    SoftLabelConfig,
)
from manga_distill_assets.data.fingerprint import frame_fingerprint
from manga_distill_assets.distill.artifacts import load_model
from manga_distill_assets.distill.evaluation import predict_logits
from manga_distill_assets.distill.losses import IGNORE_INDEX, soften
from manga_distill_assets.resources.logit_cache import LogitCache
from manga_distill_assets.resources.model_store import ModelRef, ModelStore

ORIGINS = ("labeled", "paraphrase", "unlabeled")
SOFT_LABEL_COLUMNS = ["text", "origin", "label", "source_text", "keep", "logits"]


@dg.asset(
    group_name="intent_classifier",
    code_version="1",
    kinds={"pytorch", "parquet"},
    ins={"unlabeled_queries": dg.AssetIn(partition_mapping=dg.LastPartitionMapping())},
    automation_condition=on_input_content_change(),
)
def teacher_soft_labels(
    config: SoftLabelConfig,
    teacher_model: dict,
    labeled_intents: pd.DataFrame,
    claude_paraphrases: pd.DataFrame,
    unlabeled_queries: pd.DataFrame,
    model_store: ModelStore,
    logit_cache: LogitCache,
) -> dg.Output[pd.DataFrame]:
    """The supervised teacher's logits for labelled train texts, paraphrases (with a keep flag) and unlabeled
    queries: the transfer set, which `teacher_refined` learns from.

    Logits are cached by (teacher sha256, text): a nightly refresh runs the teacher only on texts it has
    never scored. A paraphrase is kept when the teacher agrees with its source label confidently enough.
    """
    ref = matching_ref(teacher_model, labeled_intents, "teacher_soft_labels")
    names = label_names(labeled_intents)
    rows = _transfer_rows(labeled_intents, claude_paraphrases, unlabeled_queries, names, config.max_unlabeled)
    return _scored(rows, ref, config, model_store, logit_cache)


@dg.asset(
    group_name="intent_classifier",
    code_version="2",
    kinds={"pytorch", "parquet"},
    automation_condition=on_input_content_change(),
)
def refined_soft_labels(
    config: RefinedSoftLabelConfig,
    teacher_refined: dict,
    teacher_soft_labels: pd.DataFrame,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    logit_cache: LogitCache,
) -> dg.Output[pd.DataFrame]:
    """What the student learns from in stage 2: for the same transfer rows, the mean of the refined and the
    supervised teacher's logits (`teachers: refined`, the refined teacher's alone), the paraphrases judged
    again by the refined teacher. The rows come from `teacher_soft_labels`, not from the query log, so a
    new log day reaches this asset once, after the teacher was refined on it."""
    ref = matching_ref(teacher_refined, labeled_intents, "refined_soft_labels")
    rows = teacher_soft_labels[["text", "origin", "label", "source_text"]].copy()
    supervised = np.stack(teacher_soft_labels["logits"]).astype(np.float32)
    averaged_with = None if config.teachers == "refined" else supervised
    return _scored(rows, ref, config, model_store, logit_cache, averaged_with=averaged_with)


def _scored(
    frame: pd.DataFrame,
    ref: ModelRef,
    config: ScoringConfig,
    store: ModelStore,
    logit_cache: LogitCache,
    averaged_with: np.ndarray | None = None,
) -> dg.Output[pd.DataFrame]:
    """`frame`'s rows with the teacher's logits (scoring only texts it never scored), or their mean with
    `averaged_with` (another teacher's logits for the same rows), and keep flags by the teacher's own."""
    texts = frame["text"].drop_duplicates().tolist()
    cached = logit_cache.get_many(ref.sha256, texts)
    missing = [text for text in texts if text not in cached]
    if missing:
        model, tokenizer = load_model(store.get(ref))
        scored = predict_logits(model, tokenizer, missing, batch_size=config.batch_size)
        fresh = dict(zip(missing, scored, strict=True))
        logit_cache.put_many(ref.sha256, fresh)
        cached.update(fresh)
    logits = np.stack([cached[text] for text in frame["text"]]).astype(np.float32)
    frame["keep"] = _keep(frame, logits, config.keep_threshold)
    version = frame_fingerprint(frame) + ref.sha256[:16]
    if averaged_with is not None:
        # The other teacher needs no mark of its own in the version: this one was trained from it.
        logits = (logits + averaged_with) / 2
        version += "-mean"
    frame["logits"] = list(logits)
    frame = frame[SOFT_LABEL_COLUMNS]
    paraphrase_rows = frame["origin"] == "paraphrase"
    probs = soften(torch.from_numpy(logits), config.entropy_temperature).numpy()
    entropy = float(-(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1).mean())
    return dg.Output(
        frame,
        data_version=dg.DataVersion(version),
        metadata={
            "rows": len(frame),
            "scored": len(missing),
            "cached": len(texts) - len(missing),
            **{f"rows_{origin}": int((frame["origin"] == origin).sum()) for origin in ORIGINS},
            "paraphrase_keep_rate": float(frame.loc[paraphrase_rows, "keep"].mean())
            if paraphrase_rows.any()
            else 0.0,
            f"mean_teacher_entropy_T{config.entropy_temperature:g}_nats": entropy,
            "teacher_sha256": ref.sha256,
            "teachers_averaged": 1 if averaged_with is None else 2,
        },
    )


def _transfer_rows(
    labeled: pd.DataFrame,
    paraphrases: pd.DataFrame,
    unlabeled: pd.DataFrame,
    names: list[str],
    max_unlabeled: int,
) -> pd.DataFrame:
    train = split(labeled, "train")
    queries = unlabeled.sort_values("frequency", ascending=False, kind="stable")
    if max_unlabeled:
        queries = queries.head(max_unlabeled)
    parts = [
        pd.DataFrame(
            {
                "text": train["text"],
                "origin": "labeled",
                "label": label_ids(train["label"], names),
                "source_text": train["text"],
            }
        ),
        pd.DataFrame(
            {
                "text": paraphrases["text"],
                "origin": "paraphrase",
                "label": label_ids(paraphrases["label"], names),
                "source_text": paraphrases["source_text"],
            }
        ),
        pd.DataFrame(
            {"text": queries["text"], "origin": "unlabeled", "label": IGNORE_INDEX, "source_text": ""}
        ),
    ]
    return pd.concat(parts, ignore_index=True).astype({"label": "int64"})


def _keep(frame: pd.DataFrame, logits: np.ndarray, threshold: float) -> np.ndarray:
    """Labelled and unlabeled rows are always kept; a paraphrase only when the teacher backs its label."""
    probs = soften(torch.from_numpy(logits), 1.0).numpy()
    labels = frame["label"].to_numpy()
    agrees = (probs.argmax(axis=1) == labels) & (
        probs[np.arange(len(labels)), np.maximum(labels, 0)] >= threshold
    )
    return np.where(frame["origin"].to_numpy() == "paraphrase", agrees, True)
