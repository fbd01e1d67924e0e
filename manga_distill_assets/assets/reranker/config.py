"""Typed knobs for the reranker group, with defaults that materialise it in minutes on 2 CPU cores."""

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field
from transformers import PretrainedConfig

from manga_distill_assets.distill.cross_encoders import PAIR_MAX_LENGTH, RerankTraining
from manga_distill_assets.distill.training.config import Precision, TrainingConfig


class RerankKnobs(dg.Config):
    epochs: float = Field(default=1.0, gt=0)
    learning_rate: float = Field(default=1e-4, gt=0)
    batch_size: int = Field(default=32, gt=0, description="Pairs (teacher) or candidate lists (student).")
    max_length: int = Field(
        default=PAIR_MAX_LENGTH, gt=8, description="Tokens per (query, passage) pair in training."
    )
    seed: int = 42
    min_steps: int = Field(
        default=0,
        ge=0,
        description="Train at least this many optimiser steps, repeating the data: one epoch of a small "
        "file is too few updates for a new scoring head.",
    )
    precision: Precision = Field(
        default="auto",
        description="auto: bf16 (or fp16) on a GPU; bf16 on a CPU that multiplies it natively (AVX512-BF16, "
        "AMX); else fp32. Weights stay fp32.",
    )

    def settings(self) -> RerankTraining:
        return RerankTraining(
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            max_length=self.max_length,
            seed=self.seed,
            min_steps=self.min_steps,
            precision=self.precision,
        )


class RerankQueriesConfig(dg.Config):
    queries: int = Field(default=400, gt=0, description="Generated queries (the packaged default only).")
    formats_per_title: int = Field(default=4, ge=1, le=10, description="Products (editions) per title.")
    candidates: int = Field(default=20, ge=2, description="Candidates per query, as retrieval returns them.")
    hard_negatives: int = Field(default=4, ge=0, description="Dense-mined grade-0 candidates per query.")
    ensured_positives: int = Field(default=2, ge=0, description="Best-graded products kept in every list.")
    seed: int = 0


class RerankTeacherConfig(dg.Config):
    base_model: str = Field(
        default="", description="Model to fine-tune; empty: the packaged all-MiniLM-L6-v2."
    )
    registered_cross_encoder: str = Field(
        default="",
        description="A cross-encoder folder with one output (e.g. ms-marco-MiniLM-L12-v2) to use as is.",
    )
    max_train_pairs: int = Field(default=0, ge=0, description="Subsample the train pairs (0: all).")
    min_validation_ndcg_at_3: float = Field(default=0.6, ge=0, le=1)
    training: RerankKnobs = RerankKnobs(epochs=1.0, learning_rate=1e-4, batch_size=8, min_steps=600)
    """One epoch, but never under 600 steps: on 60 of the packaged train queries (1,200 pairs, 150 steps an
    epoch) one epoch left the teacher at test NDCG@3 0.241, under BM25's 0.567; 600 steps reached 0.620.
    The packaged default's 5,600 pairs are 700 steps an epoch, so it trains as before."""


class RerankScoresConfig(dg.Config):
    max_log_queries: int = Field(
        default=100, ge=0, description="Most frequent query-log queries added to the transfer set (0: none)."
    )
    candidates: int = Field(default=20, ge=2, description="BM25 candidates per query-log query.")
    batch_size: int = Field(default=64, gt=0)


class LayerMatching(dg.Config):
    """TinyBERT's intermediate-layer stage on the transfer pairs, before the score distillation
    (`distill.cross_encoders.match_teacher_layers`, dropout off). A student pruned to half the teacher's width
    starts far from it: four epochs, then at least 600 Margin-MSE steps, kept 0.978 and 0.993 of its
    teachers' test NDCG@3 on two relevance files (on stored teacher scores), six 1.007 and 0.993, for about
    75 s more of the packaged group's 420 s on 2 CPU cores (docs/reranker.md)."""

    epochs: float = Field(default=4.0, ge=0, description="Passes over the transfer pairs (0: no such stage).")
    learning_rate: float = Field(default=5e-4, gt=0)
    batch_size: int = Field(default=32, gt=0)

    def training_config(self, output_dir: Path, training: RerankKnobs) -> TrainingConfig:
        """The stage's loop at the student training's seed, pair length and precision."""
        return TrainingConfig(
            output_dir=output_dir,
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            seed=training.seed,
            max_length=training.max_length,
            precision=training.precision,
            checkpoint_every=0,
        )


class PrunedWidth(dg.Config):
    """The teacher-layer student at a share of the teacher's width (init: teacher; a general student keeps its
    own shape): its residual channels, heads and feed-forward units are the teacher's most active ones on the
    transfer pairs (`distill.width_pruning`), before layer matching. Half by default: from the packaged MiniLM
    that is 4 × 192, whose int8 graph scored 20 candidates in 13.4 and 11.6 ms (the full 384: 31.6 and
    21.7) and kept 0.956 and 0.995 of the teacher's NDCG@3 in whole runs on two relevance files
    (docs/reranker.md)."""

    share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the teacher's attention heads (so of its channels) and feed-forward units "
        "kept; heads round down to a count that divides the teacher's, as layer matching's head groups "
        "need. 1: the teacher's width.",
    )
    hidden_size: int = Field(
        default=0,
        ge=0,
        description="Channels kept instead of the share (0: by share): a multiple of the teacher's head size "
        "(32 for MiniLM), which sets the heads.",
    )
    intermediate_size: int = Field(
        default=0, ge=0, description="Feed-forward units kept per layer instead of the share (0: by share)."
    )
    calibration_pairs: int = Field(
        default=1024, gt=0, description="Transfer pairs the importance of each is measured on."
    )
    fallback_retention: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="A pruned student whose validation NDCG@3 keeps less than this share of the teacher's "
        "is trained again at the teacher's width (0: never). Some teachers do not survive pruning: one's "
        "pruned student kept 0.63, its full-width one 1.00, where the pruned students of four other "
        "teachers kept 0.86-0.98 (docs/reranker.md).",
    )

    @property
    def sized(self) -> bool:
        """Whether a width was asked for in channels or units rather than as a share."""
        return bool(self.hidden_size or self.intermediate_size)

    def prunes(self, student: PretrainedConfig) -> bool:
        full = (student.hidden_size, student.intermediate_size)
        return any(kept < whole for kept, whole in zip(self.sizes(student), full, strict=True))

    def sizes(self, student: PretrainedConfig) -> tuple[int, int]:
        """Channels and feed-forward units to keep in `student` (a teacher-layer copy, so at the teacher's
        width)."""
        heads = student.num_attention_heads
        dividing = [count for count in range(1, heads + 1) if heads % count == 0]
        kept_heads = max((count for count in dividing if count <= self.share * heads), default=1)
        return (
            self.hidden_size or kept_heads * (student.hidden_size // heads),
            self.intermediate_size or max(1, round(self.share * student.intermediate_size)),
        )


class RerankStudentConfig(dg.Config):
    init: Literal["teacher", "general"] = Field(
        default="teacher",
        description="teacher: the teacher's `teacher_layers`; general: the latest general_student (its "
        "narrower shape, materialised beforehand), with a new scoring head.",
    )
    teacher_layers: list[int] = Field(
        default=[0, 2, 4, 5], description="Teacher layers the student starts from (0-based), one per layer."
    )
    list_size: int = Field(
        default=6, ge=2, description="Candidates per training list: the best and the rest."
    )
    listwise_weight: float = Field(default=0.5, ge=0, description="Weight of the listwise KL term (0: off).")
    temperature: float = Field(default=2.0, gt=0, description="Temperature of the listwise KL term.")
    width: PrunedWidth = PrunedWidth()
    prune_vocabulary: bool = True
    layer_matching: LayerMatching = LayerMatching()
    training: RerankKnobs = RerankKnobs(epochs=2.0, learning_rate=1e-4, batch_size=8, min_steps=600)
    """Two epochs over the candidate lists, but never under 600 steps: the packaged default's 376 lists are 94
    steps, after which the pruned student had not recovered from the first updates at the full learning rate
    (0.82 of the teacher's test NDCG@3 in a whole run, docs/reranker.md)."""


class RerankOnnxConfig(dg.Config):
    top3_floor: float = Field(
        default=0.9, ge=0, le=1, description="Blocking: least top-3 agreement with PyTorch."
    )
    kendall_floor: float = Field(default=0.8, ge=-1, le=1, description="Blocking: least mean Kendall τ.")


class RerankEvalConfig(dg.Config):
    candidates: int = Field(default=20, ge=2, description="Candidates scored per query when timing.")
    latency_queries: int = Field(default=50, gt=0, description="Timed queries (after 5 untimed).")
    threads: int = Field(default=1, gt=0)
    retention_floor: float = Field(
        default=0.95, ge=0, description="Blocking: student ONNX int8 NDCG@3 / teacher's."
    )
