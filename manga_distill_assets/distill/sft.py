"""Supervised fine-tuning on the teacher's answers (response-level distillation) with TRL's `SFTTrainer`.

Claude gives no logits, so the student learns from its text: each example is a chat (system, user, assistant)
and the loss covers the assistant turn only (`assistant_only_loss`), so the student is taught to answer, not
to write questions. LoRA (PEFT), gradient checkpointing and bf16 are options for large bases on a GPU;
checkpoints go to the run's folder, and a rerun with the same folder resumes from the latest complete one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from peft import LoraConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer

from manga_distill_assets.distill.training.callbacks import Progress, ProgressReporter
from manga_distill_assets.distill.training.config import CHECKPOINTS_KEPT
from manga_distill_assets.distill.training.trainer import latest_checkpoint

Message = dict[str, str]


@dataclass(frozen=True)
class LoraKnobs:
    """LoRA adapters on the attention and MLP projections; `rank` 0 trains every weight instead."""

    rank: int = 0
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )

    def peft_config(self) -> LoraConfig | None:
        if self.rank == 0:
            return None
        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
        )


@dataclass(frozen=True)
class SFTKnobs:
    epochs: float = 8.0
    learning_rate: float = 3e-3
    batch_size: int = 32
    gradient_accumulation: int = 1
    max_length: int = 256
    warmup_ratio: float = 0.05
    seed: int = 42
    checkpoint_every: int = 100
    log_every: int = 10
    bf16: bool = False
    gradient_checkpointing: bool = False
    lora: LoraKnobs = field(default_factory=LoraKnobs)


@dataclass
class SFTResult:
    """`model` is the trained model (LoRA adapters merged into it). `truncated_away` counts conversations
    TRL dropped because `max_length` cut off their whole answer; `resumed_from` names the checkpoint this run
    continued, if any."""

    model: PreTrainedModel
    log_history: list[dict[str, float]]
    examples: int
    truncated_away: int
    optimizer_steps: int
    train_seconds: float
    resumed_from: Path | None

    @property
    def final_loss(self) -> float:
        logged = [entry["loss"] for entry in self.log_history if "loss" in entry]
        return float(logged[-1]) if logged else float("nan")


def conversation(system: str, question: str, answer: str) -> list[Message]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]


def sft_config(knobs: SFTKnobs, output_dir: Path, quiet: bool) -> SFTConfig:
    """The one place where our knobs become TRL's."""
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=knobs.epochs,
        learning_rate=knobs.learning_rate,
        per_device_train_batch_size=knobs.batch_size,
        gradient_accumulation_steps=knobs.gradient_accumulation,
        warmup_steps=knobs.warmup_ratio,
        lr_scheduler_type="cosine",
        seed=knobs.seed,
        max_length=knobs.max_length,
        assistant_only_loss=True,
        packing=False,
        bf16=knobs.bf16,
        activation_checkpointing=knobs.gradient_checkpointing,
        logging_strategy="steps",
        logging_steps=knobs.log_every,
        save_strategy="steps" if knobs.checkpoint_every else "no",
        save_steps=knobs.checkpoint_every or 500,
        save_total_limit=CHECKPOINTS_KEPT,
        report_to="none",
        disable_tqdm=quiet,
        dataloader_num_workers=0,
        dataset_num_proc=None,
    )


def build_sft_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[list[Message]],
    output_dir: Path,
    knobs: SFTKnobs,
    progress: Progress | None = None,
) -> SFTTrainer:
    """TRL's trainer over the chats; its dataset holds the tokenised chats with the labels it trains on."""
    if not conversations:
        raise ValueError("train_sft got no conversations; the teacher kept no answers to learn from.")
    output_dir.mkdir(parents=True, exist_ok=True)
    trainer = SFTTrainer(
        model=model,
        args=sft_config(knobs, output_dir, quiet=progress is not None),
        train_dataset=Dataset.from_list([{"messages": list(turns)} for turns in conversations]),
        processing_class=tokenizer,
        peft_config=knobs.lora.peft_config(),
        callbacks=[ProgressReporter(progress)] if progress is not None else None,
    )
    if progress is not None:
        trainer.remove_callback(PrinterCallback)
    return trainer


def train_sft(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[list[Message]],
    output_dir: Path,
    knobs: SFTKnobs,
    progress: Progress | None = None,
) -> SFTResult:
    """Fine-tune on `conversations`, resuming from the latest complete checkpoint in `output_dir`."""
    trainer = build_sft_trainer(model, tokenizer, conversations, output_dir, knobs, progress)
    resumed_from = latest_checkpoint(output_dir)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resumed_from) if resumed_from else None)
    seconds = time.perf_counter() - started
    trained = trainer.model
    if knobs.lora.rank:
        trained = trained.merge_and_unload()
    return SFTResult(
        model=trained,
        log_history=list(trainer.state.log_history),
        examples=len(trainer.train_dataset),
        truncated_away=len(conversations) - len(trainer.train_dataset),
        optimizer_steps=trainer.state.global_step,
        train_seconds=seconds,
        resumed_from=resumed_from,
    )
