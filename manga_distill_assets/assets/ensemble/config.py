"""Typed knobs for the ensemble group, with defaults that fit the demo on 2 CPU cores.

The default ensemble has three genuinely different members: the intent graph's fine-tuned MiniLM teacher,
a second MiniLM fine-tuned the teacher's way from another seed, and a character n-gram TF-IDF + logistic
regression model that errs where the transformers do not. A user lists their own fine-tuned checkpoints
under `transformers` (`registered_checkpoint`) instead, or turns members off.
"""

import dagster as dg
from pydantic import Field

from manga_distill_assets.assets.intent_classifier.config import TEACHER_TRAINING, Stage2Config, TrainingKnobs
from manga_distill_assets.distill.char_tfidf import CharTfidfSettings


class TransformerMemberConfig(dg.Config):
    name: str = Field(description="The member's name in reports; letters, digits and '_'.")
    base_model: str = Field(default="", description="Hub id or folder to fine-tune; empty: all-MiniLM-L6-v2.")
    registered_checkpoint: str = Field(
        default="", description="An already fine-tuned classifier folder to register instead of training."
    )
    max_train_examples: int = Field(default=0, ge=0, description="Subsample the train split (0: all).")
    weight: float = Field(default=1.0, ge=0, description="Share of the member in the probability average.")
    training: TrainingKnobs = Field(
        default=TEACHER_TRAINING.model_copy(update={"seed": 7}),
        description="The teacher's recipe (trained to convergence on validation) from another seed.",
    )


class ClassicalMemberConfig(dg.Config):
    name: str = "char_tfidf"
    enabled: bool = True
    registered_checkpoint: str = Field(
        default="", description="A folder written by CharTfidfClassifier.save, registered instead of fitting."
    )
    min_n: int = Field(default=2, ge=1)
    max_n: int = Field(default=5, ge=1)
    min_df: int = Field(default=2, ge=1, description="Drop n-grams seen in fewer train texts.")
    regularisation_c: float = Field(default=10.0, gt=0, description="Inverse L2 strength of the regression.")
    weight: float = Field(default=1.0, ge=0)

    def settings(self) -> CharTfidfSettings:
        return CharTfidfSettings(
            min_n=self.min_n, max_n=self.max_n, min_df=self.min_df, regularisation_c=self.regularisation_c
        )


class EnsembleMembersConfig(dg.Config):
    include_teacher: bool = Field(default=True, description="The intent graph's teacher_model is a member.")
    teacher_weight: float = Field(default=1.0, ge=0)
    transformers: list[TransformerMemberConfig] = Field(
        default_factory=lambda: [TransformerMemberConfig(name="minilm_seed7")]
    )
    classical: ClassicalMemberConfig = ClassicalMemberConfig()
    calibrate: bool = Field(
        default=True, description="Fit each member's temperature on validation before averaging (else T=1)."
    )
    batch_size: int = Field(default=128, gt=0)


class EnsembleSoftLabelConfig(dg.Config):
    keep_threshold: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A paraphrase is kept when the ensemble's top class is its source label with at least "
        "this probability.",
    )
    batch_size: int = Field(default=128, gt=0)


class EnsembleStudentConfig(Stage2Config):
    """The stage-2 loss and knobs of student_stage2, applied to the ensemble's targets."""


class EnsembleReportConfig(dg.Config):
    retention_floor: float = Field(
        default=0.97, ge=0, description="Blocking gate: student accuracy / ensemble accuracy on test."
    )
    latency_threads: int = Field(default=1, ge=1, description="Torch and onnxruntime threads per model.")
    latency_runs: int = Field(default=100, ge=5)


class EnsembleStudyConfig(Stage2Config):
    """student_stage2's loss and transfer texts, once per seed, on a shorter budget."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    training: TrainingKnobs = Field(
        default=TrainingKnobs(epochs=0.5, learning_rate=3e-4, batch_size=64, checkpoint_every=0),
        description="A quarter of student_stage2's two epochs per seed: 2 partitions × 3 seeds fit on a CPU.",
    )
