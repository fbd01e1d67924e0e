"""What every training loop shares: the configuration, its mapping onto `TrainingArguments`, tokenisation,
the Trainer subclass that logs each loss term, progress reporting, resuming, and the result."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import numpy as np
import torch
from torch import Tensor, nn
from transformers import (
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import TrainOutput

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Progress = Callable[[dict[str, float]], None]
"""Receives every log event as a flat dict: `step`, `epoch`, and then either the training keys (`loss`, one
key per loss term such as `hard`/`soft` or `embeddings`/`hidden`/`attention`, `lr`, `grad_norm`,
`samples_per_second`), the validation keys (`eval_loss`, `eval_accuracy`, ...) or the end-of-run summary
(`train_runtime`, `train_samples_per_second`, `train_loss`, ...)."""

MODEL_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
CHECKPOINTS_KEPT = 2
"""The latest checkpoint (to resume from) and the best one (to load at the end); older ones only cost disk."""

_CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")
_ARGUMENT_FIELDS = {argument.name for argument in dataclasses.fields(TrainingArguments)}
TrainerT = TypeVar("TrainerT", bound=Trainer)


@dataclass(frozen=True)
class LabeledTexts:
    """Texts with one class id each, in the order of the model's `id2label`."""

    texts: list[str]
    labels: list[int]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(
                f"LabeledTexts has {len(self.texts)} texts but {len(self.labels)} labels; "
                "give exactly one label per text."
            )


@dataclass
class TrainingConfig:
    """Settings shared by all loops.

    `checkpoint_every` counts optimiser steps; 0 saves only at the end. The supervised loops (teacher,
    baseline) also save after every epoch, which picking the best epoch needs, and only they use
    `early_stopping_patience` (0 turns early stopping off). With `resume`, a run continues from the latest
    `checkpoint-*` in `output_dir`, so give every distinct run (other data, other settings) its own folder.
    `log_every` is how many optimiser steps pass between log events.
    """

    output_dir: Path
    epochs: float = 3
    learning_rate: float = 5e-5
    batch_size: int = 32
    gradient_accumulation: int = 1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    seed: int = 42
    max_length: int = 64
    checkpoint_every: int = 500
    precision: Precision = "auto"
    early_stopping_patience: int = 2
    resume: bool = True
    num_workers: int = 0
    log_every: int = 10

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        if self.precision not in get_args(Precision):
            choices = ", ".join(get_args(Precision))
            raise ValueError(f"TrainingConfig.precision is {self.precision!r}; choose one of {choices}.")
        positive = (
            "epochs",
            "learning_rate",
            "batch_size",
            "gradient_accumulation",
            "max_length",
            "log_every",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainingConfig.{name} must be positive, got {getattr(self, name)}.")
        for name in ("checkpoint_every", "early_stopping_patience", "num_workers", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainingConfig.{name} must not be negative, got {getattr(self, name)}.")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"TrainingConfig.warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")


@dataclass
class TrainingResult:
    """`model` is the model passed in, trained in place; `checkpoint_dir` holds the `checkpoint-*` folders,
    and `resumed_from` names the checkpoint this run continued, if any."""

    model: PreTrainedModel
    log_history: list[dict[str, float]]
    metrics: dict[str, float]
    checkpoint_dir: Path
    optimizer_steps: int
    resumed_from: Path | None

    @property
    def final_loss(self) -> float:
        """The last logged training loss; a run too short to log one reports its mean loss instead."""
        logged = [entry["loss"] for entry in self.log_history if "loss" in entry]
        if logged:
            return float(logged[-1])
        summary = [entry["train_loss"] for entry in self.log_history if "train_loss" in entry]
        return float(summary[-1]) if summary else float("nan")


def resolve_precision(precision: Precision) -> Literal["fp32", "bf16", "fp16"]:
    """`auto` takes the fastest numerically safe choice: bf16 where the GPU has it, else fp16 on a GPU, else
    fp32, since CPU autocast is rarely faster for models this small."""
    if precision != "auto":
        return precision
    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def training_arguments(
    config: TrainingConfig,
    *,
    evaluate: bool = False,
    keep_best: bool = False,
    quiet: bool = False,
    **overrides: Any,
) -> TrainingArguments:
    """The one place where our settings become Trainer settings.

    `evaluate` runs validation after each epoch; `keep_best` also saves at each epoch end so that the best
    epoch (by validation accuracy) can be loaded at the end, which the Trainer allows only when saves follow
    evaluations. Seeding alone makes CPU runs repeatable; `full_determinism` would switch the whole process to
    deterministic kernels (and fail on some GPU ops), so it is left off.
    """
    precision = resolve_precision(config.precision)
    if precision == "fp16" and not torch.cuda.is_available():
        raise ValueError(
            "TrainingConfig.precision='fp16' needs a CUDA GPU; use 'auto', 'fp32' or 'bf16' on CPU."
        )
    arguments: dict[str, Any] = {
        "output_dir": str(config.output_dir),
        "num_train_epochs": config.epochs,
        "learning_rate": config.learning_rate,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation,
        "weight_decay": config.weight_decay,
        "seed": config.seed,
        "full_determinism": False,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": precision == "bf16" and not torch.cuda.is_available(),
        "dataloader_num_workers": config.num_workers,
        "dataloader_pin_memory": torch.cuda.is_available(),
        "logging_strategy": "steps",
        "logging_steps": config.log_every,
        "eval_strategy": "epoch" if evaluate else "no",
        "save_strategy": "epoch" if keep_best else "steps",
        "save_steps": config.checkpoint_every,
        "save_total_limit": CHECKPOINTS_KEPT,
        "load_best_model_at_end": keep_best,
        "metric_for_best_model": "accuracy" if keep_best else None,
        "greater_is_better": True if keep_best else None,
        "restore_callback_states_from_checkpoint": True,
        "remove_unused_columns": False,  # `loss_terms` picks the model inputs; labels and logits reach it
        "report_to": "none",
        "disable_tqdm": quiet,
        **_version_dependent_arguments(config),
    }
    return TrainingArguments(**{**arguments, **overrides})


def _version_dependent_arguments(config: TrainingConfig) -> dict[str, Any]:
    """Arguments that transformers renamed or retired across the supported 5.x releases."""
    arguments: dict[str, Any] = {}
    if "train_sampling_strategy" in _ARGUMENT_FIELDS:
        arguments["train_sampling_strategy"] = "group_by_length"
    else:
        arguments["group_by_length"] = True
    if "warmup_ratio" in _ARGUMENT_FIELDS:
        arguments["warmup_ratio"] = config.warmup_ratio
    else:
        arguments["warmup_steps"] = config.warmup_ratio
    if "save_safetensors" in _ARGUMENT_FIELDS:
        arguments["save_safetensors"] = True
    return arguments


def encode(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, **columns: Sequence[Any]
) -> list[dict[str, Any]]:
    """Tokenise every text once, unpadded, and attach the extra per-row columns (labels, teacher logits).

    Rows stay unpadded so that `DataCollatorWithPadding` pads each batch only to its own longest row.
    """
    if not texts:
        raise ValueError("There are no texts to train on; check that the input table is not empty.")
    for name, values in columns.items():
        if len(values) != len(texts):
            raise ValueError(
                f"There are {len(texts)} texts but {len(values)} values of {name!r}; give one per text."
            )
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    keys = [key for key in MODEL_INPUT_KEYS if key in encoded]
    return [
        {
            **{key: encoded[key][row] for key in keys},
            **{name: values[row] for name, values in columns.items()},
        }
        for row in range(len(texts))
    ]


def check_labels(labels: Sequence[int], num_labels: int, where: str, allow_unlabeled: bool = False) -> None:
    """Fail before training, naming the first row whose label the model cannot predict."""
    for row, label in enumerate(labels):
        if allow_unlabeled and label == -100:
            continue
        if not 0 <= label < num_labels:
            allowed = f"0..{num_labels - 1}" + (" or -100 for an unlabeled row" if allow_unlabeled else "")
            raise ValueError(
                f"{where}: row {row} has label {label}, but the model has {num_labels} labels ({allowed}). "
                "Check that the data's label map matches the model's id2label."
            )


def model_inputs(batch: dict[str, Any]) -> dict[str, Tensor]:
    """Only what a transformer's forward takes, so that labels and teacher logits never reach the model."""
    return {key: batch[key] for key in MODEL_INPUT_KEYS if key in batch}


def accuracy(prediction: EvalPrediction) -> dict[str, float]:
    logits = (
        prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    )
    return {"accuracy": float((np.argmax(logits, axis=-1) == prediction.label_ids).mean())}


class EpochSeededLengthSampler(LengthGroupedSampler):
    """Length-grouped order drawn from `seed + epoch` instead of the global RNG; it replaces the Trainer's own
    length-grouped sampler for training.

    The order then depends on nothing that happened earlier in training, so a run resumed in the middle of an
    epoch sees the same batches as an uninterrupted one, and every DDP process agrees on the order.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int) -> None:
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


@dataclass
class _LogWindow:
    """Loss terms and samples seen since the last log event, kept as tensors to avoid a sync per step."""

    sums: dict[str, Tensor] = field(default_factory=dict)
    batches: int = 0
    samples: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, terms: dict[str, Tensor], samples: int) -> None:
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0) + value.detach().float()
        self.batches += 1
        self.samples += samples

    def drain(self, world_size: int) -> dict[str, float]:
        elapsed = time.perf_counter() - self.started
        logs = {name: (total / max(self.batches, 1)).item() for name, total in self.sums.items()}
        logs["samples_per_second"] = round(self.samples * world_size / elapsed, 2) if elapsed > 0 else 0.0
        self.sums, self.batches, self.samples, self.started = {}, 0, 0, time.perf_counter()
        return logs


class LossTermTrainer(Trainer):
    """A Trainer whose loss is the sum of named terms, each logged beside the total.

    Subclasses override `loss_terms`. The default, a sequence classifier's cross-entropy on `labels`, is also
    what every subclass reports on the validation set.
    """

    # Every loss here is a per-batch mean, so the Trainer must divide it by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._window = _LogWindow()

    def loss_terms(self, model: nn.Module, inputs: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor], Any]:
        outputs = model(**model_inputs(inputs), labels=inputs["labels"])
        return outputs.loss, {}, outputs

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Tensor | int | None = None,
    ) -> Tensor | tuple[Tensor, Any]:
        loss, terms, outputs = self.loss_terms(model, inputs)
        if model.training:
            self._window.add(terms, samples=len(inputs["input_ids"]))
        return (loss, outputs) if return_outputs else loss

    def train(self, *args: Any, **kwargs: Any) -> TrainOutput:
        self._window = _LogWindow()
        return super().train(*args, **kwargs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            logs = {**logs, **self._window.drain(self.args.world_size)}
            if "learning_rate" in logs:
                logs["lr"] = logs.pop("learning_rate")
        super().log(logs, start_time)

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler:
        dataset = self.train_dataset if train_dataset is None else train_dataset
        return EpochSeededLengthSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            lengths=[len(row["input_ids"]) for row in dataset],
            seed=self.args.seed,
        )


class ProgressReporter(TrainerCallback):
    """Forwards every log event, from the main process only, to a `Progress` sink (e.g. a Dagster run log)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.progress({"step": state.global_step, **logs})


class CheckpointEverySteps(TrainerCallback):
    """Step checkpoints for loops whose save strategy must follow evaluation (best-model tracking)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_step_end(self, args, state, control, **kwargs):
        if self.every and state.global_step % self.every == 0:
            control.should_save = True


def build_trainer(
    trainer_class: type[TrainerT],
    *,
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    arguments: TrainingArguments,
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]] | None = None,
    progress: Progress | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    **trainer_kwargs: Any,
) -> TrainerT:
    """Without a progress sink the Trainer shows its own progress bar (the CLI case); with one, events go only
    to the sink."""
    reporters = [ProgressReporter(progress)] if progress is not None else []
    trainer = trainer_class(
        model=model,
        args=arguments,
        data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        processing_class=tokenizer,
        compute_metrics=accuracy if eval_rows is not None else None,
        callbacks=[*callbacks, *reporters],
        **trainer_kwargs,
    )
    if progress is not None:
        trainer.remove_callback(PrinterCallback)
    return trainer


def fit(trainer: Trainer, config: TrainingConfig, model: PreTrainedModel) -> TrainingResult:
    """Train, resuming from the latest `checkpoint-*` in the output directory when `config.resume` allows it,
    then measure the final (or best) model on the validation set if there is one."""
    resumed_from = _latest_checkpoint(config.output_dir) if config.resume else None
    output = trainer.train(resume_from_checkpoint=str(resumed_from) if resumed_from else None)
    metrics = dict(output.metrics)
    if trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())
    return TrainingResult(
        model=model,
        log_history=list(trainer.state.log_history),
        metrics=metrics,
        checkpoint_dir=config.output_dir,
        optimizer_steps=trainer.state.global_step,
        resumed_from=resumed_from,
    )


def _latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest checkpoint that was saved to the end. The Trainer writes `trainer_state.json` last, so a
    folder without it was cut off mid-save (a killed process) and would fail every later resume."""
    complete = {
        int(match.group(1)): folder
        for folder in output_dir.glob("checkpoint-*")
        if (match := _CHECKPOINT_NAME.fullmatch(folder.name)) and (folder / TRAINER_STATE_NAME).is_file()
    }
    return complete[max(complete)] if complete else None
