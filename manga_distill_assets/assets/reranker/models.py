"""The reranker's teacher, its cached scores of the transfer pairs, and the 4-layer student distilled
from them."""

import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.general.student import general_start
from manga_distill_assets.assets.intent_classifier.common import (
    GPU_OP_TAGS,
    GPU_POOL,
    log_progress,
    loss_curve,
    ref_output,
)
from manga_distill_assets.assets.intent_classifier.teacher import default_teacher_base
from manga_distill_assets.assets.reranker.config import (
    PrunedWidth,
    RerankScoresConfig,
    RerankStudentConfig,
    RerankTeacherConfig,
)
from manga_distill_assets.data.fingerprint import frame_fingerprint
from manga_distill_assets.data.rerank_transfer import candidate_lists, pair_key, transfer_pairs
from manga_distill_assets.distill.artifacts import load_model, save_model
from manga_distill_assets.distill.cross_encoders import (
    RELEVANCE_LABEL,
    TrainedReranker,
    encode_pairs,
    match_teacher_layers,
    pair_scores,
    train_student_reranker,
    train_teacher_reranker,
)
from manga_distill_assets.distill.ranking_metrics import ndcg_at, per_query
from manga_distill_assets.distill.students import (
    count_parameters,
    from_pretrained,
    from_teacher,
    model_size_bytes,
)
from manga_distill_assets.distill.training.config import resolve_precision
from manga_distill_assets.distill.vocab import prune_vocabulary
from manga_distill_assets.distill.width_pruning import activation_importance, prunable, prune_width
from manga_distill_assets.resources.logit_cache import LogitCache
from manga_distill_assets.resources.model_store import ModelRef, ModelStore
from manga_distill_assets.resources.workspace import TrainingWorkspace

CALIBRATION_BATCH = 64
"""Transfer pairs per forward pass while the width pruning measures importance."""

SCORE_COLUMNS = ["query_id", "query", "doc_id", "doc", "origin", "teacher_score"]


def split_rows(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame[frame["split"] == name].reset_index(drop=True)


def validation_ndcg_at_3(model, tokenizer, rerank_queries: pd.DataFrame) -> float:
    rows = split_rows(rerank_queries, "validation")
    if rows.empty:
        return float("nan")
    rows["score"] = pair_scores(model, tokenizer, rows["query"].tolist(), rows["doc"].tolist())
    return ndcg_at(per_query(rows, "grade"), per_query(rows, "score"), 3)


def _store_ranker(
    context: dg.AssetExecutionContext,
    model_store: ModelStore,
    kind: str,
    model,
    tokenizer,
    rerank_queries: pd.DataFrame,
) -> tuple[ModelRef, float, dict]:
    """Score a trained cross-encoder on the validation split, store it with that score, and describe it."""
    ndcg = validation_ndcg_at_3(model, tokenizer, rerank_queries)
    with tempfile.TemporaryDirectory() as tmp:
        ref = model_store.put(
            save_model(model, tokenizer, Path(tmp) / kind),
            kind=kind,
            label_map=RELEVANCE_LABEL,
            metrics={"validation_ndcg_at_3": ndcg},
        )
    context.log.info(f"{kind} validation NDCG@3 {ndcg:.4f}")
    described = {
        "validation_ndcg_at_3": ndcg,
        "parameters": count_parameters(model),
        "size_bytes": model_size_bytes(model),
    }
    return ref, ndcg, described


@dg.asset(
    group_name="reranker",
    code_version="5",
    kinds={"pytorch"},
    automation_condition=on_input_content_change(),
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    check_specs=[dg.AssetCheckSpec("reranker_teacher_validation_ndcg", asset="reranker_teacher")],
)
def reranker_teacher(
    context: dg.AssetExecutionContext,
    config: RerankTeacherConfig,
    rerank_queries: pd.DataFrame,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
):
    """A cross-encoder fine-tuned on the train split's graded pairs, or a registered cross-encoder folder."""
    knobs = config.training
    if config.registered_cross_encoder:
        model, tokenizer = load_model(Path(config.registered_cross_encoder))
        if model.config.num_labels != 1:
            raise dg.Failure(
                description=f"{config.registered_cross_encoder} has {model.config.num_labels} outputs; a "
                "cross-encoder reranker has one (a relevance score). Register a cross-encoder folder.",
                allow_retries=False,
            )
        steps, history, top_grade = 0, [], None
        ref, ndcg, described = _store_ranker(
            context, model_store, "reranker_teacher", model, tokenizer, rerank_queries
        )
    else:
        train = split_rows(rerank_queries, "train")
        if train.empty:
            raise dg.Failure(
                description="reranker_teacher: rerank_queries has no train rows, so there is nothing to "
                "fine-tune a teacher on. Give the relevance file a train split, or register a trained "
                "cross-encoder (reranker_teacher's registered_cross_encoder).",
                allow_retries=False,
            )
        top_grade = int(rerank_queries["grade"].max())
        base = config.base_model or default_teacher_base()
        model = from_pretrained(base, RELEVANCE_LABEL, seed=knobs.seed)
        tokenizer = AutoTokenizer.from_pretrained(base)
        if config.max_train_pairs and len(train) > config.max_train_pairs:
            train = train.sample(config.max_train_pairs, random_state=knobs.seed)
        with training_workspace.checkpoints(
            "reranker_teacher", frame_fingerprint(train), config.model_dump_json()
        ) as checkpoints:
            result = train_teacher_reranker(
                model,
                tokenizer,
                train["query"].tolist(),
                train["doc"].tolist(),
                train["grade"].tolist(),
                knobs.settings(),
                checkpoints,
                max_grade=top_grade,
                progress=log_progress(context, "reranker_teacher"),
            )
            model, tokenizer, steps, history = result.model, result.tokenizer, result.steps, result.history
            ref, ndcg, described = _store_ranker(
                context, model_store, "reranker_teacher", model, tokenizer, rerank_queries
            )
    yield ref_output(
        ref,
        {
            **described,
            "registered": bool(config.registered_cross_encoder),
            "train_steps": steps,
            **({"target_top_grade": top_grade} if top_grade is not None else {}),
            "precision": "not trained"
            if config.registered_cross_encoder
            else resolve_precision(knobs.precision),
            "loss": loss_curve(history),
        },
    )
    yield dg.AssetCheckResult(
        check_name="reranker_teacher_validation_ndcg",
        passed=bool(ndcg >= config.min_validation_ndcg_at_3),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"validation_ndcg_at_3": ndcg, "floor": config.min_validation_ndcg_at_3},
    )


@dg.asset(
    group_name="reranker",
    code_version="1",
    kinds={"pytorch", "parquet"},
    ins={"unlabeled_queries": dg.AssetIn(partition_mapping=dg.LastPartitionMapping())},
    automation_condition=on_input_content_change(),
)
def teacher_rerank_scores(
    context: dg.AssetExecutionContext,
    config: RerankScoresConfig,
    reranker_teacher: dict,
    rerank_queries: pd.DataFrame,
    unlabeled_queries: pd.DataFrame,
    model_store: ModelStore,
    logit_cache: LogitCache,
) -> dg.Output[pd.DataFrame]:
    """The teacher's score of every transfer pair: the train split's candidates, and BM25's candidates for the
    query log's most frequent queries. Scores are cached per (teacher, pair), so a new day scores only the
    pairs it adds."""
    ref = ModelRef.from_dict(reranker_teacher)
    frame = transfer_pairs(rerank_queries, unlabeled_queries, config.max_log_queries, config.candidates)
    keys = [pair_key(q, d) for q, d in zip(frame["query"], frame["doc"], strict=True)]
    cached = logit_cache.get_many(ref.sha256, list(dict.fromkeys(keys)))
    missing = [i for i, key in enumerate(keys) if key not in cached]
    fresh: dict[str, np.ndarray] = {}
    if missing:
        model, tokenizer = load_model(model_store.get(ref))
        scores = pair_scores(
            model,
            tokenizer,
            frame["query"].iloc[missing].tolist(),
            frame["doc"].iloc[missing].tolist(),
            batch_size=config.batch_size,
        )
        fresh = {
            keys[i]: np.array([score], dtype=np.float32) for i, score in zip(missing, scores, strict=True)
        }
        logit_cache.put_many(ref.sha256, fresh)
        cached.update(fresh)
    frame["teacher_score"] = [float(cached[key][0]) for key in keys]
    frame = frame[SCORE_COLUMNS]
    context.log.info(
        f"teacher_rerank_scores: {len(fresh)} pairs scored, {len(keys) - len(fresh)} from the cache"
    )
    return dg.Output(
        frame,
        data_version=dg.DataVersion(frame_fingerprint(frame.drop(columns="teacher_score")) + ref.sha256[:16]),
        metadata={
            "pairs": len(frame),
            "scored": len(fresh),
            "cached": len(keys) - len(fresh),
            "queries_train": int(frame.loc[frame["origin"] == "train", "query_id"].nunique()),
            "queries_log": int(frame.loc[frame["origin"] == "log", "query_id"].nunique()),
            "teacher_sha256": ref.sha256,
        },
    )


@dg.asset(
    group_name="reranker",
    code_version="5",
    kinds={"pytorch"},
    ins={"general_student": dg.AssetIn(dagster_type=dg.Nothing)},
    automation_condition=on_input_content_change(optional=["general_student"]),
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
)
def reranker_student(
    context: dg.AssetExecutionContext,
    config: RerankStudentConfig,
    reranker_teacher: dict,
    teacher_rerank_scores: pd.DataFrame,
    rerank_queries: pd.DataFrame,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
):
    """Teacher layers `teacher_layers` pruned to `width` (or, under `init: general`, the latest
    general_student as it is) that first match the teacher's layers on the transfer pairs (`layer_matching`),
    then, with a pruned vocabulary, learn Margin-MSE (+ listwise KL) over each transfer query's candidate
    list against the teacher's scores. A teacher without BERT layout keeps its width, and a pruned student
    that keeps less than `width.fallback_retention` of the teacher's validation NDCG@3 is trained again at
    the teacher's width; the metadata says which."""
    teacher, tokenizer = load_model(model_store.get(ModelRef.from_dict(reranker_teacher)))
    general, general_sha = general_start(
        context, model_store, config.init, teacher.config.vocab_size, "reranker_student"
    )
    try:
        student = (
            from_pretrained(str(general), RELEVANCE_LABEL, seed=config.training.seed)
            if general
            else from_teacher(teacher, config.teacher_layers)
        )
    except ValueError as error:
        raise dg.Failure(description=f"reranker_student: {error}", allow_retries=False) from error
    if general and config.width.sized:
        raise dg.Failure(
            description="reranker_student: width's hidden_size and intermediate_size prune the teacher's "
            "layers, and init: general starts from general_student's own shape; set them to 0 or init to "
            "teacher.",
            allow_retries=False,
        )
    metadata: dict = {}
    if not general:
        student, metadata = _at_width(context, student, tokenizer, teacher_rerank_scores, config)
    with training_workspace.checkpoints(
        "reranker_student", frame_fingerprint(teacher_rerank_scores), config.model_dump_json(), general_sha
    ) as checkpoints:
        result, trained = _distil(
            context, student, teacher, tokenizer, teacher_rerank_scores, rerank_queries, config, checkpoints
        )
        ref, ndcg, described = _store_ranker(
            context, model_store, "reranker_student", result.model, result.tokenizer, rerank_queries
        )
        fell_back = metadata.get("width_pruned") and _kept_too_little(ndcg, reranker_teacher, config.width)
        if fell_back:
            context.log.warning(f"reranker_student: {fell_back}.")
            metadata |= {
                "width_pruned": False,
                "width_fell_back": fell_back,
                "pruned_validation_ndcg_at_3": ndcg,
            }
            result, trained = _distil(
                context,
                from_teacher(teacher, config.teacher_layers),
                teacher,
                tokenizer,
                teacher_rerank_scores,
                rerank_queries,
                config,
                checkpoints / "teacher_width",
            )
            ref, ndcg, described = _store_ranker(
                context, model_store, "reranker_student", result.model, result.tokenizer, rerank_queries
            )
    shape = result.model.config
    metadata |= {
        "init": config.init,
        "layers": shape.num_hidden_layers,
        "hidden_size": shape.hidden_size,
        "attention_heads": shape.num_attention_heads,
    }
    if hasattr(shape, "intermediate_size"):  # DistilBERT's config names it hidden_dim
        metadata["intermediate_size"] = shape.intermediate_size
    return ref_output(
        ref,
        {
            **metadata,
            **trained,
            **described,
            "train_steps": result.steps,
            "precision": resolve_precision(config.training.precision),
            "final_loss": result.final_loss,
            "loss": loss_curve(result.history),
        },
    )


def _distil(
    context: dg.AssetExecutionContext,
    student: PreTrainedModel,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: pd.DataFrame,
    rerank_queries: pd.DataFrame,
    config: RerankStudentConfig,
    checkpoints: Path,
) -> tuple[TrainedReranker, dict]:
    """Layer matching on the transfer pairs, the vocabulary pruned, then Margin-MSE (+ listwise KL) over
    each transfer query's candidate list; with what each stage did."""
    metadata: dict = {}
    if config.layer_matching.epochs:
        matched = match_teacher_layers(
            student,
            teacher,
            tokenizer,
            pairs["query"].tolist(),
            pairs["doc"].tolist(),
            config.layer_matching.training_config(checkpoints / "layer_matching", config.training),
            progress=log_progress(context, "reranker_student layer matching"),
        )
        metadata |= {
            "layer_matching_steps": matched.optimizer_steps,
            "layer_matching_loss": matched.final_loss,
        }
    if config.prune_vocabulary:
        texts = pd.concat([rerank_queries[column] for column in ("query", "doc")] + [pairs["query"]])
        pruned = prune_vocabulary(student, tokenizer, texts.drop_duplicates().tolist())
        student, tokenizer = pruned.model, pruned.tokenizer
        metadata |= {"vocabulary": pruned.kept_tokens, "vocabulary_before": pruned.original_tokens}
    queries, lists, scores = candidate_lists(pairs, config.list_size, config.training.seed)
    result = train_student_reranker(
        student,
        tokenizer,
        queries,
        lists,
        scores,
        config.training.settings(),
        checkpoints,
        listwise_weight=config.listwise_weight,
        temperature=config.temperature,
        progress=log_progress(context, "reranker_student"),
    )
    return result, metadata | {"training_lists": len(queries)}


def _kept_too_little(student_ndcg: float, reranker_teacher: dict, width: PrunedWidth) -> str:
    """Why a pruned student is trained again at the teacher's width, or "" when it kept enough of the
    teacher's validation NDCG@3 (which `reranker_teacher` stored with the teacher)."""
    teacher_ndcg = ModelRef.from_dict(reranker_teacher).metrics["validation_ndcg_at_3"]
    kept = student_ndcg / teacher_ndcg if teacher_ndcg > 0 else 1.0
    if kept >= width.fallback_retention:
        return ""
    return (
        f"the pruned student kept {kept:.3f} of the teacher's validation NDCG@3 (floor "
        f"{width.fallback_retention}), so it was trained again at the teacher's width"
    )


def _at_width(
    context: dg.AssetExecutionContext,
    student: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: pd.DataFrame,
    config: RerankStudentConfig,
) -> tuple[PreTrainedModel, dict]:
    """The teacher-layer `student` pruned to `config.width`, or at the teacher's width where its layout
    cannot be pruned and no width was asked for in channels, with metadata saying so."""
    width = config.width
    if prunable(student):
        if not width.prunes(student.config):
            return student, {}
        return _pruned(student, tokenizer, pairs, width, config.training.seed), {"width_pruned": True}
    if not (width.sized or width.share < 1):
        return student, {}
    layout = f"width pruning reads BERT-layout weights, which {type(student).__name__} does not have"
    if width.sized:
        raise dg.Failure(
            description=f"reranker_student: {layout}; set width's hidden_size and intermediate_size to 0 to "
            "keep the teacher's width.",
            allow_retries=False,
        )
    context.log.warning(f"reranker_student kept the teacher's width: {layout}.")
    return student, {"width_not_pruned": layout}


def _pruned(
    student: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: pd.DataFrame,
    width: PrunedWidth,
    seed: int,
) -> PreTrainedModel:
    """`student` at `width`, keeping what is most active on a sample of the transfer pairs."""
    sample = pairs.sample(n=min(width.calibration_pairs, len(pairs)), random_state=seed)
    batches = (
        encode_pairs(tokenizer, rows["query"].tolist(), rows["doc"].tolist())
        for _, rows in sample.groupby(np.arange(len(sample)) // CALIBRATION_BATCH)
    )
    try:
        return prune_width(student, activation_importance(student, batches), *width.sizes(student.config))
    except ValueError as error:
        raise dg.Failure(
            description=f"reranker_student: {error} (reranker_student's width)", allow_retries=False
        ) from error
