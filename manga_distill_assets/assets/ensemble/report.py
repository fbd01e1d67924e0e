"""What distilling the ensemble bought: each member, the ensemble, its student and the single-teacher
student on the test split, and the ensemble as deployed (members in turn, or in threads) against the student
in PyTorch and as an int8 ONNX graph."""

import json
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.ensemble.config import EnsembleReportConfig
from manga_distill_assets.assets.ensemble.scoring import (
    LoadedMember,
    load_member,
    mixture,
    transformer_member,
)
from manga_distill_assets.assets.intent_classifier.common import label_ids, label_names, matching_ref, split
from manga_distill_assets.assets.markdown import markdown_table
from manga_distill_assets.data.fingerprint import lines_fingerprint
from manga_distill_assets.distill.artifacts import load_model
from manga_distill_assets.distill.ensemble_latency import parallel_latency, per_text_latency
from manga_distill_assets.distill.evaluation import classification_report
from manga_distill_assets.distill.latency import torch_threads
from manga_distill_assets.distill.onnx_export import (
    INT8_FILE,
    OUTPUT_NAME,
    encode_for_session,
    onnx_logits,
    open_session,
)
from manga_distill_assets.distill.student_export import export_student
from manga_distill_assets.resources.model_store import ModelStore

GATE = "ensemble_student_retention"
STUDENTS = ("ensemble_student", "ensemble_student_onnx_int8", "single_teacher_student")


@dg.asset(
    group_name="ensemble",
    code_version="1",
    kinds={"pytorch", "onnx"},
    automation_condition=on_input_content_change(),
    check_specs=[dg.AssetCheckSpec(GATE, asset="ensemble_report", blocking=True)],
)
def ensemble_report(
    context: dg.AssetExecutionContext,
    config: EnsembleReportConfig,
    ensemble_members: list,
    ensemble_student: dict,
    student_stage2: dict,
    labeled_intents: pd.DataFrame,
    model_store: ModelStore,
):
    """Accuracy, macro-F1, retention against the ensemble and p50/p99 latency per row. The ensemble's own
    latency is the sum of its members' p50s (served one after another, as today) and, measured, all members
    in parallel threads; the gate holds the PyTorch student to `retention_floor` of the ensemble."""
    with torch_threads(config.latency_threads):
        report = _measure(
            context,
            config,
            ensemble_members,
            {"ensemble_student": ensemble_student, "single_teacher_student": student_stage2},
            labeled_intents,
            model_store,
        )
    ensemble = report["rows"]["ensemble"]
    for row in report["rows"].values():
        row["retention_vs_ensemble"] = row["accuracy"] / max(ensemble["accuracy"], 1e-12)
    for name in STUDENTS:
        row = report["rows"][name]
        row["speedup_vs_members_in_turn"] = ensemble["p50_ms"] / row["p50_ms"]
        row["speedup_vs_members_in_parallel"] = ensemble["parallel_p50_ms"] / row["p50_ms"]
    student = report["rows"]["ensemble_student"]
    report.update(
        retention=student["retention_vs_ensemble"],
        speedup_p50=student["speedup_vs_members_in_turn"],
        gain_over_best_member=ensemble["accuracy"]
        - max(report["rows"][entry["name"]]["accuracy"] for entry in ensemble_members),
        gain_over_single_teacher_student=student["accuracy"]
        - report["rows"]["single_teacher_student"]["accuracy"],
        test_rows=int((labeled_intents["split"] == "test").sum()),
        latency_threads=config.latency_threads,
    )
    table = summary_markdown(report)
    context.log.info("\n" + table)
    yield dg.Output(
        report,
        data_version=dg.DataVersion(
            lines_fingerprint(
                f"{name}:{row['sha256']}:{row['accuracy']:.6f}" for name, row in report["rows"].items()
            )
        ),
        metadata={
            "summary": dg.MetadataValue.md(table),
            "report": dg.MetadataValue.json(json.loads(json.dumps(report))),
            "retention": report["retention"],
            "speedup_p50": report["speedup_p50"],
            "gain_over_best_member": report["gain_over_best_member"],
            "gain_over_single_teacher_student": report["gain_over_single_teacher_student"],
            **{f"{name}_accuracy": row["accuracy"] for name, row in report["rows"].items()},
            **{f"{name}_p50_ms": row["p50_ms"] for name, row in report["rows"].items()},
        },
    )
    yield dg.AssetCheckResult(
        check_name=GATE,
        passed=report["retention"] >= config.retention_floor,
        metadata={"retention": report["retention"], "floor": config.retention_floor},
    )


def _measure(
    context: dg.AssetExecutionContext,
    config: EnsembleReportConfig,
    members: list[dict],
    students: dict[str, dict],
    labeled: pd.DataFrame,
    store: ModelStore,
) -> dict:
    """Every row scored on the test texts and timed per text by the same loop."""
    test = split(labeled, "test")
    names = label_names(labeled)
    truth = label_ids(test["label"], names)
    texts = test["text"].tolist()
    runs = {"warmup": 5, "runs": config.latency_runs}
    rows: dict[str, dict] = {}
    loaded, member_logits = [], []
    for entry in members:
        member = load_member(entry, store)
        logits = member.logits(texts)
        latency = per_text_latency(member.predict_one, texts, **runs)
        rows[entry["name"]] = _row(truth, logits, names, latency, entry["model"]["sha256"], entry["kind"])
        loaded.append(member)
        member_logits.append(logits)
        context.log.info(
            f"{entry['name']}: accuracy {rows[entry['name']]['accuracy']:.4f}, p50 {latency['p50']:.2f} ms"
        )
    parallel = parallel_latency([member.predict_one for member in loaded], texts, **runs)
    ensemble_predictions = mixture(members, member_logits).argmax(axis=1).tolist()
    rows["ensemble"] = {
        **_quality(classification_report(truth, ensemble_predictions, names)),
        "kind": "ensemble",
        **{f"{key}_ms": sum(rows[entry["name"]][f"{key}_ms"] for entry in members) for key in ("p50", "p99")},
        "parallel_p50_ms": parallel["p50"],
        "parallel_p99_ms": parallel["p99"],
        "sha256": lines_fingerprint(entry["model"]["sha256"] for entry in members),
    }
    for name, value in students.items():
        ref = matching_ref(value, labeled, "ensemble_report")
        model, tokenizer = load_model(store.get(ref))
        student = transformer_member(name, model, tokenizer)
        latency = per_text_latency(student.predict_one, texts, **runs)
        rows[name] = _row(truth, student.logits(texts), names, latency, ref.sha256, "student")
        if name == "ensemble_student":
            int8 = _onnx_int8(model, tokenizer, config.latency_threads)
            latency = per_text_latency(int8.predict_one, texts, **runs)
            rows[f"{name}_onnx_int8"] = _row(
                truth, int8.logits(texts), names, latency, ref.sha256, "onnx_int8"
            )
    return {"rows": rows}


def _onnx_int8(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, threads: int) -> LoadedMember:
    """The student exported and quantised as student_onnx does it, in an onnxruntime session."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_student(model, tokenizer, Path(tmp) / "onnx")
        session = open_session(folder / INT8_FILE, threads=threads)

    def predict_one(text: str) -> object:
        return session.run([OUTPUT_NAME], encode_for_session(session, tokenizer, [text]))

    return LoadedMember("onnx_int8", lambda texts: onnx_logits(session, tokenizer, texts), predict_one)


def _row(truth, logits: np.ndarray, names, latency: dict, sha256: str, kind: str) -> dict:
    quality = classification_report(truth, logits.argmax(axis=1).tolist(), names)
    return {
        **_quality(quality),
        "kind": kind,
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "sha256": sha256,
    }


def _quality(report: dict) -> dict:
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}


def summary_markdown(report: dict) -> str:
    lines = [
        {
            "model": name,
            "accuracy": row["accuracy"],
            "macro_f1": row["macro_f1"],
            "retention_vs_ensemble": row["retention_vs_ensemble"],
            "p50_ms": row["p50_ms"],
            "parallel_p50_ms": row.get("parallel_p50_ms", ""),
            "speedup_vs_in_turn": row.get("speedup_vs_members_in_turn", ""),
            "speedup_vs_parallel": row.get("speedup_vs_members_in_parallel", ""),
        }
        for name, row in report["rows"].items()
    ]
    return markdown_table(lines) + (
        f"\n\nretention {report['retention']:.3f} · "
        f"speed-up vs members in turn {report['speedup_p50']:.2f}× · "
        f"ensemble − best member {report['gain_over_best_member']:+.4f} · "
        f"ensemble student − single-teacher student {report['gain_over_single_teacher_student']:+.4f}"
    )
