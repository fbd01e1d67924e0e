"""Typed knobs for the fallback-LLM assets, with defaults that fit the group on 2 CPU cores in minutes.

The `smoke` preset (presets.py) shrinks them for tests; `llama3_8b_qlora_run_config` there is the real
target, Llama 3 8B Instruct with QLoRA on one GPU (docs/fallback-llm.md).
"""

import dagster as dg
from pydantic import Field

from manga_distill_assets.distill.chat_model import LlamaShape
from manga_distill_assets.distill.sft import LoraKnobs, SFTKnobs


class LlmPromptsConfig(dg.Config):
    free_text_intents: list[str] = Field(
        default=["product_inquiry", "recommendation"],
        description="Intents the classifier routes to the assistant's free-text path.",
    )
    max_real_queries: int = Field(
        default=300, ge=0, description="Most frequent routed queries kept (0: none)."
    )


class LoraConfigKnobs(dg.Config):
    rank: int = Field(default=0, ge=0, description="LoRA rank; 0 trains every weight.")
    alpha: int = Field(default=32, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)

    def knobs(self) -> LoraKnobs:
        return LoraKnobs(rank=self.rank, alpha=self.alpha, dropout=self.dropout)


class LlmStudentConfig(dg.Config):
    base_model: str = Field(
        default="",
        description="Causal LM folder or hub id to fine-tune; empty: a small Llama built here from a config.",
    )
    hidden_size: int = Field(default=128, gt=0)
    layers: int = Field(default=2, gt=0)
    heads: int = Field(default=4, gt=0)
    kv_heads: int = Field(default=2, gt=0)
    vocab_size: int = Field(default=1024, gt=256, description="BPE vocabulary trained on the corpus.")
    max_conversations: int = Field(
        default=0, ge=0, description="Train on a seeded sample of this many teacher answers (0: all)."
    )
    epochs: float = Field(
        default=24.0,
        gt=0,
        description="A Llama trained from random weights learns the catalogue's facts by repetition: on an "
        "idle 2-core CPU 4 epochs stated every fact in 2.5% of held-out answers, 16 in 16% "
        "(docs/fallback-llm.md).",
    )
    learning_rate: float = Field(default=4e-3, gt=0)
    batch_size: int = Field(default=16, gt=0)
    gradient_accumulation: int = Field(default=1, gt=0)
    max_length: int = Field(default=256, gt=16, description="Tokens per chat; longer ones are cut.")
    checkpoint_every: int = Field(default=100, ge=0, description="Steps between checkpoints (0: none).")
    seed: int = 42
    bf16: bool = False
    load_in_4bit: bool = Field(
        default=False, description="QLoRA: load the base in 4 bits (CUDA + bitsandbytes)."
    )
    gradient_checkpointing: bool = False
    lora: LoraConfigKnobs = LoraConfigKnobs()

    def shape(self) -> LlamaShape:
        return LlamaShape(
            hidden_size=self.hidden_size,
            layers=self.layers,
            heads=self.heads,
            kv_heads=self.kv_heads,
            intermediate_size=3 * self.hidden_size,
            vocab_size=self.vocab_size,
        )

    def sft_knobs(self) -> SFTKnobs:
        return SFTKnobs(
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            gradient_accumulation=self.gradient_accumulation,
            max_length=self.max_length,
            seed=self.seed,
            checkpoint_every=self.checkpoint_every,
            bf16=self.bf16,
            gradient_checkpointing=self.gradient_checkpointing,
            lora=self.lora.knobs(),
        )


class LlmEvalConfig(dg.Config):
    max_questions: int = Field(
        default=0, ge=0, description="Evaluate a seeded sample of this many test questions (0: all)."
    )
    seed: int = 13
    max_new_tokens: int = Field(default=64, gt=0)
    latency_new_tokens: int = Field(default=32, gt=0, description="Fixed new tokens for p50/p99.")
    latency_runs: int = Field(default=30, gt=0)
    threads: int = Field(default=2, gt=0, description="CPU threads for generation and latency.")
    student_usd_per_hour: float = Field(
        default=0.096,
        ge=0,
        description="What the machine serving the student costs (default: 2 vCPU on demand).",
    )
    teacher_input_usd_per_mtok: float = Field(default=0.8, ge=0, description="Bedrock price, input tokens.")
    teacher_output_usd_per_mtok: float = Field(default=4.0, ge=0, description="Bedrock price, output tokens.")
