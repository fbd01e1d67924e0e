"""The report users read: teacher, distilled student and no-distillation baseline on the test split."""

import base64
import json
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.markdown import markdown_table
from manga_distill_assets.assets.models.common import label_ids, label_names, split
from manga_distill_assets.assets.models.config import EvalConfig
from manga_distill_assets.data.fingerprint import lines_fingerprint
from manga_distill_assets.distill.artifacts import load_model
from manga_distill_assets.distill.evaluation import (
    classification_report,
    confusion_matrix_png,
    predict_logits,
)
from manga_distill_assets.distill.latency import measure_latency
from manga_distill_assets.distill.students import count_parameters, model_size_bytes
from manga_distill_assets.resources.model_store import ModelRef, ModelStore

MODELS = ("teacher", "student", "baseline")


@dg.asset(
    group_name="models",
    code_version="1",
    kinds={"pytorch"},
    automation_condition=on_input_content_change(),
    check_specs=[dg.AssetCheckSpec("student_quality_gate", asset="eval_report", blocking=True)],
)
def eval_report(
    context: dg.AssetExecutionContext,
    config: EvalConfig,
    teacher_model: dict,
    student_stage2: dict,
    baseline_student: dict,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
):
    """Accuracy, macro-F1, per-class F1, confusable pairs, retention, parameters, size and latency p50/p99,
    measured on the same test texts with the same thread count for every model."""
    test = split(labeled_intents, "test")
    names = label_names(labeled_intents)
    truth = label_ids(test["label"], names)
    refs = {"teacher": teacher_model, "student": student_stage2, "baseline": baseline_student}
    report: dict = {}
    for name in MODELS:
        ref = ModelRef.from_dict(refs[name])
        model, tokenizer = load_model(model_store.get(ref))
        predictions = predict_logits(model, tokenizer, test["text"].tolist()).argmax(axis=1)
        quality = classification_report(truth, predictions.tolist(), names)
        latency = measure_latency(
            model, tokenizer, test["text"].tolist(), threads=config.latency_threads, runs=config.latency_runs
        )
        report[name] = {
            **quality,
            "params": count_parameters(model),
            "size_bytes": model_size_bytes(model),
            "latency_ms": {key: latency[f"{key}_ms"] for key in ("p50", "p90", "p99")},
            "throughput_per_s": latency["throughput_per_s"],
            "sha256": ref.sha256,
        }
        context.log.info(f"{name}: accuracy {quality['accuracy']:.4f}, p50 {latency['p50_ms']:.2f} ms")
    report["retention"] = report["student"]["accuracy"] / max(report["teacher"]["accuracy"], 1e-12)
    report["speedup_p50"] = report["teacher"]["latency_ms"]["p50"] / report["student"]["latency_ms"]["p50"]
    report["test_rows"] = len(test)
    report["latency_threads"] = config.latency_threads
    stored, image = _store_beside_models(model_store, report, names)
    yield dg.Output(
        report,
        data_version=dg.DataVersion(_quality_version(report)),
        metadata={
            "summary": dg.MetadataValue.md(summary_markdown(report)),
            "confusion_matrix": dg.MetadataValue.md(image),
            "retention": report["retention"],
            "speedup_p50": report["speedup_p50"],
            **{f"{name}_accuracy": report[name]["accuracy"] for name in MODELS},
            **{f"{name}_p50_ms": report[name]["latency_ms"]["p50"] for name in MODELS},
            "report_uri": stored.uri,
        },
    )
    yield dg.AssetCheckResult(
        check_name="student_quality_gate",
        passed=report["retention"] >= config.retention_floor,
        metadata={"retention": report["retention"], "floor": config.retention_floor},
    )


def summary_markdown(report: dict) -> str:
    rows = [
        {
            "model": name,
            "accuracy": report[name]["accuracy"],
            "macro_f1": report[name]["macro_f1"],
            "params": f"{report[name]['params']:,}",
            "size_MB": report[name]["size_bytes"] / 1e6,
            "p50_ms": report[name]["latency_ms"]["p50"],
            "p99_ms": report[name]["latency_ms"]["p99"],
        }
        for name in MODELS
    ]
    footer = f"\n\nretention {report['retention']:.3f} · speed-up (p50) {report['speedup_p50']:.2f}×"
    return markdown_table(rows) + footer


def _quality_version(report: dict) -> str:
    """Latency varies run to run; the version names what the models are and how well they do."""
    return lines_fingerprint(
        f"{name}:{report[name]['sha256']}:{report[name]['accuracy']:.6f}" for name in MODELS
    )


def _store_beside_models(store: ModelStore, report: dict, names: list[str]) -> tuple[ModelRef, str]:
    """The report JSON and the confusion matrix go into the model store, beside the models they judge."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "eval_report"
        folder.mkdir()
        (folder / "eval_report.json").write_text(json.dumps(report, indent=2, default=_to_builtin))
        picture = confusion_matrix_png(
            report["student"]["confusion"],
            names,
            folder / "student_confusion.png",
            title="Stage-2 student, test",
        )
        image = _inline_png(picture)
        metrics = {"retention": report["retention"], "speedup_p50": report["speedup_p50"]}
        stored = store.put(folder, kind="eval_report", label_map=dict(enumerate(names)), metrics=metrics)
    return stored, image


def _to_builtin(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _inline_png(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"![confusion matrix](data:image/png;base64,{encoded})"
