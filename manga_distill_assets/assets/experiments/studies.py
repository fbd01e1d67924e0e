"""The four studies: one asset each, built by one factory over the study table; one static partition per
variant, every variant run once per seed.

Variants reuse what the model graph already paid for: the refined teacher's cached soft labels (the teacher
never runs again, except as the layer target of the combined recipe) and the stage-1 student. A partition
stores its per-seed metrics, not the students: every row can be reproduced from its seed, and fifteen models
per study would cost far more disk than they are worth. Training goes to a fresh folder that is deleted
afterwards, so a rerun trains from scratch (no resume from a finished checkpoint) and its training time is
honest. How each recipe trains is `distill.recipes.RECIPES`; this module only loads inputs, builds the
starting student and scores.
"""

import dataclasses
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.assets.experiments.config import RecipeStudyConfig, StudyConfig
from manga_distill_assets.assets.intent_classifier.common import (
    GPU_OP_TAGS,
    GPU_POOL,
    label_ids,
    label_names,
    log_progress,
    matching_ref,
    split,
)
from manga_distill_assets.assets.intent_classifier.students import kept_rows
from manga_distill_assets.assets.markdown import markdown_table
from manga_distill_assets.data.fingerprint import frame_fingerprint
from manga_distill_assets.distill.artifacts import load_model
from manga_distill_assets.distill.evaluation import classification_report, predict_logits
from manga_distill_assets.distill.losses import OutputDistillation
from manga_distill_assets.distill.recipes import RECIPES, RecipeInputs, RecipeRun, StudentStart
from manga_distill_assets.distill.students import freeze_encoder
from manga_distill_assets.distill.training import LabeledTexts
from manga_distill_assets.resources.model_store import ModelRef, ModelStore
from manga_distill_assets.resources.workspace import TrainingWorkspace

GROUP = "distillation_experiments"
ALL_ORIGINS = ("labeled", "paraphrase", "unlabeled")
RESULT_COLUMNS = [
    "study",
    "variant",
    "seed",
    "accuracy",
    "macro_f1",
    "teacher_accuracy",
    "retention",
    "training_seconds",
    "final_loss",
    "optimizer_steps",
    "transfer_rows",
]

TEMPERATURES = {"T=1": 1.0, "T=2": 2.0, "T=4": 4.0, "T=8": 8.0, "T=20": 20.0}
ALPHAS = {"alpha=0.3": 0.3, "alpha=0.5": 0.5, "alpha=0.7": 0.7, "alpha=0.9": 0.9}
RECIPE_VARIANTS = {f"recipe={name}": name for name in RECIPES}
DATA_MIXES = {
    "data=original": ("labeled",),
    "data=+paraphrases": ("labeled", "paraphrase"),
    "data=+unlabeled": ALL_ORIGINS,
}


@dataclass(frozen=True)
class Variant:
    """What one partition trains: two_stage is stage 2 on the stage-1 student, as student_stage2 does."""

    temperature: float
    alpha: float
    recipe: str = "two_stage"
    origins: tuple[str, ...] = ALL_ORIGINS

    @property
    def output(self) -> OutputDistillation:
        return OutputDistillation(self.temperature, self.alpha)


@dataclass(frozen=True)
class Study:
    """One row of the study table: its partitions, its config class, and how a partition's value (a T, an α,
    a recipe or a data mix) becomes the variant it trains."""

    name: str
    variants: Mapping[str, Any]
    config_type: type[StudyConfig]
    description: str
    variant: Callable[[StudyConfig, Any], Variant]


STUDIES = (
    Study(
        "temperature_study",
        TEMPERATURES,
        StudyConfig,
        "Stage 2 at T = 1, 2, 4, 8, 20 (α fixed), per seed.",
        lambda config, temperature: Variant(temperature=temperature, alpha=config.alpha),
    ),
    Study(
        "alpha_study",
        ALPHAS,
        StudyConfig,
        "Stage 2 at α = 0.3, 0.5, 0.7, 0.9 (T fixed), per seed.",
        lambda config, alpha: Variant(temperature=config.temperature, alpha=alpha),
    ),
    Study(
        "recipe_study",
        RECIPE_VARIANTS,
        RecipeStudyConfig,
        "two_stage (stage 1 then stage 2), output_only (stage 2 from the initial student), feature_only "
        "(stage 1, then only the classifier head fitted on hard labels), combined (all terms at once).",
        lambda config, recipe: Variant(temperature=config.temperature, alpha=config.alpha, recipe=recipe),
    ),
    Study(
        "data_study",
        DATA_MIXES,
        StudyConfig,
        "Stage-2 transfer set: labelled train only, + kept paraphrases, + unlabeled queries (cumulative).",
        lambda config, origins: Variant(temperature=config.temperature, alpha=config.alpha, origins=origins),
    ),
)
STUDY_VARIANTS = {study.name: study.variants for study in STUDIES}


@dataclass(frozen=True)
class StudyInputs:
    """The model graph's cached outputs, loaded once per partition and shared by its seeds."""

    teacher: PreTrainedModel
    teacher_tokenizer: PreTrainedTokenizerBase
    stage1_ref: ModelRef
    id2label: dict[int, str]
    soft_labels: pd.DataFrame
    labeled: pd.DataFrame
    store: ModelStore


def study_asset(study: Study) -> dg.AssetsDefinition:
    """The asset of one study; its config is the study's own class (the recipe study has more knobs)."""
    config_type = study.config_type

    @dg.asset(
        name=study.name,
        group_name=GROUP,
        code_version="1",
        kinds={"pytorch"},
        partitions_def=dg.StaticPartitionsDefinition(list(study.variants)),
        pool=GPU_POOL,
        op_tags=GPU_OP_TAGS,
        description=study.description,
    )
    def _study(
        context: dg.AssetExecutionContext,
        config: config_type,  # type: ignore[valid-type]
        teacher_refined: dict,
        student_stage1: dict,
        refined_soft_labels: pd.DataFrame,
        labeled_intents: pd.DataFrame,
        model_store: ModelStore,
        training_workspace: TrainingWorkspace,
    ) -> dg.Output[pd.DataFrame]:
        variant = study.variant(config, study.variants[context.partition_key])
        inputs = _load_inputs(
            teacher_refined, student_stage1, refined_soft_labels, labeled_intents, model_store
        )
        return run_study(context, study.name, variant, config, inputs, training_workspace)

    return _study


temperature_study, alpha_study, recipe_study, data_study = (study_asset(study) for study in STUDIES)


def _load_inputs(
    teacher: dict,
    student_stage1: dict,
    soft_labels: pd.DataFrame,
    labeled: pd.DataFrame,
    store: ModelStore,
) -> StudyInputs:
    teacher_ref = matching_ref(teacher, labeled, "distillation_experiments")
    teacher, tokenizer = load_model(store.get(teacher_ref))
    return StudyInputs(
        teacher=teacher,
        teacher_tokenizer=tokenizer,
        stage1_ref=matching_ref(student_stage1, labeled, "distillation_experiments"),
        id2label={int(key): label for key, label in teacher_ref.label_map.items()},
        soft_labels=soft_labels,
        labeled=labeled,
        store=store,
    )


def run_study(
    context: dg.AssetExecutionContext,
    study: str,
    variant: Variant,
    config: StudyConfig,
    inputs: StudyInputs,
    workspace: TrainingWorkspace,
) -> dg.Output[pd.DataFrame]:
    """Train and score the partition's variant once per seed; one row per seed."""
    test = split(inputs.labeled, "test")
    names = label_names(inputs.labeled)
    truth = label_ids(test["label"], names)
    texts = test["text"].tolist()
    teacher_accuracy = score_texts(inputs.teacher, inputs.teacher_tokenizer, texts, truth, names)["accuracy"]
    rows = []
    for seed in config.seeds:
        context.log.info(f"{study} {context.partition_key}: seed {seed}")
        with tempfile.TemporaryDirectory(dir=workspace.folder("experiments")) as tmp:
            run = _train_variant(context, variant, config, inputs, seed, Path(tmp))
        quality = score_texts(run.model, run.tokenizer, texts, truth, names)
        rows.append(
            {
                "study": study,
                "variant": context.partition_key,
                "seed": seed,
                "accuracy": quality["accuracy"],
                "macro_f1": quality["macro_f1"],
                "teacher_accuracy": teacher_accuracy,
                "retention": quality["accuracy"] / max(teacher_accuracy, 1e-12),
                "training_seconds": run.seconds,
                "final_loss": run.result.final_loss,
                "optimizer_steps": run.result.optimizer_steps,
                "transfer_rows": run.transfer_rows,
            }
        )
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    return study_output(
        context,
        frame,
        {
            "temperature": variant.temperature,
            "alpha": variant.alpha,
            "recipe": variant.recipe,
            "transfer_origins": ", ".join(variant.origins),
        },
    )


def study_output(
    context: dg.AssetExecutionContext, frame: pd.DataFrame, settings: dict[str, object]
) -> dg.Output[pd.DataFrame]:
    """One partition's per-seed rows, with the metadata `experiment_report` reads (`results`)."""
    return dg.Output(
        frame,
        # Training time varies run to run; the version names what the students learned and scored.
        data_version=dg.DataVersion(frame_fingerprint(frame.drop(columns="training_seconds"))),
        metadata={
            "variant": context.partition_key,
            "seeds": dg.MetadataValue.md(markdown_table(frame.drop(columns=["study"]).to_dict("records"))),
            "results": dg.MetadataValue.json(frame.to_dict("records")),
            "accuracy_mean": float(frame["accuracy"].mean()),
            "macro_f1_mean": float(frame["macro_f1"].mean()),
            "retention_mean": float(frame["retention"].mean()),
            "training_seconds_total": float(frame["training_seconds"].sum()),
            **settings,
        },
    )


def score_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    truth: list[int],
    names: list[str],
) -> dict:
    predictions = predict_logits(model, tokenizer, texts).argmax(axis=1).tolist()
    return classification_report(truth, predictions, names)


def _train_variant(
    context: dg.AssetExecutionContext,
    variant: Variant,
    config: StudyConfig,
    inputs: StudyInputs,
    seed: int,
    output_dir: Path,
) -> RecipeRun:
    settings = config.recipe_settings()
    recipe = RECIPES[variant.recipe]
    student, tokenizer = _starting_student(recipe.start, settings, inputs, seed)
    rows = kept_rows(inputs.soft_labels, variant.origins)
    names = label_names(inputs.labeled)
    train, validation = split(inputs.labeled, "train"), split(inputs.labeled, "validation")
    fresh = {"seed": seed, "resume": False}
    return recipe.train(
        RecipeInputs(
            student=student,
            tokenizer=tokenizer,
            teacher=inputs.teacher,
            transfer_texts=rows["text"].tolist(),
            transfer_logits=_logits(rows),
            transfer_labels=rows["label"].astype(int).tolist(),
            head_train=LabeledTexts(train["text"].tolist(), label_ids(train["label"], names)),
            head_validation=LabeledTexts(validation["text"].tolist(), label_ids(validation["label"], names)),
            training=dataclasses.replace(settings.training.training_config(output_dir), **fresh),
            head_training=dataclasses.replace(settings.head_training.training_config(output_dir), **fresh),
            output=variant.output,
            beta=settings.beta,
            gamma=settings.gamma,
            matches=settings.matches(),
            prune_texts=(
                inputs.labeled.loc[inputs.labeled["split"] != "test", "text"].tolist()
                if settings.prune_vocabulary
                else None
            ),
            progress=log_progress(context, f"{variant.recipe} seed {seed}"),
        )
    )


def _starting_student(
    start: StudentStart, settings: RecipeStudyConfig, inputs: StudyInputs, seed: int
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The stage-1 student (its encoder frozen for feature_only), or the initial student that
    `StudentShape.build` makes, where student_stage1 started."""
    if start == "initial":
        return settings.student.build(inputs.teacher, inputs.id2label, seed), inputs.teacher_tokenizer
    student, tokenizer = load_model(inputs.store.get(inputs.stage1_ref))
    if start == "stage1_frozen_encoder":
        freeze_encoder(student)
    return student, tokenizer


def _logits(rows: pd.DataFrame) -> np.ndarray:
    return np.stack(rows["logits"].to_numpy()).astype(np.float32)


STUDY_JOBS = [
    dg.define_asset_job(
        f"{study}_job",
        selection=dg.AssetSelection.assets(study),
        description=f"{study}, one run per variant.",
    )
    for study in STUDY_VARIANTS
]
"""One job per study, so that `dagster job backfill -j <study>_job --noprompt` launches every variant from the
CLI (the daemon runs them, one run per partition)."""
