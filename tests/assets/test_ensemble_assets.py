"""The ensemble group, materialised for real with the smoke preset on top of the intent graph."""

import dagster as dg
import numpy as np
import pytest

from manga_distill_assets.assets.ensemble.config import EnsembleReportConfig
from manga_distill_assets.definitions import defs
from manga_distill_assets.distill.char_tfidf import SETTINGS_FILE, WEIGHTS_FILE
from manga_distill_assets.presets import smoke_run_config
from manga_distill_assets.resources.model_store import ModelRef
from tests.assets.harness import Graph, model_assets_through, recent_days, write_day

UPSTREAM = model_assets_through("student_stage2")
ENSEMBLE = ("ensemble_members", "ensemble_soft_labels", "ensemble_student", "ensemble_report")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    graph = Graph(tmp_path_factory.mktemp("ensemble"))
    (day,) = recent_days(1)
    write_day(graph.log_root, day, ["is the one piece box set 4 in stock", "my jjk order is late"])
    graph.materialize("labeled_intents")
    graph.materialize("raw_queries", partition_key=day)
    graph.materialize("unlabeled_queries", partition_key=day)
    result = graph.materialize(*UPSTREAM, *ENSEMBLE)
    return graph, result


def test_three_different_members_each_with_validation_accuracy_and_temperature(built):
    _, result = built
    members = result.output_for_node("ensemble_members")
    assert [(entry["name"], entry["kind"]) for entry in members] == [
        ("teacher", "transformer"),
        ("minilm_seed7", "transformer"),
        ("char_tfidf", "char_tfidf"),
    ]
    teacher = ModelRef.from_dict(result.output_for_node("teacher_model"))
    assert members[0]["model"]["sha256"] == teacher.sha256
    assert len({entry["model"]["sha256"] for entry in members}) == 3
    for entry in members:
        assert 0.0 <= entry["validation_accuracy"] <= 1.0
        assert entry["temperature"] > 0
        assert entry["calibrated_validation_nll"] <= entry["validation_nll"] + 1e-9


def test_the_classical_member_is_stored_as_json_and_safetensors_only(built):
    graph, result = built
    classical = result.output_for_node("ensemble_members")[2]
    folder = graph.resources["model_store"].get(classical["model"])
    assert sorted(path.name for path in folder.iterdir()) == sorted([SETTINGS_FILE, WEIGHTS_FILE])


def test_soft_labels_are_the_teachers_rows_with_the_ensembles_probabilities(built):
    _, result = built
    frame = result.output_for_node("ensemble_soft_labels")
    teacher_rows = result.output_for_node("teacher_soft_labels")
    assert frame["text"].tolist() == teacher_rows["text"].tolist()
    probabilities = np.exp(np.stack(frame["logits"].to_numpy()))
    assert probabilities.sum(axis=1) == pytest.approx(np.ones(len(frame)), abs=1e-4)
    check = next(
        c for c in result.get_asset_check_evaluations() if c.check_name == "ensemble_beats_best_member"
    )
    assert check.metadata["best_member"].value in {"teacher", "minilm_seed7", "char_tfidf"}


def test_every_member_scores_a_text_once(built):
    graph, _ = built
    graph.materialize("ensemble_soft_labels")
    assert graph.metadata("ensemble_soft_labels")["scored"] == 0


def test_the_report_compares_members_ensemble_and_both_students(built):
    _, result = built
    report = result.output_for_node("ensemble_report")
    rows = report["rows"]
    members = [entry["name"] for entry in result.output_for_node("ensemble_members")]
    assert set(rows) == {
        *members,
        "ensemble",
        "ensemble_student",
        "ensemble_student_onnx_int8",
        "single_teacher_student",
    }
    assert rows["ensemble"]["p50_ms"] == pytest.approx(sum(rows[name]["p50_ms"] for name in members))
    student = rows["ensemble_student"]
    assert report["retention"] == pytest.approx(student["accuracy"] / rows["ensemble"]["accuracy"])
    assert student["speedup_vs_members_in_turn"] == pytest.approx(
        rows["ensemble"]["p50_ms"] / student["p50_ms"]
    )
    assert student["speedup_vs_members_in_parallel"] == pytest.approx(
        rows["ensemble"]["parallel_p50_ms"] / student["p50_ms"]
    )


def test_the_retention_gate_blocks_a_student_below_the_floor(built):
    graph, result = built
    floor = result.output_for_node("ensemble_report")["retention"] + 0.01
    outcome = dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets("ensemble_report"),
        instance=graph.instance,
        resources=graph.resources,
        run_config=dg.RunConfig(
            ops={"ensemble_report": EnsembleReportConfig(retention_floor=floor, latency_runs=5)}
        ),
        raise_on_error=False,
    )
    assert not outcome.success
    (gate,) = outcome.get_asset_check_evaluations()
    assert gate.check_name == "ensemble_student_retention" and not gate.passed


def test_nothing_in_the_group_is_requested_when_no_input_changed(built):
    graph, _ = built
    graph.materialize("teacher_soft_labels")
    result = dg.evaluate_automation_conditions(defs=graph.defs, instance=graph.instance)
    requested = {
        key.to_user_string()
        for key in graph.defs.resolve_asset_graph().get_all_asset_keys()
        if result.get_num_requested(key)
    }
    assert requested.isdisjoint(ENSEMBLE)


def test_the_study_partition_records_one_row_per_seed(built):
    graph, _ = built
    outcome = dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets("ensemble_vs_single_teacher_study"),
        partition_key="targets=ensemble",
        instance=graph.instance,
        resources=graph.resources,
        run_config=dg.RunConfig(
            ops={
                "ensemble_vs_single_teacher_study": smoke_run_config().ops["ensemble_vs_single_teacher_study"]
            }
        ),
    )
    frame = outcome.output_for_node("ensemble_vs_single_teacher_study")
    assert frame["seed"].tolist() == [0]
    assert frame["variant"].tolist() == ["targets=ensemble"]
    assert 0.0 <= frame["accuracy"].iloc[0] <= 1.0


def test_the_group_is_wired_as_the_design_says():
    assets = defs.resolve_asset_graph()
    parents = {
        key: {parent.to_user_string() for parent in assets.get(dg.AssetKey(key)).parent_keys}
        for key in (*ENSEMBLE, "ensemble_vs_single_teacher_study")
    }
    assert parents["ensemble_members"] == {"teacher_model", "labeled_intents"}
    assert parents["ensemble_soft_labels"] == {"ensemble_members", "teacher_soft_labels", "labeled_intents"}
    assert parents["ensemble_student"] == {"student_stage1", "ensemble_soft_labels", "labeled_intents"}
    assert parents["ensemble_report"] == {
        "ensemble_members",
        "ensemble_student",
        "student_stage2",
        "labeled_intents",
    }
    assert parents["ensemble_vs_single_teacher_study"] == {
        "student_stage1",
        "ensemble_soft_labels",
        "teacher_soft_labels",
        "labeled_intents",
    }
    assert {assets.get(dg.AssetKey(key)).group_name for key in parents} == {"ensemble"}
