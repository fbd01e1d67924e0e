"""The shipped Definitions: what a user gets from `dagster dev` with no flags."""

from datetime import UTC, datetime

import dagster as dg
import pytest

from manga_distill_assets.assets.intent_classifier import MODEL_ASSETS
from manga_distill_assets.assets.queries.schedules import nightly_refresh
from manga_distill_assets.definitions import defs
from manga_distill_assets.resources.paraphraser import BedrockParaphraser, OfflineParaphraser
from manga_distill_assets.settings import bedrock_resources


def test_every_asset_has_a_code_version():
    graph = defs.resolve_asset_graph()
    missing = [key.to_user_string() for key in graph.get_all_asset_keys() if not graph.get(key).code_version]
    assert missing == []


def test_the_intent_targets_asset_list_is_its_group_each_after_its_inputs():
    graph = defs.resolve_asset_graph()
    group = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).group_name == "intent_classifier"
    }
    for position, key in enumerate(MODEL_ASSETS):
        parents = {parent.to_user_string() for parent in graph.get(dg.AssetKey(key)).parent_keys}
        assert parents & group <= set(MODEL_ASSETS[:position]), key
    assert set(MODEL_ASSETS) == group


def test_the_graph_matches_the_design():
    graph = defs.resolve_asset_graph()
    parents = {
        key.to_user_string(): {parent.to_user_string() for parent in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert parents["unlabeled_queries"] == {"raw_queries", "labeled_intents"}
    assert parents["teacher_soft_labels"] == {
        "teacher_model",
        "labeled_intents",
        "claude_paraphrases",
        "unlabeled_queries",
    }
    assert parents["teacher_refined"] == {"teacher_model", "teacher_soft_labels", "labeled_intents"}
    assert parents["refined_soft_labels"] == {"teacher_refined", "teacher_soft_labels", "labeled_intents"}
    assert parents["student_stage1"] == {
        "teacher_refined",
        "teacher_soft_labels",
        "labeled_intents",
        "general_student",
    }
    assert parents["general_student"] == set()
    assert parents["student_stage2"] == {"student_stage1", "refined_soft_labels", "labeled_intents"}
    assert parents["student_onnx"] == {"student_stage2", "labeled_intents", "refined_soft_labels"}
    assert parents["baseline_student"] == {"teacher_model", "labeled_intents", "general_student"}
    assert parents["baseline_student_teacher_init"] == {
        "teacher_refined",
        "labeled_intents",
        "general_student",
    }
    assert parents["eval_report"] == {
        "teacher_refined",
        "teacher_model",
        "student_stage2",
        "student_onnx",
        "baseline_student",
        "baseline_student_teacher_init",
        "labeled_intents",
    }


def test_automation_sensor_runs_by_default():
    sensor = defs.resolve_sensor_def("content_change_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_nightly_refresh_lands_yesterday_at_two_utc():
    assert nightly_refresh.cron_schedule == "0 2 * * *"
    assert nightly_refresh.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 28, 2, 0, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    request = nightly_refresh.evaluate_tick(context).run_requests[0]
    assert request.partition_key == "2026-11-27"


def test_the_paraphraser_is_offline_unless_bedrock_is_asked_for(tmp_path, monkeypatch):
    monkeypatch.delenv("MANGA_PARAPHRASER", raising=False)
    assert isinstance(bedrock_resources(tmp_path)["paraphraser"], OfflineParaphraser)


def test_bedrock_knobs_come_from_the_environment(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MANGA_PARAPHRASER", "bedrock")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("MANGA_BEDROCK_API", "invoke_model")
    monkeypatch.setenv("MANGA_BEDROCK_MAX_CONCURRENCY", "2")
    monkeypatch.setenv("MANGA_BEDROCK_MAX_RUN_USD", "1.5")
    resources = bedrock_resources(tmp_path)
    paraphraser, claude = resources["paraphraser"], resources["claude"]
    assert isinstance(paraphraser, BedrockParaphraser)
    assert paraphraser.claude is claude
    assert (claude.region_name, claude.api) == ("eu-west-1", "invoke_model")
    assert (claude.max_concurrency, claude.max_run_usd) == (2, 1.5)
