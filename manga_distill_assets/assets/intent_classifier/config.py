"""Typed knobs for the model assets, with defaults that fit the demo on 2 CPU cores.

Every knob DESIGN.md names is here: temperature, α, layer map, loss weights (β, γ), student shape, epochs,
learning rate, batch, seed. The `smoke` preset (presets.py) shrinks them so tests run the whole graph in
about a minute; a GPU user raises epochs and drops the example limits.
"""

import itertools
from pathlib import Path
from typing import Annotated, Literal, Self

import dagster as dg
from pydantic import Field, field_validator, model_validator
from transformers import AutoConfig, PreTrainedModel

from manga_distill_assets.distill.layer_match import LayerMatch, parse_layer_matches
from manga_distill_assets.distill.losses import OutputDistillation
from manga_distill_assets.distill.students import StudentSpec, build_student
from manga_distill_assets.distill.training import TrainingConfig


class TrainingKnobs(dg.Config):
    epochs: float = Field(default=3.0, gt=0)
    learning_rate: float = Field(
        default=5e-5, gt=0, le=1.0, description="Above 1 fine-tuning diverges at once; 1e-5 to 1e-3 is usual."
    )
    batch_size: int = Field(default=32, gt=0)
    gradient_accumulation: int = Field(default=1, gt=0)
    seed: int = 42
    max_length: int = Field(default=64, gt=8, description="Tokens per text; manga queries are short.")
    checkpoint_every: int = Field(default=200, ge=0, description="Steps between checkpoints (0: at the end).")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto",
        description="auto: bf16 (or fp16) on a GPU; bf16 on a CPU that multiplies it natively (AVX512-BF16, "
        "AMX); else fp32. Weights and losses stay fp32.",
    )
    head_learning_rate: float | None = Field(
        default=None, gt=0, description="Rate of a freshly initialised head and pooler (None: learning_rate)."
    )
    early_stopping_patience: int = Field(
        default=2, ge=0, description="Validations without improvement before training stops (0: never)."
    )
    min_steps_per_label: int = Field(
        default=20, ge=0, description="The step cap is at least this many steps per class (epochs: a cap)."
    )
    freeze_word_embeddings: bool = Field(
        default=False, description="Keep the token embedding table fixed: faster steps."
    )

    def training_config(self, output_dir: Path) -> TrainingConfig:
        return TrainingConfig(
            output_dir=output_dir,
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            gradient_accumulation=self.gradient_accumulation,
            seed=self.seed,
            max_length=self.max_length,
            checkpoint_every=self.checkpoint_every,
            precision=self.precision,
            head_learning_rate=self.head_learning_rate,
            early_stopping_patience=self.early_stopping_patience,
            min_steps_per_label=self.min_steps_per_label,
            freeze_word_embeddings=self.freeze_word_embeddings,
        )


FRESH_HEAD_LEARNING_RATE = 2e-3
"""The rate of a classification head (and pooler) that starts untrained, wherever one does: 20 times the
teacher's encoder rate (docs/intent-on-real-data.md)."""

TEACHER_TRAINING = TrainingKnobs(
    epochs=20.0,
    learning_rate=1e-4,
    head_learning_rate=FRESH_HEAD_LEARNING_RATE,
    freeze_word_embeddings=True,
)
"""How a pre-trained encoder is fine-tuned into a classifier here. `epochs` is a cap: validation decides when
to stop. The packaged MiniLM's pooler was never trained and the head starts random, so both learn at
`head_learning_rate` (see docs/intent-on-real-data.md)."""


class TeacherConfig(dg.Config):
    base_model: str = Field(
        default="",
        description="Hugging Face id or local folder to fine-tune; empty: the packaged all-MiniLM-L6-v2.",
    )
    registered_checkpoint: str = Field(
        default="",
        description="An already fine-tuned checkpoint (folder or hub id) to register instead of training.",
    )
    max_train_examples: int = Field(default=0, ge=0, description="Subsample the train split (0: all).")
    min_validation_accuracy: float = Field(default=0.80, ge=0, le=1)
    training: TrainingKnobs = TEACHER_TRAINING


class ParaphraseConfig(dg.Config):
    per_text: int = Field(
        default=5, ge=1, le=20, description="Paraphrases asked for per labelled train text."
    )
    max_source_texts: int = Field(
        default=0, ge=0, description="Paraphrase only the first N train texts (0: all)."
    )


class ScoringConfig(dg.Config):
    """How a teacher scores the transfer set and judges its paraphrases."""

    keep_threshold: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A paraphrase is kept when the teacher's top class is its source "
        "label with at least this probability.",
    )
    entropy_temperature: float = Field(
        default=OutputDistillation.temperature,
        gt=0,
        description="Only for the reported mean teacher entropy; stage 2's temperature is student_stage2's.",
    )
    batch_size: int = Field(default=128, gt=0)


class RefinedSoftLabelConfig(ScoringConfig):
    """What the students learn from (stage 2, the studies)."""

    teachers: Literal["both", "refined"] = Field(
        default="both",
        description="both: the mean of the supervised and the refined teacher's logits, an ensemble of the "
        "two (the refinement sharpens the teacher, and its student alone kept less of it: on BANKING77 "
        "at 10 and 100 labelled texts per intent, seed 1, retention 0.975 and 0.981 from the refined "
        "teacher's logits, 0.992 and 0.991 from the mean; docs/intent-on-real-data.md); refined: its "
        "logits alone. Paraphrases are judged by the refined teacher either way.",
    )


class SoftLabelConfig(ScoringConfig):
    """The transfer set itself is drawn here; `refined_soft_labels` scores the same rows again."""

    max_unlabeled: int = Field(
        default=0, ge=0, description="Score only the N most frequent queries (0: all)."
    )


class EncoderShape(dg.Config):
    """Depth, width, heads and feed-forward width of an encoder built from a config."""

    num_layers: int = Field(default=StudentSpec.num_layers, gt=0)
    hidden_size: int = Field(default=StudentSpec.hidden_size, gt=0)
    num_heads: int = Field(default=StudentSpec.num_heads, gt=0)
    intermediate_size: int = Field(default=StudentSpec.intermediate_size, gt=0)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> Self:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be a multiple of num_heads {self.num_heads}, since "
                "every attention head gets an equal slice of the width"
            )
        return self

    def spec(self) -> StudentSpec:
        return StudentSpec(
            num_layers=self.num_layers,
            hidden_size=self.hidden_size,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
        )


class StudentShape(EncoderShape):
    """How the student starts: from teacher layers (default), the general student, a config (random init),
    or a pretrained model.

    The default copies the fine-tuned teacher's embeddings and layers 2 and 5 (DistilBERT-style): on 2 CPU
    cores it reaches the teacher's accuracy within the demo's budget at about 0.4 of its PyTorch latency.
    `init: general` starts from `general_student` (TinyBERT's first stage, its own group, materialised once);
    its shape is the general student's, so the four shape knobs below do not apply. `init: config` builds
    the TinyBERT-shaped student below from scratch; it is smaller and faster still, but needs far more
    epochs than a CPU demo affords (with the demo budget it stayed below the baseline).
    """

    init: Literal["config", "teacher", "general", "pretrained"] = "teacher"
    teacher_layers: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [2, 5],
        min_length=1,
        description="init=teacher: 0-based, strictly increasing, each below the teacher's depth.",
    )
    pretrained: str = Field(default="", description="For init=pretrained: a hub id or folder.")

    @field_validator("teacher_layers")
    @classmethod
    def _increasing(cls, layers: list[int]) -> list[int]:
        if any(later <= earlier for earlier, later in itertools.pairwise(layers)):
            raise ValueError(f"{layers} must be strictly increasing (each layer once, lowest first)")
        return layers

    def check_teacher_depth(self, teacher_folder: Path | str, setting: str) -> None:
        """The one bound that needs the teacher: read from its config.json, before its weights are loaded."""
        if self.init != "teacher":
            return
        depth = AutoConfig.from_pretrained(teacher_folder).num_hidden_layers
        missing = [layer for layer in self.teacher_layers if layer >= depth]
        if missing:
            raise dg.Failure(
                description=f"{setting}.teacher_layers={self.teacher_layers}: layers {missing} do not exist, "
                f"the teacher has {depth} layers numbered 0 to {depth - 1}. Choose layers in that range.",
                allow_retries=False,
            )

    def build(
        self, source: PreTrainedModel, id2label: dict[int, str], seed: int, general: Path | None = None
    ) -> PreTrainedModel:
        """This shape's student, with `source`'s layers where `init` is teacher; `general` is the general
        student's folder, which `init: general` needs."""
        if self.init == "general" and general is None:
            raise ValueError("init=general needs the general student's folder; materialise general_student.")
        return build_student(
            "pretrained" if self.init == "general" else self.init,
            source,
            id2label,
            seed,
            layers=self.teacher_layers,
            spec=self.spec(),
            pretrained=str(general) if self.init == "general" else self.pretrained,
        )


class LayerMatchConfig(dg.Config):
    student: int
    teacher: int
    kind: str
    weight: float = 1.0


class Stage1Config(dg.Config):
    student: StudentShape = StudentShape()
    layer_matches: list[LayerMatchConfig] = Field(
        default_factory=list, description="Empty: the uniform map (embeddings, hidden states, attentions)."
    )
    beta: float = Field(default=1.0, ge=0, description="Weight of embedding and hidden-state MSE.")
    gamma: float = Field(default=1.0, ge=0, description="Weight of attention MSE.")
    max_transfer_texts: int = Field(
        default=4000,
        ge=0,
        description="Cap on transfer texts, most useful first (0: all). Raise it on a GPU.",
    )
    prune_vocabulary: bool = Field(default=True, description="Keep only tokens the training texts use.")
    training: TrainingKnobs = TrainingKnobs(epochs=1.0, learning_rate=5e-4, batch_size=32)
    """One epoch: the student starts from the teacher's own layers, and on the packaged set the matching loss
    fell 0.57 -> 0.24 in the first 0.8 epoch and only to 0.19 over the next 1.2."""

    def matches(self) -> list[LayerMatch] | None:
        if not self.layer_matches:
            return None
        return parse_layer_matches([match.model_dump() for match in self.layer_matches])


class Stage2Config(dg.Config):
    temperature: float = Field(default=OutputDistillation.temperature, gt=0)
    alpha: float = Field(
        default=OutputDistillation.alpha, ge=0, le=1, description="Weight of the T²·KL term; 1-α weighs CE."
    )
    use_paraphrases: bool = True
    use_unlabeled: bool = True
    training: TrainingKnobs = TrainingKnobs(epochs=2.0, learning_rate=3e-4, batch_size=64)

    def output(self) -> OutputDistillation:
        return OutputDistillation(self.temperature, self.alpha)

    def origins(self) -> tuple[str, ...]:
        """The soft-label rows stage 2 learns from: the labelled texts, and the transfer texts asked for."""
        chosen = {"paraphrase": self.use_paraphrases, "unlabeled": self.use_unlabeled}
        return ("labeled", *(origin for origin, used in chosen.items() if used))


class TeacherRefinementConfig(Stage2Config):
    """The supervised teacher trained once more as stage 2 trains the student, on its own soft labels of the
    transfer set: it then learns from the paraphrases and the query log too, as its student will, and stays
    the most accurate model of the run (on BANKING77 at 10 to 100 labelled texts per intent the student had
    often edged past a teacher that had seen the labels alone; docs/intent-on-real-data.md). A third of
    stage 2's rate, since the teacher starts trained; one epoch (the step floor of 20 per class still
    applies), which kept `make demo` within its 10 minutes. `enabled: false` passes the supervised teacher
    on."""

    enabled: bool = True
    training: TrainingKnobs = TrainingKnobs(epochs=1.0, learning_rate=1e-4, batch_size=64)


class BaselineConfig(dg.Config):
    """Keep `student` and `training.seed` equal to stage 1's so both start from the same weights. Both
    baselines train like the teacher: until validation stops improving, with the epochs as a cap.
    `baseline_student_teacher_init` inherits the teacher's trained head, so `head_learning_rate` (meant
    for a fresh head) does not apply to it."""

    student: StudentShape = StudentShape()
    base_model: str = Field(
        default="",
        description="baseline_student starts from this pre-trained model's layers; empty: the packaged "
        "all-MiniLM-L6-v2, the teacher's default base. Set it to the teacher's base_model too.",
    )
    prune_vocabulary: bool = Field(
        default=False,
        description="Cut the stored baseline's vocabulary to the tokens of the labelled texts. Off: a model "
        "trained without a teacher keeps its pre-trained vocabulary, and cut to the labelled texts alone it "
        "split every word they lack into characters (on BANKING77 at 10 labelled texts per intent that cost "
        "it 2.0 to 2.7 points of test accuracy, docs/intent-on-real-data.md).",
    )
    training: TrainingKnobs = TrainingKnobs(
        epochs=20.0,
        learning_rate=2e-4,
        batch_size=32,
        head_learning_rate=FRESH_HEAD_LEARNING_RATE,
        freeze_word_embeddings=True,
    )


class EvalConfig(dg.Config):
    retention_floor: float = Field(default=0.95, ge=0, description="Blocking gate: student/teacher accuracy.")
    require_best_teacher: bool = Field(
        default=True,
        description="Blocking gate: the teacher must beat the pre-trained-init baseline on validation. Only "
        "the smoke preset, whose models train for one epoch, turns it off.",
    )
    latency_threads: int = Field(default=1, ge=1)
    latency_runs: int = Field(default=100, ge=5)

    def check_floor_reachable(self, teacher_accuracy: float) -> None:
        """Retention above 1 is real (a student can beat its teacher), so the floor's bound is the teacher's
        test accuracy: no student scores above 100%, so no floor above 1 / teacher accuracy can ever pass."""
        if teacher_accuracy <= 0:
            return
        ceiling = 1.0 / teacher_accuracy
        if self.retention_floor > ceiling:
            raise dg.Failure(
                description=f"retention_floor={self.retention_floor:g} cannot be met: the teacher scores "
                f"{teacher_accuracy:.3f} on the test split, so even a perfect student retains {ceiling:.3f}. "
                "Set retention_floor to at most that (0.95 keeps 95% of the teacher's accuracy).",
                allow_retries=False,
            )
