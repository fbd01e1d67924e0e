"""The Trainer subclass that logs each loss term, how every loop builds it, and how a run is fitted and
resumed."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from transformers import (
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_utils import TrainOutput

from manga_distill_assets.distill.training.callbacks import Progress, ProgressReporter
from manga_distill_assets.distill.training.config import TrainingConfig
from manga_distill_assets.distill.training.data import EpochSeededLengthSampler, model_inputs
from manga_distill_assets.distill.training.metrics import validation_metrics

_CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")
TrainerT = TypeVar("TrainerT", bound=Trainer)


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
    epochs_run: float = field(default=0.0, kw_only=True)
    stop_reason: str = field(default="", kw_only=True)

    @property
    def final_loss(self) -> float:
        """The last logged training loss; a run too short to log one reports its mean loss instead."""
        logged = [entry["loss"] for entry in self.log_history if "loss" in entry]
        if logged:
            return float(logged[-1])
        summary = [entry["train_loss"] for entry in self.log_history if "train_loss" in entry]
        return float(summary[-1]) if summary else float("nan")


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

    def __init__(self, *args: Any, head_learning_rate: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_learning_rate = head_learning_rate
        self._window = _LogWindow()

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The Trainer's optimiser, with the head (every parameter outside the pre-trained encoder, and its
        pooler) in groups of their own at `head_learning_rate`. The scheduler scales each group's rate."""
        if self.optimizer is None and self.head_learning_rate is not None:
            network = self.model if model is None else model
            decaying = set(self.get_decay_parameter_names(network))
            groups = []
            for in_head in (False, True):
                for decays in (True, False):
                    parameters = [
                        parameter
                        for name, parameter in network.named_parameters()
                        if parameter.requires_grad
                        and (name in decaying) == decays
                        and _is_head(network, name) == in_head
                    ]
                    if parameters:
                        group = {
                            "params": parameters,
                            "weight_decay": self.args.weight_decay if decays else 0.0,
                        }
                        groups.append({**group, "lr": self.head_learning_rate} if in_head else group)
            optimizer_class, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, network)
            self.optimizer = optimizer_class(groups, **optimizer_kwargs)
        return super().create_optimizer(model)

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
        compute_metrics=validation_metrics if eval_rows is not None else None,
        callbacks=[*callbacks, *reporters],
        **trainer_kwargs,
    )
    if progress is not None:
        trainer.remove_callback(PrinterCallback)
    return trainer


def _is_head(model: nn.Module, parameter_name: str) -> bool:
    """Outside the encoder (`bert.`, `distilbert.`...) is the classifier; the pooler sits inside it but was
    never trained in sentence-embedding checkpoints such as all-MiniLM-L6-v2."""
    prefix = getattr(model, "base_model_prefix", "")
    return not parameter_name.startswith(f"{prefix}.") or ".pooler." in parameter_name


def fit(trainer: Trainer, config: TrainingConfig, model: PreTrainedModel) -> TrainingResult:
    """Train, resuming from the latest `checkpoint-*` in the output directory when `config.resume` allows it,
    then measure the final (or best) model on the validation set if there is one. The optimiser, built inside
    `train`, leaves out a word-embedding table that `config.freeze_word_embeddings` holds fixed."""
    resumed_from = latest_checkpoint(config.output_dir) if config.resume else None
    embeddings = model.get_input_embeddings().weight
    trainable = embeddings.requires_grad
    embeddings.requires_grad_(trainable and not config.freeze_word_embeddings)
    try:
        output = trainer.train(resume_from_checkpoint=str(resumed_from) if resumed_from else None)
    finally:
        embeddings.requires_grad_(trainable)
    metrics = dict(output.metrics)
    if trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())
    # Mixed precision leaves the model's forward wrapped in autocast for good; the model handed back scores in
    # fp32, as it is stored and as it will be loaded.
    trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    return TrainingResult(
        model=model,
        log_history=list(trainer.state.log_history),
        metrics=metrics,
        checkpoint_dir=config.output_dir,
        optimizer_steps=trainer.state.global_step,
        resumed_from=resumed_from,
        epochs_run=float(trainer.state.epoch or 0.0),
        stop_reason=_stop_reason(trainer),
    )


def _stop_reason(trainer: Trainer) -> str:
    state = trainer.state
    if state.best_global_step is None:
        return f"ran the configured {state.global_step} steps"
    best = _best_validation(state.log_history, state.best_global_step)
    if state.global_step < state.max_steps:
        return (
            f"validation stopped improving (neither accuracy nor loss): best {best} at step "
            f"{state.best_global_step}, stopped at step {state.global_step} of at most {state.max_steps}"
        )
    return (
        f"reached the cap of {state.max_steps} steps; best validation {best} at step "
        f"{state.best_global_step} (raise the epoch cap if it was still improving)"
    )


def _best_validation(log_history: list[dict], step: int) -> str:
    scores = next(
        (entry for entry in log_history if entry.get("step") == step and "eval_accuracy" in entry), {}
    )
    return (
        f"accuracy {scores.get('eval_accuracy', float('nan')):.4f}, "
        f"cross-entropy {scores.get('eval_cross_entropy', float('nan')):.4f}"
    )


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest checkpoint that was saved to the end. The Trainer writes `trainer_state.json` last, so a
    folder without it was cut off mid-save (a killed process) and would fail every later resume."""
    complete = {
        int(match.group(1)): folder
        for folder in output_dir.glob("checkpoint-*")
        if (match := _CHECKPOINT_NAME.fullmatch(folder.name)) and (folder / TRAINER_STATE_NAME).is_file()
    }
    return complete[max(complete)] if complete else None
