"""`general_student`: the narrow encoder that `student_stage1` starts from under `init: general`."""

import json
import shutil
from pathlib import Path

import dagster as dg
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel

from manga_distill_assets.assets.general.config import GeneralStudentConfig
from manga_distill_assets.assets.intent_classifier.common import (
    GPU_OP_TAGS,
    GPU_POOL,
    log_progress,
    loss_curve,
)
from manga_distill_assets.assets.intent_classifier.teacher import default_teacher_base
from manga_distill_assets.data.fingerprint import lines_fingerprint
from manga_distill_assets.data.general_corpus import passages
from manga_distill_assets.distill.artifacts import save_model
from manga_distill_assets.distill.general import distill_general, load_encoder, narrow_encoder
from manga_distill_assets.distill.students import count_parameters, model_size_bytes
from manga_distill_assets.distill.training.stage1 import LOSS_TERMS
from manga_distill_assets.resources.general_corpus import GeneralCorpusSource
from manga_distill_assets.resources.model_store import ModelRef, ModelStore
from manga_distill_assets.resources.model_store.base import make_ref
from manga_distill_assets.resources.model_store.manifest import folder_sha256
from manga_distill_assets.resources.workspace import TrainingWorkspace

GENERAL_GROUP = "general_distillation"
KIND = "general_student"
FINISHED = "finished"
"""The trained encoder's folder inside its training workspace: a second run with the same corpus, base model
and config loads it instead of training again."""


@dg.asset(group_name=GENERAL_GROUP, code_version="1", kinds={"pytorch"}, pool=GPU_POOL, op_tags=GPU_OP_TAGS)
def general_student(
    context: dg.AssetExecutionContext,
    config: GeneralStudentConfig,
    general_corpus: GeneralCorpusSource,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
) -> dg.Output[dict]:
    """Embedding, hidden-state (through learned projections) and attention MSE against the base model over the
    corpus's passages. Its data version is a digest of the passages, the base model and the config, so the
    same corpus and base always give the same version, and a rerun reuses the trained encoder."""
    corpus = general_corpus.read()
    texts = passages((line for _, lines in corpus for line in lines), config.max_words)
    if config.max_passages:
        texts = texts[: config.max_passages]
    if not texts:
        names = ", ".join(name for name, _ in corpus)
        raise dg.Failure(
            description=f"The general corpus ({names}) holds no text; add text to it, or point "
            "MANGA_GENERAL_CORPUS at another corpus.",
            allow_retries=False,
        )
    base_name = config.base_model or default_teacher_base()
    identity = json.dumps([_base_identity(base_name), config.model_dump_json()])
    version = lines_fingerprint(texts, header=identity)
    workspace = training_workspace.folder(KIND, version)
    finished = workspace / FINISHED
    if (finished / "config.json").is_file():
        context.log.info(f"general_student: reusing the encoder trained for data version {version[:16]}")
        metadata = json.loads((workspace / "metadata.json").read_text())
        student = load_encoder(str(finished))
    else:
        student, metadata = _train(context, config, base_name, texts, workspace)
    ref = model_store.put(finished, kind=KIND, label_map={}, metrics={"final_loss": metadata["final_loss"]})
    return dg.Output(
        ref.to_dict(),
        data_version=dg.DataVersion(version),
        metadata={
            "uri": ref.uri,
            "sha256": ref.sha256,
            "base_model": base_name,
            "corpus_files": len(corpus),
            "passages": len(texts),
            "words": sum(len(text.split()) for text in texts),
            "parameters": count_parameters(student),
            "size_bytes": model_size_bytes(student),
            "optimizer_steps": metadata["optimizer_steps"],
            "final_loss": metadata["final_loss"],
            "train_runtime_s": metadata["train_runtime_s"],
            **{f"final_{term}": value for term, value in metadata.get("final_terms", {}).items()},
            "loss_curve": loss_curve(metadata["loss_curve"]),
        },
    )


def _train(
    context: dg.AssetExecutionContext,
    config: GeneralStudentConfig,
    base_name: str,
    texts: list[str],
    workspace: Path,
) -> tuple[PreTrainedModel, dict]:
    """Train the narrow encoder and leave it in `workspace / FINISHED`, its run's figures beside it (written
    first, so a finished folder always has them)."""
    base = load_encoder(base_name)
    tokenizer = AutoTokenizer.from_pretrained(base_name)
    student = narrow_encoder(config.shape.spec(), base, config.training.seed)
    result = distill_general(
        student,
        base,
        tokenizer,
        texts,
        config.training.training_config(workspace),
        progress=log_progress(context, "general"),
    )
    logged = [entry for entry in result.log_history if "loss" in entry and "step" in entry]
    metadata = {
        "optimizer_steps": result.optimizer_steps,
        "final_loss": result.final_loss,
        "final_terms": {term: logged[-1][term] for term in LOSS_TERMS} if logged else {},
        "train_runtime_s": float(result.log_history[-1].get("train_runtime", 0.0)),
        "loss_curve": [{"step": entry["step"], "loss": entry["loss"]} for entry in logged],
    }
    (workspace / "metadata.json").write_text(json.dumps(metadata))
    save_model(student, tokenizer, workspace / FINISHED, projections=result.projections)
    for checkpoint in workspace.glob("checkpoint-*"):  # they resume a cut-off run; a rerun reads FINISHED
        shutil.rmtree(checkpoint)
    return student, metadata


def _base_identity(name_or_path: str) -> str:
    """A local base model is known by its files' digest, a hub id by its name."""
    path = Path(name_or_path)
    return folder_sha256(path) if path.is_dir() else name_or_path


def general_start(
    context: dg.AssetExecutionContext, store: ModelStore, init: str, vocabulary: int, used_by: str
) -> tuple[Path | None, str]:
    """The latest `general_student`'s folder and sha256 under `init: general` (None and "" otherwise), checked
    against the teacher's vocabulary, for an asset that declares it as a dependency without loading it as an
    input (which would force every user to train it first)."""
    if init != "general":
        return None, ""
    ref = latest_general_student(context, used_by)
    folder = store.get(ref)
    check_same_vocabulary(folder, vocabulary, used_by)
    return folder, ref.sha256


def latest_general_student(context: dg.AssetExecutionContext, used_by: str) -> ModelRef:
    """The reference of the latest `general_student` materialisation, or a failure saying to make one."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey(KIND))
    if event is None or event.asset_materialization is None:
        raise dg.Failure(
            description=f"{used_by} starts from general_student (init: general), which has never been "
            f"materialised. Materialise general_student (group {GENERAL_GROUP}, about 20 minutes on 2 CPU "
            "cores) first, or choose another student init.",
            allow_retries=False,
        )
    metadata = event.asset_materialization.metadata
    return make_ref(metadata["uri"].value, metadata["sha256"].value, KIND, {}, {})


def check_same_vocabulary(general: Path, teacher_vocabulary: int, used_by: str) -> None:
    """The task stage feeds the teacher's token ids to the general student: both must share a vocabulary."""
    size = AutoConfig.from_pretrained(general).vocab_size
    if size != teacher_vocabulary:
        raise dg.Failure(
            description=f"{used_by}: general_student has a vocabulary of {size} tokens and the teacher "
            f"{teacher_vocabulary}, so it was distilled from another base model. Set general_student's "
            "base_model to the teacher's base_model and materialise it again.",
            allow_retries=False,
        )
