"""Predictions and the figures the eval report compares: accuracy, macro-F1, per-class scores, confusions."""

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn import metrics
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.truncation import SCORING_MAX_LENGTH


def predict_logits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int = SCORING_MAX_LENGTH,
) -> np.ndarray:
    """Logits (float32, one row per text, in the order given).

    All texts are tokenised in one call (the fast tokenizer's batch path), then run in order of token count,
    so each batch pads only to its own longest text; the model's train/eval mode is restored afterwards, so
    this can run in the middle of training.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    logits = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    if not texts:
        return logits
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    keys = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded]
    order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                inputs = _padded_batch(tokenizer, encoded, keys, batch, device)
                logits[batch] = model(**inputs).logits.float().cpu().numpy()
    finally:
        model.train(was_training)
    return logits


def _padded_batch(
    tokenizer: PreTrainedTokenizerBase, encoded: Any, keys: list[str], rows: np.ndarray, device: torch.device
) -> dict[str, torch.Tensor]:
    """Rows of an unpadded encoding padded to their longest, on the tokenizer's padding side.

    Filling arrays directly costs a fraction of `tokenizer.pad`, which on a fast tokenizer took longer than
    tokenising the texts again.
    """
    width = max(len(encoded["input_ids"][row]) for row in rows)
    fill = {"input_ids": tokenizer.pad_token_id or 0, "token_type_ids": tokenizer.pad_token_type_id or 0}
    padded = {key: np.full((len(rows), width), fill.get(key, 0), dtype=np.int64) for key in keys}
    for position, row in enumerate(rows):
        length = len(encoded["input_ids"][row])
        columns = slice(width - length, width) if tokenizer.padding_side == "left" else slice(0, length)
        for key in keys:
            padded[key][position, columns] = encoded[key][row]
    return {key: torch.from_numpy(values).to(device) for key, values in padded.items()}


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str], top_pairs: int = 5
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix, most confused pairs.

    A score whose denominator is zero is 0.0 (precision of a class never predicted, recall of a class with no
    support), and F1 is 0.0 when precision and recall both are. Macro-F1 averages the classes that occur in
    `y_true` or `y_pred`: a class absent from both carries no evidence either way (scikit-learn's default).
    Every value is a plain int or float, ready for JSON and Dagster metadata. The scores are scikit-learn's
    (`zero_division=0`); the ids are checked first, because scikit-learn drops an id outside `labels` from
    the confusion matrix without a word.
    """
    true, pred = _checked_ids(y_true, y_pred, len(labels))
    ids = list(range(len(labels)))
    confusion = metrics.confusion_matrix(true, pred, labels=ids)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        true, pred, labels=ids, zero_division=0
    )
    return {
        "accuracy": float(metrics.accuracy_score(true, pred)),
        # Without `labels`, scikit-learn averages the classes present in y_true or y_pred.
        "macro_f1": float(metrics.f1_score(true, pred, average="macro", zero_division=0)),
        "per_class": {
            label: {
                "precision": float(precision[index]),
                "recall": float(recall[index]),
                "f1": float(f1[index]),
                "support": int(support[index]),
            }
            for index, label in enumerate(labels)
        },
        "confusion": confusion.tolist(),
        "confusable_pairs": _confusable_pairs(confusion, labels, top_pairs),
    }


def confusion_matrix_png(
    confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str
) -> Path:
    """A heat map of the confusion matrix (rows true, columns predicted) coloured by row share, with counts.

    Colouring by share of each true class keeps rare intents readable beside frequent ones. Drawn on an Agg
    canvas without pyplot, so it touches no global matplotlib state and needs no display.
    """
    matrix = np.asarray(confusion, dtype=np.int64)
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(
            f"The confusion matrix is {matrix.shape} but there are {len(labels)} labels; pass one row "
            "and one column per label."
        )
    counts = matrix.astype(np.float64)
    totals = np.broadcast_to(counts.sum(axis=1, keepdims=True), counts.shape)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals != 0)  # 0 for an empty row
    side = 2.0 + 0.6 * len(labels)
    figure = Figure(figsize=(side + 1.5, side), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of true class")
    for row, column in itertools.product(range(len(labels)), repeat=2):
        colour = "white" if share[row, column] > 0.5 else "black"
        axes.text(column, row, str(matrix[row, column]), ha="center", va="center", color=colour, fontsize=8)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path


def _checked_ids(
    y_true: Sequence[int], y_pred: Sequence[int], num_labels: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ids as arrays, refused with the reason when scikit-learn would drop or misplace them silently."""
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape or true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be equally long lists; got {len(y_true)} and {len(y_pred)}."
        )
    if true.size == 0:
        raise ValueError("Cannot score an empty set of predictions; the test split holds no rows.")
    for name, values in (("y_true", true), ("y_pred", pred)):
        outside = sorted(set(values[(values < 0) | (values >= num_labels)].tolist()))
        if outside:
            raise ValueError(
                f"{name} holds class ids {outside}, but the {num_labels} labels have ids 0 to "
                f"{num_labels - 1}; check that the model and the data use the same label map."
            )
    return true, pred


def _confusable_pairs(confusion: np.ndarray, labels: Sequence[str], top_pairs: int) -> list[dict[str, Any]]:
    """Unordered label pairs by how often either is mistaken for the other; ties keep label order."""
    pairs = [
        (int(confusion[a, b] + confusion[b, a]), a, b)
        for a, b in itertools.combinations(range(len(labels)), 2)
        if confusion[a, b] + confusion[b, a] > 0
    ]
    pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
    return [{"a": labels[a], "b": labels[b], "count": count} for count, a, b in pairs[:top_pairs]]
