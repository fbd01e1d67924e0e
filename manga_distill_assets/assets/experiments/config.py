"""Typed knobs for the studies, and their two presets.

The defaults are the demo budget: one study (up to 5 variants × 3 seeds, 15 trainings) has to materialise
within 30 minutes on 2 shared CPU cores, so each stage-2 run sees a quarter of the transfer set (about 70
steps of 64 on the demo's 17.8K rows) where student_stage2 makes two passes. On a GPU raise `training.epochs`.
The smoke preset shrinks every run to a few steps for tests. `training.seed` is not used: `seeds` says which
seeds every variant runs.
"""

import dagster as dg
from pydantic import Field

from manga_distill_assets.assets.intent_classifier.config import (
    LayerMatchConfig,
    Stage1Config,
    Stage2Config,
    StudentShape,
    TrainingKnobs,
)
from manga_distill_assets.distill.layer_match import LayerMatch, parse_layer_matches
from manga_distill_assets.distill.losses import OutputDistillation

STUDY_ASSETS = ("temperature_study", "alpha_study", "recipe_study", "data_study", "init_study")


class StudyConfig(dg.Config):
    """The fixed settings of a study; the partition's variable (T, α, recipe or data) overrides its own."""

    seeds: list[int] = Field(
        default_factory=lambda: [0, 1, 2],
        min_length=1,
        description="Every variant runs once per seed; the report gives mean ± std over them.",
    )
    temperature: float = Field(
        default=OutputDistillation.temperature, gt=0, description="T wherever the study does not vary it."
    )
    alpha: float = Field(
        default=OutputDistillation.alpha, ge=0, le=1, description="α wherever the study does not vary it."
    )
    training: TrainingKnobs = TrainingKnobs(
        epochs=0.25, learning_rate=3e-4, batch_size=64, checkpoint_every=0
    )

    def recipe_settings(self) -> "RecipeStudyConfig":
        """These settings with the recipe knobs at the recipe study's defaults: the other studies only run
        two_stage, which reads none of them, so the defaults are written once, on RecipeStudyConfig."""
        return RecipeStudyConfig(
            seeds=self.seeds, temperature=self.temperature, alpha=self.alpha, training=self.training
        )


class RecipeStudyConfig(StudyConfig):
    """Keep `student`, `layer_matches`, β and γ equal to student_stage1's, so output_only and combined start
    from the same initial student and learn the same layer map as the two-stage recipe."""

    student: StudentShape = StudentShape()
    layer_matches: list[LayerMatchConfig] = Field(
        default_factory=list, description="Empty: the uniform map, as in student_stage1."
    )
    beta: float = Field(default=1.0, ge=0)
    gamma: float = Field(default=1.0, ge=0)
    prune_vocabulary: bool = Field(
        default=True, description="Prune the students built here as student_stage1 prunes its own."
    )
    head_training: TrainingKnobs = Field(
        default=TrainingKnobs(epochs=3.0, learning_rate=1e-3, batch_size=64, checkpoint_every=0),
        description="feature_only: the classifier head fitted on the labelled train split, encoder frozen.",
    )

    def recipe_settings(self) -> "RecipeStudyConfig":
        return self

    def matches(self) -> list[LayerMatch] | None:
        if not self.layer_matches:
            return None
        return parse_layer_matches([match.model_dump() for match in self.layer_matches])


class InitStudyConfig(StudyConfig):
    """The graph's own stage budgets by default, since an init is only judged fairly once trained as the
    graph trains it: stage 1 as `student_stage1`, stage 2 (`training`) as `student_stage2`."""

    student: StudentShape = Field(
        default=StudentShape(), description="init=teacher: the teacher layers the student keeps."
    )
    max_transfer_texts: int = Field(default=Stage1Config().max_transfer_texts, ge=0)
    stage1: TrainingKnobs = Stage1Config().training
    training: TrainingKnobs = Stage2Config().training


def _tiny(epochs: float, learning_rate: float) -> TrainingKnobs:
    return TrainingKnobs(
        epochs=epochs, learning_rate=learning_rate, batch_size=16, max_length=32, checkpoint_every=0
    )


def smoke_study_ops(seeds: tuple[int, ...] = (0,)) -> dict[str, StudyConfig]:
    """A few optimiser steps per run: enough to test the plumbing, not to compare variants."""
    study = StudyConfig(seeds=list(seeds), training=_tiny(1.0, 5e-4))
    recipe = RecipeStudyConfig(seeds=list(seeds), training=_tiny(1.0, 5e-4), head_training=_tiny(1.0, 1e-3))
    init = InitStudyConfig(
        seeds=list(seeds), max_transfer_texts=200, stage1=_tiny(1.0, 5e-4), training=_tiny(1.0, 5e-4)
    )
    return {
        "temperature_study": study,
        "alpha_study": study,
        "recipe_study": recipe,
        "data_study": study,
        "init_study": init,
    }


def demo_study_ops() -> dict[str, StudyConfig]:
    return {
        "temperature_study": StudyConfig(),
        "alpha_study": StudyConfig(),
        "recipe_study": RecipeStudyConfig(),
        "data_study": StudyConfig(),
        "init_study": InitStudyConfig(),
    }


STUDY_PRESETS = {"smoke": smoke_study_ops, "demo": demo_study_ops}
