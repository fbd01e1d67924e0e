"""Where the student starts: the general student, the teacher's own layers, or the general student's shape
with random weights, each then distilled as the graph distils its student (stage 1 on the transfer texts, the
vocabulary pruned, stage 2 on the refined teacher's soft labels), once per seed.

`init=general` against `init=config` is what the general stage buys a narrow student; `init=teacher` is the
graph's default student, for scale. Rows are the other studies' columns, so `experiment_report` summarises
this study like the rest.
"""

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from transformers import AutoConfig, PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.assets.experiments.config import InitStudyConfig
from manga_distill_assets.assets.experiments.studies import (
    ALL_ORIGINS,
    GROUP,
    RESULT_COLUMNS,
    score_texts,
    study_output,
)
from manga_distill_assets.assets.intent_classifier.common import (
    GPU_OP_TAGS,
    GPU_POOL,
    label_ids,
    label_names,
    log_progress,
    matching_ref,
    split,
)
from manga_distill_assets.assets.intent_classifier.students import kept_rows, transfer_texts, vocabulary_texts
from manga_distill_assets.distill.artifacts import load_model
from manga_distill_assets.distill.layer_match import uniform_layer_map
from manga_distill_assets.distill.losses import OutputDistillation
from manga_distill_assets.distill.students import StudentSpec, build_student, from_pretrained
from manga_distill_assets.distill.training import LabeledTexts, train_stage1, train_stage2
from manga_distill_assets.distill.vocab import prune_vocabulary
from manga_distill_assets.resources.model_store import ModelRef, ModelStore
from manga_distill_assets.resources.workspace import TrainingWorkspace

INIT_STUDY = "init_study"
INIT_VARIANTS = {"init=general": "general", "init=teacher": "teacher", "init=config": "config"}


@dg.asset(
    name=INIT_STUDY,
    group_name=GROUP,
    code_version="1",
    kinds={"pytorch"},
    partitions_def=dg.StaticPartitionsDefinition(list(INIT_VARIANTS)),
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    description="The student's start: general student vs teacher layers vs random weights in the general "
    "student's shape, each through stage 1 and stage 2, per seed.",
)
def init_study(
    context: dg.AssetExecutionContext,
    config: InitStudyConfig,
    teacher_refined: dict,
    general_student: dict,
    refined_soft_labels: pd.DataFrame,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
) -> dg.Output[pd.DataFrame]:
    init = INIT_VARIANTS[context.partition_key]
    teacher_ref = matching_ref(teacher_refined, labeled_intents, INIT_STUDY)
    teacher, tokenizer = load_model(model_store.get(teacher_ref))
    names = label_names(labeled_intents)
    rows = kept_rows(refined_soft_labels, ALL_ORIGINS)
    validation, test = split(labeled_intents, "validation"), split(labeled_intents, "test")
    stage1_texts = transfer_texts(refined_soft_labels, config.max_transfer_texts)
    inputs = Inputs(
        teacher=teacher,
        tokenizer=tokenizer,
        id2label={int(key): label for key, label in teacher_ref.label_map.items()},
        names=names,
        stage1_texts=stage1_texts,
        vocabulary_texts=vocabulary_texts(labeled_intents, stage1_texts),
        stage2_rows=rows,
        stage2_logits=np.stack(rows["logits"].to_numpy()).astype(np.float32),
        validation=LabeledTexts(validation["text"].tolist(), label_ids(validation["label"], names)),
        test=LabeledTexts(test["text"].tolist(), label_ids(test["label"], names)),
    )
    general_ref = ModelRef.from_dict(general_student)
    general = model_store.get(general_ref)
    teacher_accuracy = _score(teacher, tokenizer, inputs)["accuracy"]
    results = []
    for seed in config.seeds:
        context.log.info(f"{INIT_STUDY} {context.partition_key}: seed {seed}")
        with tempfile.TemporaryDirectory(dir=training_workspace.folder("experiments")) as tmp:
            student = _initial_student(init, config, inputs, general, seed)
            row = _distil_and_score(context, config, inputs, student, seed, Path(tmp))
        row.update(
            study=INIT_STUDY,
            variant=context.partition_key,
            seed=seed,
            teacher_accuracy=teacher_accuracy,
            retention=row["accuracy"] / max(teacher_accuracy, 1e-12),
        )
        results.append(row)
    frame = pd.DataFrame(results, columns=RESULT_COLUMNS)
    return study_output(context, frame, {"init": init, "general_student": general_ref.uri})


@dataclass(frozen=True)
class Inputs:
    """What every seed of a partition shares, read and arranged once: the teacher, the transfer texts of
    stage 1, the texts whose vocabulary the student keeps, the cached soft labels of stage 2, and the
    validation and test splits."""

    teacher: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    id2label: dict[int, str]
    names: list[str]
    stage1_texts: list[str]
    vocabulary_texts: list[str]
    stage2_rows: pd.DataFrame
    stage2_logits: np.ndarray
    validation: LabeledTexts
    test: LabeledTexts


def _initial_student(
    init: str, config: InitStudyConfig, inputs: Inputs, general: Path, seed: int
) -> PreTrainedModel:
    if init == "general":
        return from_pretrained(str(general), inputs.id2label, seed=seed)
    if init == "teacher":
        layers = config.student.model_copy(update={"init": "teacher"})
        return layers.build(inputs.teacher, inputs.id2label, seed)
    shape = AutoConfig.from_pretrained(general)
    spec = StudentSpec(
        shape.num_hidden_layers, shape.hidden_size, shape.num_attention_heads, shape.intermediate_size
    )
    return build_student("config", inputs.teacher, inputs.id2label, seed, spec=spec)


def _distil_and_score(
    context: dg.AssetExecutionContext,
    config: InitStudyConfig,
    inputs: Inputs,
    student: PreTrainedModel,
    seed: int,
    folder: Path,
) -> dict:
    fresh = {"seed": seed, "resume": False}
    started = time.perf_counter()
    matches = uniform_layer_map(student.config.num_hidden_layers, inputs.teacher.config.num_hidden_layers)
    stage1 = train_stage1(
        student,
        inputs.teacher,
        inputs.tokenizer,
        inputs.stage1_texts,
        matches,
        dataclasses.replace(config.stage1.training_config(folder / "stage1"), **fresh),
        progress=log_progress(context, f"stage1 seed {seed}"),
    )
    pruning = prune_vocabulary(stage1.model, inputs.tokenizer, inputs.vocabulary_texts)
    rows = inputs.stage2_rows
    stage2 = train_stage2(
        pruning.model,
        pruning.tokenizer,
        rows["text"].tolist(),
        inputs.stage2_logits,
        rows["label"].astype(int).tolist(),
        dataclasses.replace(config.training.training_config(folder / "stage2"), **fresh),
        output=OutputDistillation(config.temperature, config.alpha),
        progress=log_progress(context, f"stage2 seed {seed}"),
        validation=inputs.validation,
    )
    seconds = time.perf_counter() - started
    quality = _score(stage2.model, pruning.tokenizer, inputs)
    return {
        "accuracy": quality["accuracy"],
        "macro_f1": quality["macro_f1"],
        "training_seconds": seconds,
        "final_loss": stage2.final_loss,
        "optimizer_steps": stage1.optimizer_steps + stage2.optimizer_steps,
        "transfer_rows": len(rows),
    }


def _score(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, inputs: Inputs) -> dict:
    return score_texts(model, tokenizer, inputs.test.texts, inputs.test.labels, inputs.names)


INIT_STUDY_JOB = dg.define_asset_job(
    f"{INIT_STUDY}_job",
    selection=dg.AssetSelection.assets(INIT_STUDY),
    description=f"{INIT_STUDY}, one run per variant (`dagster job backfill -j {INIT_STUDY}_job --noprompt`).",
)
