"""The no-distillation baselines: the student's shape trained on hard labels alone, with the same budget and
early stopping as the teacher, in two rows so the report can tell apart what the student owes to its start
and what it owes to the teacher's soft labels.

- `baseline_student` starts from the pre-trained base model's layers, as a user without a teacher would: the
  gap between it and the distilled student is what distillation bought (`distillation_gain`).
- `baseline_student_teacher_init` starts from the refined teacher's layers, as the distilled student does:
  it already inherits the teacher's knowledge through its weights.

With `student.init: general` both start from the general student (and are then the same run): a student of
that shape owes the teacher nothing until distillation, so its fair baseline is the general student trained
on the labels.
"""

from dataclasses import dataclass

import dagster as dg
import pandas as pd
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.general.student import general_start
from manga_distill_assets.assets.intent_classifier.common import (
    GPU_OP_TAGS,
    GPU_POOL,
    label_ids,
    label_names,
    log_progress,
    loss_curve,
    matching_ref,
    ref_output,
    split,
)
from manga_distill_assets.assets.intent_classifier.config import BaselineConfig
from manga_distill_assets.assets.intent_classifier.students import save_and_put, vocabulary_texts
from manga_distill_assets.assets.intent_classifier.teacher import default_teacher_base, validation_scores
from manga_distill_assets.data.fingerprint import lines_fingerprint
from manga_distill_assets.distill.artifacts import load_model
from manga_distill_assets.distill.students import count_parameters, from_pretrained
from manga_distill_assets.distill.training import LabeledTexts, train_baseline
from manga_distill_assets.distill.vocab import prune_vocabulary
from manga_distill_assets.resources.model_store import ModelRef, ModelStore
from manga_distill_assets.resources.workspace import TrainingWorkspace


@dataclass(frozen=True)
class Start:
    """The model a baseline's layers come from. A `fresh_head` learns at `head_learning_rate`; a head that
    comes trained from the teacher learns at the encoder's rate, since a fresh head's rate would undo it.
    Under `init: general` the student's head is new whatever the start, so it learns at the head's rate."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    described: str
    fresh_head: bool


def _pretrained_source(
    config: BaselineConfig, teacher_ref: ModelRef, store: ModelStore, id2label: dict[int, str]
) -> Start:
    """The base model the teacher was fine-tuned from, with a fresh head: no weight has seen a label."""
    del teacher_ref, store
    base = config.base_model or default_teacher_base()
    config.student.check_teacher_depth(base, "student")
    model = from_pretrained(base, id2label, seed=config.training.seed)
    return Start(model, AutoTokenizer.from_pretrained(base), base, fresh_head=True)


def _teacher_source(
    config: BaselineConfig, teacher_ref: ModelRef, store: ModelStore, id2label: dict[int, str]
) -> Start:
    """The refined teacher, as stage 1 starts from it."""
    del id2label
    folder = store.get(teacher_ref)
    config.student.check_teacher_depth(folder, "student")
    model, tokenizer = load_model(folder)
    return Start(model, tokenizer, f"teacher {teacher_ref.sha256[:16]}", fresh_head=False)


def _baseline_asset(name: str, source, teacher: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        group_name="intent_classifier",
        code_version="4",
        kinds={"pytorch"},
        ins={"teacher": dg.AssetIn(teacher), "general_student": dg.AssetIn(dagster_type=dg.Nothing)},
        automation_condition=on_input_content_change(optional=["general_student"]),
        pool=GPU_POOL,
        op_tags=GPU_OP_TAGS,
        description=description,
    )
    def baseline(
        context: dg.AssetExecutionContext,
        config: BaselineConfig,
        teacher: dict,
        labeled_intents: pd.DataFrame,
        model_store: ModelStore,
        training_workspace: TrainingWorkspace,
    ) -> dg.Output[dict]:
        teacher_ref = matching_ref(teacher, labeled_intents, name)
        names = label_names(labeled_intents)
        id2label = dict(enumerate(names))
        start = source(config, teacher_ref, model_store, id2label)
        tokenizer = start.tokenizer
        general, general_sha = general_start(
            context, model_store, config.student.init, start.model.config.vocab_size, name
        )
        student = config.student.build(start.model, id2label, config.training.seed, general)
        knobs = config.training
        if not start.fresh_head and general is None:
            knobs = knobs.model_copy(update={"head_learning_rate": None})
        train, validation = split(labeled_intents, "train"), split(labeled_intents, "validation")
        with training_workspace.checkpoints(
            name,
            teacher_ref.sha256,
            lines_fingerprint(train["text"]),
            config.model_copy(update={"training": knobs}).model_dump_json(),
            general_sha,
        ) as checkpoints:
            result = train_baseline(
                student,
                tokenizer,
                LabeledTexts(train["text"].tolist(), label_ids(train["label"], names)),
                LabeledTexts(validation["text"].tolist(), label_ids(validation["label"], names)),
                knobs.training_config(checkpoints),
                progress=log_progress(context, name),
            )
            model, bytes_saved = result.model, 0
            scores = validation_scores(model, tokenizer, validation, names, knobs.max_length)
            if config.prune_vocabulary:
                pruning = prune_vocabulary(model, tokenizer, vocabulary_texts(labeled_intents, []))
                model, tokenizer, bytes_saved = pruning.model, pruning.tokenizer, pruning.bytes_saved
            metrics = {**{k: float(v) for k, v in result.metrics.items()}, **scores}
            ref = save_and_put(model_store, model, tokenizer, name, id2label, metrics)
        context.log.info(
            f"{name}: validation accuracy {scores['validation_accuracy']:.4f} after "
            f"{result.epochs_run:.1f} epochs ({result.stop_reason})"
        )
        return ref_output(
            ref,
            {
                "started_from": start.described,
                "parameters": count_parameters(model),
                "vocabulary_bytes_saved": bytes_saved,
                "epochs_run": result.epochs_run,
                "stop_reason": result.stop_reason,
                "loss_curve": loss_curve(result.log_history),
                **metrics,
            },
        )

    return baseline


baseline_student = _baseline_asset(
    "baseline_student",
    _pretrained_source,
    "teacher_model",
    "The student's shape from the pre-trained base model's layers, trained on hard labels alone: what a user "
    "gets without a teacher, and what distillation has to beat.",
)
baseline_student_teacher_init = _baseline_asset(
    "baseline_student_teacher_init",
    _teacher_source,
    "teacher_refined",
    "The student's shape from the refined teacher's layers, trained on hard labels alone: how much of the "
    "student's quality its start inherits from the teacher, apart from the soft labels.",
)
