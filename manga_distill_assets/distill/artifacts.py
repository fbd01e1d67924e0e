"""Model folders: `save_pretrained` output (safetensors, config with label maps, tokenizer) and projections.

Folders are written beside their destination and renamed into place, so a reader sees the old folder or the
new one, never a half-written one; and they are addressed by a hash of their content.
"""

import filecmp
import logging
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from manga_distill_assets.distill.students import EAGER_ATTENTION

PROJECTIONS_FILE = "stage1_projections.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
PICKLED_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")

logger = logging.getLogger(__name__)


class ModelFolderError(OSError):
    """A model folder that is missing, incomplete or damaged, or that must not be replaced."""


def save_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: Path,
    projections: nn.Module | None = None,
) -> Path:
    """Write the model, its tokenizer and (if given) the stage-1 projections into `folder`, atomically.

    The projections are kept because resuming or auditing intermediate-layer distillation needs them, and they
    are not part of the student. An existing model folder with the same content is left as it is; one with
    different content is replaced (and the replacement logged). A folder that does not hold a model is never
    replaced.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.partial")
    staging.mkdir()
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if projections is not None:
            save_file(_plain_tensors(projections.state_dict()), staging / PROJECTIONS_FILE)
        _move_into_place(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def load_model(folder: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The classifier (eager attention, eval mode) and tokenizer saved in `folder`; safetensors only."""
    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file():
        raise ModelFolderError(
            f"{folder} holds no {CONFIG_FILE}, so it is not a saved model. "
            "Re-materialise the asset that wrote it, or point at the folder that holds the model."
        )
    if not (folder / TOKENIZER_CONFIG_FILE).is_file():
        raise ModelFolderError(
            f"{folder} holds no {TOKENIZER_CONFIG_FILE}, so its tokenizer is missing. "
            "Re-materialise the asset that wrote it."
        )
    weights = sorted(path for path in folder.glob("*.safetensors") if path.name != PROJECTIONS_FILE)
    if not weights:
        raise ModelFolderError(_no_safetensors_message(folder))
    for path in weights:
        _check_safetensors(path)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, use_safetensors=True, attn_implementation=EAGER_ATTENTION
        )
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, SafetensorError) as error:
        raise ModelFolderError(
            f"Could not load the model saved in {folder}: {error}. Re-materialise the asset that wrote it."
        ) from error
    _check_tokenizer_fits(model, tokenizer, folder)
    return model.eval(), tokenizer


def load_projections(folder: Path) -> dict[str, torch.Tensor]:
    """The stage-1 projection weights saved beside a model, or an empty dict when it has none."""
    path = Path(folder) / PROJECTIONS_FILE
    if not path.is_file():
        return {}
    _check_safetensors(path)
    return load_file(path)


def _same_files(first: Path, second: Path) -> bool:
    """Byte-for-byte equality: re-saving identical weights must not touch the stored copy."""

    def listing(folder: Path) -> list[str]:
        return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())

    names = listing(first)
    return names == listing(second) and all(
        filecmp.cmp(first / name, second / name, shallow=False) for name in names
    )


def label_map(model: PreTrainedModel) -> dict[int, str]:
    """The model's class ids and label names, in id order."""
    return {int(index): str(label) for index, label in sorted(model.config.id2label.items())}


def check_label_map(model: PreTrainedModel, expected_labels: Sequence[str], source: str) -> None:
    """Raise a ValueError naming `source` unless the model has exactly `expected_labels`, in order."""
    actual = label_map(model)
    if list(actual.values()) == list(expected_labels) and list(actual) == list(range(len(actual))):
        return
    model_id = {label: index for index, label in actual.items()}
    problems = []
    if missing := [label for label in expected_labels if label not in model_id]:
        problems.append(f"missing {missing}")
    if extra := [label for label in actual.values() if label not in expected_labels]:
        problems.append(f"extra {extra}")
    misordered = [
        f"{label!r} is id {model_id[label]}, expected {index}"
        for index, label in enumerate(expected_labels)
        if label in model_id and model_id[label] != index
    ]
    if misordered:
        problems.append(f"misordered: {'; '.join(misordered)}")
    raise ValueError(
        f"The labels of {source} do not match the labelled data ({', '.join(problems)}). "
        f"{source} has {list(actual.values())}; the data has {list(expected_labels)}. "
        f"Retrain or re-register {source} on the current labelled data, or fix the labelled file, "
        "so both use the same labels in the same order."
    )


def _check_tokenizer_fits(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """A tokenizer with more ids than embedding rows fails deep inside the model on the first rare word."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ModelFolderError(
            f"The tokenizer in {folder} has {len(tokenizer)} tokens but the model has only {rows} embedding "
            "rows; they were not saved together. Re-materialise the asset that wrote it."
        )


def _plain_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu().contiguous() for name, tensor in state.items()}


def _no_safetensors_message(folder: Path) -> str:
    pickled = sorted(path.name for path in folder.iterdir() if path.suffix in PICKLED_WEIGHT_SUFFIXES)
    if not pickled:
        return f"{folder} holds no model weights (*.safetensors). Re-materialise the asset that wrote it."
    return (
        f"{folder} holds {', '.join(pickled)} but no *.safetensors weights. Pickled weights can run code "
        "when they are loaded, so they are refused. Convert them once, in an environment you trust: "
        "AutoModelForSequenceClassification.from_pretrained(folder).save_pretrained(folder) writes "
        "model.safetensors beside them."
    )


def _check_safetensors(path: Path) -> None:
    try:
        with safe_open(path, framework="pt"):
            pass
    except (SafetensorError, OSError) as error:
        raise ModelFolderError(
            f"{path} is truncated or corrupt ({error}). Re-materialise the asset that wrote {path.parent}."
        ) from error


def _move_into_place(staging: Path, folder: Path) -> None:
    if folder.is_file() or (
        folder.is_dir() and any(folder.iterdir()) and not (folder / CONFIG_FILE).is_file()
    ):
        raise ModelFolderError(
            f"{folder} already exists and does not hold a saved model, so it was left untouched. "
            "Save the model to another folder, or move that one away."
        )
    if not folder.exists() or not any(folder.iterdir()):
        staging.replace(folder)
        return
    if _same_files(folder, staging):
        return
    replaced = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.replaced")
    folder.rename(replaced)
    try:
        staging.rename(folder)
    except OSError:
        replaced.rename(folder)
        raise
    shutil.rmtree(replaced, ignore_errors=True)
    logger.warning("Replaced the model in %s with new content.", folder)
