"""The four studies: one asset each, one static partition per variant, every variant run once per seed.

Variants reuse what the model graph already paid for: the teacher's cached soft labels (the teacher never
runs again, except as the layer target of the combined recipe) and the stage-1 student. A partition stores its
per-seed metrics, not the students: every row can be reproduced from its seed, and fifteen models per study
would cost far more disk than they are worth. Training goes to a fresh folder that is deleted afterwards, so
a rerun trains from scratch (no resume from a finished checkpoint) and its training time is honest.
"""

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
from manga_distill_assets.assets.markdown import markdown_table
from manga_distill_assets.data.fingerprint import frame_fingerprint
from manga_distill_assets.distill.artifacts import load_model
from manga_distill_assets.distill.evaluation import classification_report, predict_logits
from manga_distill_assets.distill.layer_match import uniform_layer_map
from manga_distill_assets.distill.losses import OutputDistillation
from manga_distill_assets.distill.students import freeze_encoder
from manga_distill_assets.distill.training import (
    LabeledTexts,
    TrainingConfig,
    TrainingResult,
    train_baseline,
    train_combined,
    train_stage2,
)
from manga_distill_assets.distill.vocab import prune_vocabulary
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
Recipe = Literal["two_stage", "output_only", "feature_only", "combined"]
RECIPES: dict[str, Recipe] = {
    "recipe=two_stage": "two_stage",
    "recipe=output_only": "output_only",
    "recipe=feature_only": "feature_only",
    "recipe=combined": "combined",
}
DATA_MIXES = {
    "data=original": ("labeled",),
    "data=+paraphrases": ("labeled", "paraphrase"),
    "data=+unlabeled": ALL_ORIGINS,
}
STUDY_VARIANTS = {
    "temperature_study": TEMPERATURES,
    "alpha_study": ALPHAS,
    "recipe_study": RECIPES,
    "data_study": DATA_MIXES,
}


@dataclass(frozen=True)
class Variant:
    """What one partition trains: two_stage is stage 2 on the stage-1 student, as student_stage2 does."""

    temperature: float
    alpha: float
    recipe: Recipe = "two_stage"
    origins: tuple[str, ...] = ALL_ORIGINS

    @property
    def output(self) -> OutputDistillation:
        return OutputDistillation(self.temperature, self.alpha)


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


@dataclass(frozen=True)
class SeedRun:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    result: TrainingResult
    seconds: float
    transfer_rows: int


def _partitions(variants: dict) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(variants))


def _study_asset(name: str, variants: dict, description: str):
    return dg.asset(
        name=name,
        group_name=GROUP,
        code_version="1",
        kinds={"pytorch"},
        partitions_def=_partitions(variants),
        pool=GPU_POOL,
        op_tags=GPU_OP_TAGS,
        description=description,
    )


@_study_asset("temperature_study", TEMPERATURES, "Stage 2 at T = 1, 2, 4, 8, 20 (α fixed), per seed.")
def temperature_study(
    context: dg.AssetExecutionContext,
    config: StudyConfig,
    teacher_model: dict,
    student_stage1: dict,
    teacher_soft_labels: pd.DataFrame,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
) -> dg.Output[pd.DataFrame]:
    variant = Variant(temperature=TEMPERATURES[context.partition_key], alpha=config.alpha)
    inputs = _load_inputs(teacher_model, student_stage1, teacher_soft_labels, labeled_intents, model_store)
    return run_study(context, "temperature_study", variant, config, inputs, training_workspace)


@_study_asset("alpha_study", ALPHAS, "Stage 2 at α = 0.3, 0.5, 0.7, 0.9 (T fixed), per seed.")
def alpha_study(
    context: dg.AssetExecutionContext,
    config: StudyConfig,
    teacher_model: dict,
    student_stage1: dict,
    teacher_soft_labels: pd.DataFrame,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
) -> dg.Output[pd.DataFrame]:
    variant = Variant(temperature=config.temperature, alpha=ALPHAS[context.partition_key])
    inputs = _load_inputs(teacher_model, student_stage1, teacher_soft_labels, labeled_intents, model_store)
    return run_study(context, "alpha_study", variant, config, inputs, training_workspace)


@_study_asset(
    "recipe_study",
    RECIPES,
    "two_stage (stage 1 then stage 2), output_only (stage 2 from the initial student), feature_only "
    "(stage 1, then only the classifier head fitted on hard labels), combined (all terms at once).",
)
def recipe_study(
    context: dg.AssetExecutionContext,
    config: RecipeStudyConfig,
    teacher_model: dict,
    student_stage1: dict,
    teacher_soft_labels: pd.DataFrame,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
) -> dg.Output[pd.DataFrame]:
    variant = Variant(
        temperature=config.temperature, alpha=config.alpha, recipe=RECIPES[context.partition_key]
    )
    inputs = _load_inputs(teacher_model, student_stage1, teacher_soft_labels, labeled_intents, model_store)
    return run_study(context, "recipe_study", variant, config, inputs, training_workspace)


@_study_asset(
    "data_study",
    DATA_MIXES,
    "Stage-2 transfer set: labelled train only, + kept paraphrases, + unlabeled queries (cumulative).",
)
def data_study(
    context: dg.AssetExecutionContext,
    config: StudyConfig,
    teacher_model: dict,
    student_stage1: dict,
    teacher_soft_labels: pd.DataFrame,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
) -> dg.Output[pd.DataFrame]:
    variant = Variant(
        temperature=config.temperature, alpha=config.alpha, origins=DATA_MIXES[context.partition_key]
    )
    inputs = _load_inputs(teacher_model, student_stage1, teacher_soft_labels, labeled_intents, model_store)
    return run_study(context, "data_study", variant, config, inputs, training_workspace)


def _load_inputs(
    teacher_model: dict,
    student_stage1: dict,
    soft_labels: pd.DataFrame,
    labeled: pd.DataFrame,
    store: ModelStore,
) -> StudyInputs:
    teacher_ref = matching_ref(teacher_model, labeled, "distillation_experiments")
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
    teacher_accuracy = _score(inputs.teacher, inputs.teacher_tokenizer, texts, truth, names)["accuracy"]
    rows = []
    for seed in config.seeds:
        context.log.info(f"{study} {context.partition_key}: seed {seed}")
        with tempfile.TemporaryDirectory(dir=workspace.folder("experiments")) as tmp:
            run = _train_variant(context, variant, config, inputs, seed, Path(tmp))
        quality = _score(run.model, run.tokenizer, texts, truth, names)
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
            "temperature": variant.temperature,
            "alpha": variant.alpha,
            "recipe": variant.recipe,
            "transfer_origins": ", ".join(variant.origins),
        },
    )


def _score(
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
) -> SeedRun:
    training = dataclasses.replace(config.training.training_config(output_dir), seed=seed, resume=False)
    progress = log_progress(context, f"{variant.recipe} seed {seed}")
    rows = transfer_rows(inputs.soft_labels, variant.origins)
    if variant.recipe == "feature_only":
        head_knobs = _recipe_config(config, variant).head_training
        head = dataclasses.replace(head_knobs.training_config(output_dir), seed=seed, resume=False)
        return _fit_head(inputs, head, progress)
    if variant.recipe in ("output_only", "combined"):
        recipe_config = _recipe_config(config, variant)
        return _from_initial_student(variant, recipe_config, inputs, rows, training, seed, progress)
    student, tokenizer = load_model(inputs.store.get(inputs.stage1_ref))
    started = time.perf_counter()
    result = train_stage2(
        student,
        tokenizer,
        rows["text"].tolist(),
        _logits(rows),
        rows["label"].astype(int).tolist(),
        training,
        output=variant.output,
        progress=progress,
    )
    return SeedRun(result.model, tokenizer, result, time.perf_counter() - started, len(rows))


def _recipe_config(config: StudyConfig, variant: Variant) -> RecipeStudyConfig:
    if not isinstance(config, RecipeStudyConfig):
        raise TypeError(
            f"The {variant.recipe} recipe needs the student shape and layer map of a RecipeStudyConfig; "
            f"got a {type(config).__name__}. Run it as a partition of recipe_study."
        )
    return config


def transfer_rows(soft_labels: pd.DataFrame, origins: Sequence[str]) -> pd.DataFrame:
    """The stage-2 transfer set restricted to `origins`, with the teacher's paraphrase filter applied."""
    chosen = soft_labels["keep"] & soft_labels["origin"].isin(list(origins))
    return soft_labels[chosen].reset_index(drop=True)


def _logits(rows: pd.DataFrame) -> np.ndarray:
    return np.stack(rows["logits"].to_numpy()).astype(np.float32)


def _from_initial_student(
    variant: Variant,
    config: RecipeStudyConfig,
    inputs: StudyInputs,
    rows: pd.DataFrame,
    training: TrainingConfig,
    seed: int,
    progress: Callable[[dict], None],
) -> SeedRun:
    """output_only and combined start where student_stage1 started: the student `build_student` makes."""
    student = config.student.build(inputs.teacher, inputs.id2label, seed)
    tokenizer = inputs.teacher_tokenizer
    texts, labels = rows["text"].tolist(), rows["label"].astype(int).tolist()
    started = time.perf_counter()
    if variant.recipe == "combined":
        matches = config.matches() or uniform_layer_map(
            student.config.num_hidden_layers, inputs.teacher.config.num_hidden_layers
        )
        result = train_combined(
            student,
            inputs.teacher,
            tokenizer,
            texts,
            _logits(rows),
            labels,
            matches,
            training,
            output=variant.output,
            beta=config.beta,
            gamma=config.gamma,
            progress=progress,
        )
    else:
        result = train_stage2(
            student,
            tokenizer,
            texts,
            _logits(rows),
            labels,
            training,
            output=variant.output,
            progress=progress,
        )
    seconds = time.perf_counter() - started
    model = result.model
    if config.prune_vocabulary:
        kept = [*inputs.labeled.loc[inputs.labeled["split"] != "test", "text"], *texts]
        pruning = prune_vocabulary(model, tokenizer, kept)
        model, tokenizer = pruning.model, pruning.tokenizer
    return SeedRun(model, tokenizer, result, seconds, len(rows))


def _fit_head(inputs: StudyInputs, training: TrainingConfig, progress: Callable[[dict], None]) -> SeedRun:
    """feature_only: stage 1 alone. Its encoder stays frozen and only the classifier head learns, on the
    labelled train split's hard labels, so the score measures what intermediate-layer distillation alone
    gave the representation."""
    student, tokenizer = load_model(inputs.store.get(inputs.stage1_ref))
    freeze_encoder(student)
    names = label_names(inputs.labeled)
    train, validation = split(inputs.labeled, "train"), split(inputs.labeled, "validation")
    started = time.perf_counter()
    result = train_baseline(
        student,
        tokenizer,
        LabeledTexts(train["text"].tolist(), label_ids(train["label"], names)),
        LabeledTexts(validation["text"].tolist(), label_ids(validation["label"], names)),
        training,
        progress=progress,
    )
    return SeedRun(result.model, tokenizer, result, time.perf_counter() - started, len(train))


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
