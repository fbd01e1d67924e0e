"""The reranker student for serving (ONNX fp32 and int8, held to the PyTorch student's rankings), and the
evaluation of BM25, teacher, student and int8 student on the test split with a blocking quality gate."""

import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.intent_classifier.common import ref_output
from manga_distill_assets.assets.markdown import markdown_table
from manga_distill_assets.assets.reranker.config import RerankEvalConfig, RerankOnnxConfig
from manga_distill_assets.assets.reranker.models import split_rows
from manga_distill_assets.distill.artifacts import load_model
from manga_distill_assets.distill.cross_encoders import RELEVANCE_LABEL
from manga_distill_assets.distill.onnx_export import (
    INT8_FILE,
    VARIANT_FILES,
    file_bytes,
    open_session,
    parameter_count,
    read_int8_choice,
)
from manga_distill_assets.distill.ranking_metrics import (
    kendall_tau,
    mrr_at,
    ndcg_at,
    per_query,
    relevant_grade_for,
    top_k_agreement,
)
from manga_distill_assets.distill.ranking_serving import (
    QueryList,
    RankingParity,
    export_reranker,
    onnx_latency,
    onnx_query_scores,
    torch_latency,
    torch_query_scores,
)
from manga_distill_assets.distill.students import count_parameters, model_size_bytes
from manga_distill_assets.resources.model_store import ModelRef, ModelStore


def query_lists(rows: pd.DataFrame, limit: int | None = None) -> list[QueryList]:
    """Each test query with its candidates, in sorted query_id order (the order of `per_query`)."""
    return [
        (group["query"].iloc[0], group["doc"].tolist()[:limit])
        for _, group in rows.groupby("query_id", sort=True)
    ]


def _test_rows(rerank_queries: pd.DataFrame, asset: str) -> pd.DataFrame:
    rows = split_rows(rerank_queries, "test")
    if rows.empty:
        raise dg.Failure(
            description=f"rerank_queries has no test rows, so {asset} has nothing to rank. Give the "
            "relevance file a test split and re-materialise rerank_queries."
        )
    return rows


@dg.asset(
    group_name="reranker",
    code_version="4",
    kinds={"onnx"},
    automation_condition=on_input_content_change(),
    check_specs=[dg.AssetCheckSpec("reranker_onnx_parity", asset="reranker_onnx")],
)
def reranker_onnx(
    context: dg.AssetExecutionContext,
    config: RerankOnnxConfig,
    reranker_student: dict,
    rerank_queries: pd.DataFrame,
    model_store: ModelStore,
):
    """fp32 and int8 graphs of the student; each must rank the test queries' candidates like PyTorch does
    (top-3 agreement and Kendall τ per query, averaged). The graph is exported at the activation smoothing
    whose int8 graph ranks the validation queries best, and keeps fp32 the fewest matmuls that hold those
    floors there. The check does not block: reranker_eval still judges every model and marks a graph below
    the floors as not to be served."""
    student_ref = ModelRef.from_dict(reranker_student)
    model, tokenizer = load_model(model_store.get(student_ref))
    lists = query_lists(_test_rows(rerank_queries, "reranker_onnx"))
    reference = torch_query_scores(model, tokenizer, lists)
    floors = RankingParity(config.top3_floor, config.kendall_floor)
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_reranker(
            model,
            tokenizer,
            Path(tmp) / "reranker_onnx",
            query_lists(split_rows(rerank_queries, "validation")),
            floors,
        )
        choice = read_int8_choice(folder)
        metrics: dict[str, float] = {
            "top3_floor": config.top3_floor,
            "kendall_floor": config.kendall_floor,
            "int8_smoothing_alpha": choice["smoothing"]["alpha"] or 0.0,
            "int8_matmuls_kept_fp32": len(choice["kept_fp32"]),
            "int8_search_settled_for_the_floors": float(choice.get("fell_back", False)),
            "unpadded_graph": float(choice["unpadded"]),
        }
        for variant, name in VARIANT_FILES.items():
            scores = onnx_query_scores(open_session(folder / name), tokenizer, lists)
            metrics[f"{variant}_top3_agreement"] = top_k_agreement(reference, scores, 3)
            metrics[f"{variant}_kendall_tau"] = kendall_tau(reference, scores)
            metrics[f"{variant}_size_bytes"] = file_bytes(folder / name)
        ref = model_store.put(folder, kind="reranker_onnx", label_map=RELEVANCE_LABEL, metrics=metrics)
    context.log.info(f"reranker_onnx parity: {metrics}")
    yield ref_output(ref, {"student_sha256": student_ref.sha256, "test_queries": len(lists), **metrics})
    failing = [variant for variant in VARIANT_FILES if not _parity_met(metrics, variant)]
    yield dg.AssetCheckResult(
        check_name="reranker_onnx_parity",
        passed=not failing,
        description="Both graphs rank like the PyTorch student."
        if not failing
        else f"The {' and '.join(failing)} graph(s) rank the test queries unlike the PyTorch student (top-3 "
        f"agreement under {config.top3_floor} or Kendall τ under {config.kendall_floor}); serve the PyTorch "
        "student until a re-export passes.",
        metadata=metrics,
    )


@dg.asset(
    group_name="reranker",
    code_version="2",
    kinds={"pytorch", "onnx"},
    automation_condition=on_input_content_change(),
    check_specs=[dg.AssetCheckSpec("reranker_ndcg_retention", asset="reranker_eval", blocking=True)],
)
def reranker_eval(
    context: dg.AssetExecutionContext,
    config: RerankEvalConfig,
    rerank_queries: pd.DataFrame,
    reranker_teacher: dict,
    reranker_student: dict,
    reranker_onnx: dict,
    model_store: ModelStore,
):
    """BM25, teacher, student and int8 student on the test split: NDCG@3, NDCG@10, MRR@10, NDCG@3 retention,
    parameters, size, and p50/p99 latency to score one query's candidates at `threads` threads."""
    rows = _test_rows(rerank_queries, "reranker_eval")
    grades, lists = per_query(rows, "grade"), query_lists(rows)
    timed = query_lists(rows, config.candidates)
    timed = (timed * (1 + config.latency_queries // len(timed)))[: config.latency_queries]
    report: dict[str, dict] = {"bm25": _quality(grades, per_query(rows, "bm25_score"))}
    for name, value in (("teacher", reranker_teacher), ("student", reranker_student)):
        model, tokenizer = load_model(model_store.get(ModelRef.from_dict(value)))
        report[name] = {
            **_quality(grades, torch_query_scores(model, tokenizer, lists)),
            "params": count_parameters(model),
            "size_bytes": model_size_bytes(model),
            "latency_ms": torch_latency(model, tokenizer, timed, config.threads),
        }
        context.log.info(f"reranker_eval: {name} {report[name]}")
    onnx_ref = ModelRef.from_dict(reranker_onnx)
    folder = model_store.get(onnx_ref)
    session = open_session(folder / INT8_FILE, config.threads)
    report["student_onnx_int8"] = {
        **_quality(grades, onnx_query_scores(session, tokenizer, lists)),
        "params": parameter_count(folder / INT8_FILE),
        "size_bytes": file_bytes(folder / INT8_FILE),
        "latency_ms": onnx_latency(session, tokenizer, timed),
        "parity": _int8_parity(onnx_ref.metrics),
    }
    teacher = report["teacher"]
    for row in report.values():
        row["retention_ndcg_at_3"] = row["ndcg_at_3"] / teacher["ndcg_at_3"] if teacher["ndcg_at_3"] else 0.0
        if "latency_ms" in row:
            row["speedup_p50"] = teacher["latency_ms"]["p50_ms"] / row["latency_ms"]["p50_ms"]
    retention = report["student_onnx_int8"]["retention_ndcg_at_3"]
    problems = gate_problems(report["student_onnx_int8"], config.retention_floor)
    yield dg.Output(
        {
            **report,
            "candidates": config.candidates,
            "threads": config.threads,
            "test_queries": len(lists),
            "mrr_relevant_grade": relevant_grade_for(grades),
        },
        metadata={
            "table": dg.MetadataValue.md(markdown_table(_table(report))),
            "teacher_ndcg_at_3": teacher["ndcg_at_3"],
            "bm25_ndcg_at_3": report["bm25"]["ndcg_at_3"],
            "student_onnx_int8_retention": retention,
            "student_onnx_int8_p50_ms": report["student_onnx_int8"]["latency_ms"]["p50_ms"],
        },
    )
    yield dg.AssetCheckResult(
        check_name="reranker_ndcg_retention",
        passed=not problems,
        description=" ".join(problems)
        or f"The int8 student keeps {retention:.1%} of the teacher's NDCG@3 (floor "
        f"{config.retention_floor:.0%}) and ranks like the PyTorch student.",
        metadata={"retention": retention, "floor": config.retention_floor, "problems": "\n".join(problems)},
    )


def _int8_parity(metrics: dict) -> dict:
    """The int8 graph's test parity as reranker_onnx measured it, and whether it reached both floors."""
    return {
        "top3_agreement": metrics["int8_top3_agreement"],
        "kendall_tau": metrics["int8_kendall_tau"],
        "matmuls_kept_fp32": int(metrics.get("int8_matmuls_kept_fp32", 0)),
        "passed": _parity_met(metrics, "int8"),
    }


def _parity_met(metrics: dict, variant: str) -> bool:
    """Whether `variant`'s graph reached the floors recorded beside its parity in reranker_onnx's metrics."""
    floors = RankingParity(metrics["top3_floor"], metrics["kendall_floor"])
    return floors.met_by(metrics[f"{variant}_top3_agreement"], metrics[f"{variant}_kendall_tau"])


def gate_problems(int8: dict, retention_floor: float) -> list[str]:
    """Why the int8 student must not replace the teacher, each with what to do; empty when it may."""
    problems = []
    retention, parity = int8["retention_ndcg_at_3"], int8["parity"]
    if retention < retention_floor:
        problems.append(
            f"The int8 student keeps {retention:.1%} of the teacher's NDCG@3, under the floor "
            f"{retention_floor:.0%}: train the student longer or from more transfer queries."
        )
    if not parity["passed"]:
        problems.append(
            f"The int8 graph must not be served: it keeps {parity['top3_agreement']:.1%} of the PyTorch "
            f"student's top 3 (Kendall τ {parity['kendall_tau']:.3f}), under reranker_onnx's floors. "
            "Serve the PyTorch student until reranker_onnx passes reranker_onnx_parity."
        )
    return problems


def _quality(grades, scores) -> dict[str, float]:
    return {
        "ndcg_at_3": ndcg_at(grades, scores, 3),
        "ndcg_at_10": ndcg_at(grades, scores, 10),
        "mrr_at_10": mrr_at(grades, scores, 10, relevant_grade_for(grades)),
    }


def _table(report: dict[str, dict]) -> list[dict]:
    return [
        {
            "model": name,
            "NDCG@3": round(row["ndcg_at_3"], 4),
            "NDCG@10": round(row["ndcg_at_10"], 4),
            "MRR@10": round(row["mrr_at_10"], 4),
            "retention": round(row["retention_ndcg_at_3"], 4),
            "params": row.get("params", ""),
            "size_MB": round(row["size_bytes"] / 1e6, 2) if "size_bytes" in row else "",
            "p50_ms": round(row["latency_ms"]["p50_ms"], 2) if "latency_ms" in row else "",
            "p99_ms": round(row["latency_ms"]["p99_ms"], 2) if "latency_ms" in row else "",
            "speed-up": round(row["speedup_p50"], 2) if "speedup_p50" in row else "",
        }
        for name, row in report.items()
    ]
