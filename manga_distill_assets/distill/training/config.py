"""The settings every training loop shares, and the one place where they become `TrainingArguments`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from transformers import TrainingArguments

from manga_distill_assets.distill.training.metrics import SELECTION_METRIC
from manga_distill_assets.distill.training.schedule import MIN_STEPS_PER_LABEL, SupervisedSchedule

Precision = Literal["auto", "fp32", "bf16", "fp16"]
CHECKPOINTS_KEPT = 2
"""The latest checkpoint (to resume from) and the best one (to load at the end); older ones only cost disk."""

_ARGUMENT_FIELDS = {argument.name for argument in dataclasses.fields(TrainingArguments)}


@dataclass
class TrainingConfig:
    """Settings shared by all loops.

    `checkpoint_every` counts optimiser steps; 0 saves only at the end. The supervised loops (teacher,
    baseline) also save after every epoch, which picking the best epoch needs; they, and stage 2 when given a
    validation set, use `early_stopping_patience` (0 turns early stopping off). With `resume`, a run
    continues from the latest `checkpoint-*` in `output_dir`, so give every distinct run (other data, other
    settings) its own folder.
    `log_every` is how many optimiser steps pass between log events. `head_learning_rate` is the rate of
    the classification head and pooler when they start untrained (None: `learning_rate`, as the encoder):
    a fresh head over many classes needs a far larger step than pre-trained layers can take.
    `min_steps_per_label` raises a supervised run's step cap to that many steps per class (`schedule.py`).
    `freeze_word_embeddings` keeps the token embedding table fixed in every loop: on a MiniLM-sized
    model it holds half the weights, and Adam updates every row each step though a batch uses a few hundred
    tokens (in `make demo` on 2 CPU cores: teacher 0.396 -> 0.384 s a step, 2-layer baseline 0.143 -> 0.133).
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
    head_learning_rate: float | None = None
    min_steps_per_label: int = MIN_STEPS_PER_LABEL
    freeze_word_embeddings: bool = False

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
        for name in (
            "checkpoint_every",
            "early_stopping_patience",
            "num_workers",
            "weight_decay",
            "min_steps_per_label",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainingConfig.{name} must not be negative, got {getattr(self, name)}.")
        if self.head_learning_rate is not None and self.head_learning_rate <= 0:
            raise ValueError(
                f"TrainingConfig.head_learning_rate must be positive or None, got {self.head_learning_rate}."
            )
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"TrainingConfig.warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")


def resolve_precision(precision: Precision) -> Literal["fp32", "bf16", "fp16"]:
    """`auto` takes the fastest numerically safe choice: bf16 where the GPU has it, else fp16 on a GPU; on a
    CPU, bf16 autocast where the CPU multiplies bf16 natively (AVX512-BF16 or AMX), else fp32, which emulated
    bf16 would only slow down. On 2 Zen 4 cores every training loop ran 1.4-1.7x as many steps a second in
    bf16 (benchmarks/training_loops.py). Weights, optimiser state and the distillation losses stay fp32
    (`losses.py`, `intermediate.py`); only the matrix products run in bf16."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def cpu_has_native_bf16() -> bool:
    """torch's own probes of the CPU's instruction sets (private in torch.cpu, hence the guard)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def precision_arguments(precision: Precision) -> dict[str, bool]:
    """The Trainer's mixed-precision flags for `precision` (after `resolve_precision`), for every Trainer the
    project runs (ours and sentence-transformers'): bf16 on a CPU needs `use_cpu`, which turns on the CPU's
    autocast; fp16 needs a GPU."""
    resolved = resolve_precision(precision)
    if resolved == "fp16" and not torch.cuda.is_available():
        raise ValueError("precision='fp16' needs a CUDA GPU; use 'auto', 'fp32' or 'bf16' on CPU.")
    return {
        "bf16": resolved == "bf16",
        "fp16": resolved == "fp16",
        "use_cpu": resolved == "bf16" and not torch.cuda.is_available(),
    }


def training_arguments(
    config: TrainingConfig,
    *,
    evaluate: bool = False,
    keep_best: bool = False,
    quiet: bool = False,
    schedule: SupervisedSchedule | None = None,
    **overrides: Any,
) -> TrainingArguments:
    """The one place where our settings become Trainer settings.

    `evaluate` runs validation after each epoch; `keep_best` also saves at each epoch end so that the best
    epoch (by validation accuracy) can be loaded at the end, which the Trainer allows only when saves follow
    evaluations. A `schedule` replaces epochs by its step cap and evaluates, saves and warms up at its
    intervals instead. Seeding alone makes CPU runs repeatable; `full_determinism` would switch the whole
    process to deterministic kernels (and fail on some GPU ops), so it is left off.
    """
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
        **precision_arguments(config.precision),
        "dataloader_num_workers": config.num_workers,
        "dataloader_pin_memory": torch.cuda.is_available(),
        "logging_strategy": "steps",
        "logging_steps": config.log_every,
        "eval_strategy": "epoch" if evaluate else "no",
        "save_strategy": "epoch" if keep_best else "steps",
        "save_steps": config.checkpoint_every,
        "save_total_limit": CHECKPOINTS_KEPT,
        "load_best_model_at_end": keep_best,
        "metric_for_best_model": SELECTION_METRIC if keep_best else None,
        "greater_is_better": True if keep_best else None,
        "restore_callback_states_from_checkpoint": True,
        "remove_unused_columns": False,  # `loss_terms` picks the model inputs; labels and logits reach it
        "report_to": "none",
        "disable_tqdm": quiet,
        **_version_dependent_arguments(config),
    }
    if schedule is not None:
        arguments.update(_scheduled_arguments(schedule))
    return TrainingArguments(**{**arguments, **overrides})


def _scheduled_arguments(schedule: SupervisedSchedule) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "max_steps": schedule.max_steps,
        "eval_strategy": "steps",
        "eval_steps": schedule.evaluation_interval,
        "save_strategy": "steps",
        "save_steps": schedule.evaluation_interval,
        "warmup_steps": schedule.warmup_steps,
    }
    if "warmup_ratio" in _ARGUMENT_FIELDS:
        arguments["warmup_ratio"] = 0.0
    return arguments


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
