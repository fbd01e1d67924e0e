"""Ensemble members as the assets see them: a small JSON entry per member, loaded into something that scores
texts, with every member's logits cached by (member sha256, text) like the teacher's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.artifacts import load_model
from manga_distill_assets.distill.char_tfidf import CharTfidfClassifier
from manga_distill_assets.distill.ensemble import ensemble_probabilities
from manga_distill_assets.distill.evaluation import predict_logits
from manga_distill_assets.distill.truncation import SCORING_MAX_LENGTH
from manga_distill_assets.resources.logit_cache import LogitCache
from manga_distill_assets.resources.model_store import ModelRef, ModelStore

TRANSFORMER = "transformer"
CHAR_TFIDF = "char_tfidf"


@dataclass(frozen=True)
class LoadedMember:
    """`logits(texts)` for batches; `predict_one(text)` is what serving one request costs."""

    name: str
    logits: Callable[[Sequence[str]], np.ndarray]
    predict_one: Callable[[str], object]


def member_ref(entry: dict) -> ModelRef:
    return ModelRef.from_dict(entry["model"])


def load_member(entry: dict, store: ModelStore, batch_size: int = 128) -> LoadedMember:
    folder = store.get(member_ref(entry))
    if entry["kind"] == CHAR_TFIDF:
        classical = CharTfidfClassifier.load(folder)
        return LoadedMember(entry["name"], classical.logits, lambda text: classical.logits([text]))
    model, tokenizer = load_model(folder)
    return transformer_member(entry["name"], model, tokenizer, batch_size)


def transformer_member(
    name: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 128
) -> LoadedMember:
    """A sequence classifier (a member or a student) behind the same two calls as every member."""
    model.eval()

    def predict_one(text: str) -> object:
        encoded = tokenizer([text], truncation=True, max_length=SCORING_MAX_LENGTH, return_tensors="pt")
        with torch.inference_mode():
            return model(**encoded).logits

    def logits(texts: Sequence[str]) -> np.ndarray:
        return predict_logits(model, tokenizer, texts, batch_size=batch_size, max_length=SCORING_MAX_LENGTH)

    return LoadedMember(name, logits, predict_one)


def cached_logits(
    entry: dict, texts: Sequence[str], store: ModelStore, cache: LogitCache, batch_size: int = 128
) -> tuple[np.ndarray, int]:
    """The member's logits for `texts` in order, and how many texts it had never scored before."""
    key = member_ref(entry).sha256
    unique = list(dict.fromkeys(texts))
    found = cache.get_many(key, unique)
    missing = [text for text in unique if text not in found]
    if missing:
        fresh = dict(zip(missing, load_member(entry, store, batch_size).logits(missing), strict=True))
        cache.put_many(key, fresh)
        found.update(fresh)
    return np.stack([found[text] for text in texts]).astype(np.float32), len(missing)


def mixture(members: Sequence[dict], member_logits: Sequence[np.ndarray]) -> np.ndarray:
    """The ensemble's probabilities from each member's logits, with the members' fitted temperatures."""
    return ensemble_probabilities(
        member_logits,
        [entry["temperature"] for entry in members],
        [entry["weight"] for entry in members],
    )


def members_version(members: Sequence[dict]) -> str:
    """What the ensemble is: each member's weights (sha256), temperature and share."""
    return "|".join(
        f"{entry['name']}:{member_ref(entry).sha256}:{entry['temperature']:.6f}:{entry['weight']:g}"
        for entry in members
    )
