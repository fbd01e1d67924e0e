"""The model half of the graph, materialised for real with the smoke preset."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from manga_distill_assets.assets.intent_classifier import MODEL_ASSETS
from manga_distill_assets.assets.intent_classifier.config import (
    EvalConfig,
    RefinedSoftLabelConfig,
    TeacherConfig,
    TeacherRefinementConfig,
)
from manga_distill_assets.assets.intent_classifier.onnx import OnnxConfig
from manga_distill_assets.assets.intent_classifier.teacher import default_teacher_base
from manga_distill_assets.distill.artifacts import load_model, save_model
from manga_distill_assets.distill.evaluation import predict_logits
from manga_distill_assets.presets import smoke_run_config
from manga_distill_assets.resources.model_store import ModelRef
from tests.assets.harness import Graph, recent_days, write_day
from tests.distill.tiny import tiny_teacher, tiny_tokenizer


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    graph = Graph(tmp_path_factory.mktemp("models"))
    (day,) = recent_days(1)
    write_day(graph.log_root, day, ["is the one piece box set 4 in stock", "my jjk order is late"])
    graph.materialize("labeled_intents")
    graph.materialize("raw_queries", partition_key=day)
    graph.materialize("unlabeled_queries", partition_key=day)
    smoke = {key: config for key, config in smoke_run_config().ops.items() if key in MODEL_ASSETS}
    result = dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets(*MODEL_ASSETS),
        instance=graph.instance,
        resources=graph.resources,
        # a one-epoch student has near-tied test texts that int8 noise can flip (see test_onnx_asset.py)
        run_config=dg.RunConfig(ops={**smoke, "student_onnx": OnnxConfig(parity_floor=0.9)}),
    )
    return graph, result


def test_eval_report_compares_teacher_student_and_both_baselines(built):
    _, result = built
    report = result.output_for_node("eval_report")
    for name in ("teacher", "teacher_supervised", "student", "baseline", "baseline_teacher_init"):
        assert set(report[name]) >= {"accuracy", "macro_f1", "params", "size_bytes", "latency_ms"}
        assert set(report[name]["latency_ms"]) >= {"p50", "p99"}
    assert report["student"]["params"] < report["teacher"]["params"] / 2
    assert report["retention"] == pytest.approx(report["student"]["accuracy"] / report["teacher"]["accuracy"])
    assert report["speedup_p50"] == pytest.approx(
        report["teacher"]["latency_ms"]["p50"] / report["student"]["latency_ms"]["p50"]
    )
    assert report["distillation_gain"]["accuracy"] == pytest.approx(
        report["student"]["accuracy"] - report["baseline"]["accuracy"]
    )
    assert report["distillation_gain"]["macro_f1"] == pytest.approx(
        report["student"]["macro_f1"] - report["baseline"]["macro_f1"]
    )


def test_eval_report_says_whether_each_step_of_its_order_is_more_than_chance(built):
    graph, result = built
    report = result.output_for_node("eval_report")
    for first, second in (
        ("student", "teacher"),
        ("student", "baseline"),
        ("teacher", "baseline"),
        ("teacher", "teacher_supervised"),
    ):
        comparison = report["paired"][f"{first}_vs_{second}"]
        assert comparison["accuracy_difference"] == pytest.approx(
            report[first]["accuracy"] - report[second]["accuracy"]
        )
        assert 0.0 < comparison["p_value"] <= 1.0
        assert graph.metadata("eval_report")[f"{first}_vs_{second}_p_value"] == comparison["p_value"]
    assert "exact McNemar" in graph.metadata("eval_report")["summary"]


def test_every_model_stored_leaves_no_training_checkpoint_behind(built):
    graph, _ = built
    work = graph.root / "artifacts" / "work"
    assert sorted(path.relative_to(work).as_posix() for path in work.glob("*/*/checkpoint-*")) == []


def test_every_pytorch_model_records_validation_accuracy_and_loss_for_the_report(built):
    _, result = built
    report = result.output_for_node("eval_report")
    for name in ("teacher", "teacher_supervised", "student", "baseline", "baseline_teacher_init"):
        assert 0.0 <= report["validation_accuracy"][name] <= 1.0
        assert report["validation_loss"][name] > 0.0


def test_the_fair_baseline_starts_from_the_pretrained_base_and_the_second_from_the_teacher(built):
    graph, _ = built
    assert graph.metadata("baseline_student")["started_from"] == default_teacher_base()
    assert graph.metadata("baseline_student_teacher_init")["started_from"].startswith("teacher ")


def test_both_baselines_keep_the_pretrained_vocabulary_words_their_labels_lack_included(built):
    graph, result = built
    store = graph.resources["model_store"]
    _, teacher_tokenizer = load_model(store.get(ModelRef.from_dict(result.output_for_node("teacher_model"))))
    for name in ("baseline_student", "baseline_student_teacher_init"):
        assert graph.metadata(name)["vocabulary_bytes_saved"] == 0
        model, tokenizer = load_model(store.get(ModelRef.from_dict(result.output_for_node(name))))
        assert tokenizer.get_vocab() == teacher_tokenizer.get_vocab()
        assert model.config.vocab_size == len(teacher_tokenizer)


def test_the_teacher_is_refined_on_the_supervised_teachers_kept_soft_labels(built):
    graph, result = built
    supervised = ModelRef.from_dict(result.output_for_node("teacher_model"))
    refined = ModelRef.from_dict(result.output_for_node("teacher_refined"))
    assert refined.sha256 != supervised.sha256
    assert refined.label_map == supervised.label_map
    soft_labels = result.output_for_node("teacher_soft_labels")
    metadata = graph.metadata("teacher_refined")
    assert metadata["refined"] is True
    assert metadata["supervised_validation_accuracy"] == supervised.metrics["validation_accuracy"]
    for origin in ("labeled", "paraphrase", "unlabeled"):
        rows = soft_labels[soft_labels["origin"] == origin]
        assert metadata[f"rows_{origin}"] == rows["keep"].sum()


def test_the_students_and_the_report_start_from_the_refined_teacher(built):
    graph, result = built
    supervised = ModelRef.from_dict(result.output_for_node("teacher_model"))
    refined = ModelRef.from_dict(result.output_for_node("teacher_refined"))
    assert graph.metadata("teacher_soft_labels")["teacher_sha256"] == supervised.sha256
    assert graph.metadata("refined_soft_labels")["teacher_sha256"] == refined.sha256
    assert graph.metadata("baseline_student_teacher_init")["started_from"] == f"teacher {refined.sha256[:16]}"
    report = result.output_for_node("eval_report")
    assert report["teacher"]["sha256"] == refined.sha256
    assert report["teacher_supervised"]["sha256"] == supervised.sha256


def refined_teachers_logits(graph, result, texts: list[str]) -> np.ndarray:
    refined = ModelRef.from_dict(result.output_for_node("teacher_refined"))
    return predict_logits(*load_model(graph.resources["model_store"].get(refined)), texts)


def test_the_student_learns_from_the_mean_of_the_supervised_and_the_refined_teachers_logits(built):
    graph, result = built
    supervised = result.output_for_node("teacher_soft_labels").head(40)
    mixed = result.output_for_node("refined_soft_labels").head(40)
    refined = refined_teachers_logits(graph, result, supervised["text"].tolist())
    expected = (refined + np.stack(supervised["logits"])) / 2
    assert np.abs(np.stack(mixed["logits"]) - expected).max() < 1e-4
    assert graph.metadata("refined_soft_labels")["teachers_averaged"] == 2


def test_with_teachers_refined_the_student_learns_from_the_refined_teachers_logits_alone(built):
    graph, result = built
    mixed_version = graph.data_version("refined_soft_labels")
    alone = dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets("refined_soft_labels"),
        instance=graph.instance,
        resources=graph.resources,
        run_config=dg.RunConfig(ops={"refined_soft_labels": RefinedSoftLabelConfig(teachers="refined")}),
    ).output_for_node("refined_soft_labels")
    mixed = result.output_for_node("refined_soft_labels")
    refined = refined_teachers_logits(graph, result, alone["text"].head(40).tolist())
    assert np.abs(np.stack(alone["logits"].head(40)) - refined).max() < 1e-4
    assert (alone["keep"] == mixed["keep"]).all()  # paraphrases are judged by the refined teacher either way
    assert graph.data_version("refined_soft_labels") != mixed_version
    assert graph.metadata("refined_soft_labels")["teachers_averaged"] == 1
    graph.materialize("refined_soft_labels")  # the defaults again, for the tests that follow
    assert graph.data_version("refined_soft_labels") == mixed_version


def test_eval_report_adds_the_students_onnx_graphs_measured_like_the_pytorch_models(built):
    _, result = built
    report = result.output_for_node("eval_report")
    onnx_ref = ModelRef.from_dict(result.output_for_node("student_onnx"))
    for name in ("student_onnx_fp32", "student_onnx_int8"):
        row = report[name]
        assert set(row) >= {"accuracy", "macro_f1", "params", "size_bytes", "throughput_per_s"}
        assert set(row["latency_ms"]) >= {"p50", "p99"}
        assert row["sha256"] == onnx_ref.sha256
        assert row["speedup_p50_vs_teacher"] == pytest.approx(
            report["teacher"]["latency_ms"]["p50"] / row["latency_ms"]["p50"]
        )
        assert row["throughput_vs_teacher"] == pytest.approx(
            row["throughput_per_s"] / report["teacher"]["throughput_per_s"]
        )
    # int8 encoder matmuls but the FFN down-projections; the embedding table, pooler and classifier stay fp32
    assert report["student_onnx_int8"]["size_bytes"] < 0.75 * report["student_onnx_fp32"]["size_bytes"]


def test_eval_report_json_is_stored_beside_the_models(built):
    graph, result = built
    report = result.output_for_node("eval_report")
    uri = graph.metadata("eval_report")["report_uri"]
    folder = Path(uri.removeprefix("file://"))
    assert folder.parent == graph.root / "artifacts" / "models" / "eval_report"
    written = json.loads((folder / "eval_report.json").read_text())
    assert written["student"]["sha256"] == report["student"]["sha256"]
    assert (folder / "student_confusion.png").read_bytes().startswith(b"\x89PNG")


def test_models_travel_as_references_to_stored_safetensors(built):
    graph, result = built
    ref = ModelRef.from_dict(result.output_for_node("student_stage1"))
    folder = graph.resources["model_store"].get(ref)
    assert (folder / "model.safetensors").is_file()
    assert (folder / "stage1_projections.safetensors").is_file()
    assert not list(folder.glob("*.bin"))


def test_soft_labels_are_scored_once_per_teacher_and_text(built):
    graph, _ = built
    graph.materialize("teacher_soft_labels")
    assert graph.metadata("teacher_soft_labels")["scored"] == 0


def test_the_quality_gate_blocks_a_student_below_the_retention_floor(built):
    graph, built_result = built
    floor = built_result.output_for_node("eval_report")["retention"] + 0.01
    result = dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets("eval_report"),
        instance=graph.instance,
        resources=graph.resources,
        run_config=dg.RunConfig(
            ops={"eval_report": EvalConfig(retention_floor=floor, latency_runs=5, require_best_teacher=False)}
        ),
        raise_on_error=False,
    )
    assert not result.success
    (gate,) = result.get_asset_check_evaluations()
    assert gate.check_name == "student_quality_gate" and not gate.passed
    assert gate.metadata["floor"].value == floor


def test_a_registered_teacher_with_other_labels_fails_naming_it(built, tmp_path):
    graph, _ = built
    folder = save_model(tiny_teacher(), tiny_tokenizer(tmp_path), tmp_path / "manga_intent_teacher")
    result = dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets("teacher_model"),
        instance=graph.instance,
        resources=graph.resources,
        run_config=dg.RunConfig(ops={"teacher_model": TeacherConfig(registered_checkpoint=str(folder))}),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert str(folder) in str(failure.event_specific_data.error)


def test_a_registered_teacher_with_matching_labels_is_stored_without_training(built):
    graph, result = built
    trained = ModelRef.from_dict(result.output_for_node("teacher_model"))
    folder = graph.resources["model_store"].get(trained)
    registered = dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets("teacher_model"),
        instance=graph.instance,
        resources=graph.resources,
        run_config=dg.RunConfig(ops={"teacher_model": TeacherConfig(registered_checkpoint=str(folder))}),
    )
    assert ModelRef.from_dict(registered.output_for_node("teacher_model")).label_map == trained.label_map
    metadata = graph.metadata("teacher_model")
    assert metadata["registered"] is True and metadata["train_steps"] == 0


def test_a_disabled_refinement_passes_the_supervised_teacher_on(built):
    graph, _ = built
    stored = graph.root / "artifacts" / "assets" / "teacher_model" / "data.json"
    stored_teacher = json.loads(stored.read_text())
    passed_on = dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets("teacher_refined"),
        instance=graph.instance,
        resources=graph.resources,
        run_config=dg.RunConfig(ops={"teacher_refined": TeacherRefinementConfig(enabled=False)}),
    )
    assert passed_on.output_for_node("teacher_refined") == stored_teacher
    assert graph.metadata("teacher_refined")["refined"] is False
