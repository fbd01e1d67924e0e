"""The production resources against a real S3 endpoint (moto's server over HTTP): the whole graph, and the
errors a deployment meets first: a bucket that does not exist, and credentials that lack a permission.

Access is really denied by the server, not simulated in the client (`tests.s3_server.enforced_iam`). Each
denial test creates an IAM user whose policy lacks one permission and runs the graph with that user's keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster_aws.s3 import S3Resource

from manga_distill_assets.assets.intent_classifier import MODEL_ASSETS
from manga_distill_assets.definitions import production_resources, resources_from_env
from manga_distill_assets.resources.io_manager import TableIOManager
from manga_distill_assets.resources.model_store import LocalModelStore, S3ModelStore
from manga_distill_assets.resources.query_log import SimulatedQueryLog
from tests.assets.harness import (
    LOG_BUCKET,
    LOG_PREFIX,
    STORE_BUCKET,
    STORE_PREFIX,
    Graph,
    failure_message,
    production_env,
    production_graph,
    recent_days,
    registered_teacher,
    run,
    write_s3_day,
)
from tests.s3_server import admin_client, allow, enforced_iam, object_keys

QUERIES = [
    "is the one piece box set 4 in stock",
    "my jjk order is late",
    "recommend something like frieren",
    "can i return a damaged volume",
]


def stored_keys(endpoint: str, bucket: str = STORE_BUCKET) -> list[str]:
    return object_keys(admin_client(endpoint), bucket)


def stored_bytes(endpoint: str, key: str) -> bytes:
    return admin_client(endpoint).get_object(Bucket=STORE_BUCKET, Key=key)["Body"].read()


def labels_of(graph: Graph) -> list[str]:
    result = run(graph, "labeled_intents")
    assert result.success
    return sorted(result.output_for_node("labeled_intents")["label"].unique())


def use_keys(monkeypatch: pytest.MonkeyPatch, keys: tuple[str, str]) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys[1])


@pytest.fixture
def buckets(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    client = admin_client(s3_endpoint)
    client.create_bucket(Bucket=STORE_BUCKET)
    client.create_bucket(Bucket=LOG_BUCKET)
    production_env(monkeypatch, s3_endpoint)
    return s3_endpoint


# Choosing resources by environment


def test_without_production_variables_the_graph_keeps_everything_local(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MANGA_S3_BUCKET", "MANGA_QUERY_LOG_S3_URI", "MANGA_QUERY_LOG_ROOT"):
        monkeypatch.delenv(name, raising=False)
    resources = resources_from_env()
    assert isinstance(resources["io_manager"], TableIOManager)
    assert isinstance(resources["model_store"], LocalModelStore)
    assert isinstance(resources["query_log"], SimulatedQueryLog)


def test_a_query_log_uri_that_is_not_s3_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MANGA_QUERY_LOG_S3_URI", "manga-query-logs/logs")
    with pytest.raises(ValueError, match=r"MANGA_QUERY_LOG_S3_URI='manga-query-logs/logs' is not an S3 URI"):
        production_resources()


# The whole graph on S3


@pytest.mark.slow  # trains the smoke graph with the MiniLM teacher
def test_the_whole_graph_runs_on_s3_and_its_report_reads_back(buckets: str, tmp_path: Path) -> None:
    days = recent_days(3)
    for offset, day in enumerate(days):
        write_s3_day(buckets, day, QUERIES[offset : offset + 2])
    graph = production_graph(tmp_path)

    assert graph.materialize("labeled_intents").success
    for day in days:
        assert graph.materialize("raw_queries", partition_key=day).success
    assert graph.materialize("unlabeled_queries", partition_key=days[-1]).success
    result = graph.materialize(*MODEL_ASSETS)

    keys = stored_keys(buckets)
    assets = f"{STORE_PREFIX}/assets"
    assert {f"{assets}/raw_queries/{day}.parquet" for day in days} <= set(keys)
    assert {
        f"{assets}/labeled_intents/data.parquet",
        f"{assets}/unlabeled_queries/{days[-1]}.parquet",
    } <= set(keys)
    for kind in ("teacher", "student_stage1", "student_stage2", "baseline_student", "eval_report"):
        assert any(key.startswith(f"{STORE_PREFIX}/models/{kind}/") for key in keys), kind
    report = result.output_for_node("eval_report")
    assert json.loads(stored_bytes(buckets, f"{assets}/eval_report/data.json")) == json.loads(
        json.dumps(report)
    )
    report_folder = graph.metadata("eval_report")["report_uri"].removeprefix(f"s3://{STORE_BUCKET}/")
    beside_models = json.loads(stored_bytes(buckets, f"{report_folder}eval_report.json"))
    assert beside_models["student"]["sha256"] == report["student"]["sha256"]
    assert not (tmp_path / "artifacts" / "assets").exists()
    assert not (tmp_path / "artifacts" / "models").exists()


# A bucket that does not exist


def test_a_missing_query_log_bucket_fails_the_day_naming_the_bucket_and_the_setting(
    buckets: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (day,) = recent_days(1)
    monkeypatch.setenv("MANGA_QUERY_LOG_S3_URI", "s3://no-such-query-logs/logs")

    message = failure_message(run(production_graph(tmp_path), "raw_queries", partition_key=day))

    assert "S3 bucket 'no-such-query-logs' does not exist" in message
    assert "MANGA_QUERY_LOG_S3_URI" in message


def test_a_missing_store_bucket_fails_naming_the_bucket_the_key_and_the_setting(
    buckets: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MANGA_S3_BUCKET", "no-such-store")

    message = failure_message(run(production_graph(tmp_path), "labeled_intents"))

    assert "The S3 bucket 'no-such-store' does not exist" in message
    assert f"s3://no-such-store/{STORE_PREFIX}/assets/labeled_intents/data.parquet" in message
    assert "MANGA_S3_BUCKET" in message


def test_a_missing_model_bucket_fails_the_model_asset_naming_the_bucket(buckets: str, tmp_path: Path) -> None:
    graph = production_graph(tmp_path)
    config = registered_teacher(tmp_path, labels_of(graph), seed=0)
    store: S3ModelStore = graph.resources["model_store"]
    graph.resources["model_store"] = S3ModelStore(
        bucket="no-such-models", prefix=store.prefix, s3=S3Resource(), cache_dir=store.cache_dir
    )
    graph.rebuild()

    message = failure_message(run(graph, "teacher_model", config=config))

    assert "The S3 bucket 'no-such-models' does not exist" in message
    assert f"s3://no-such-models/{STORE_PREFIX}/models/teacher/" in message


# Credentials without a permission


def test_a_query_log_the_credentials_cannot_list_fails_and_keeps_the_stored_day(
    buckets: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (day,) = recent_days(1)
    write_s3_day(buckets, day, QUERIES[:2])
    assert run(production_graph(tmp_path), "raw_queries", partition_key=day).success
    stored_key = f"{STORE_PREFIX}/assets/raw_queries/{day}.parquet"
    before = stored_bytes(buckets, stored_key)
    write_s3_day(buckets, day, QUERIES)

    with enforced_iam(buckets, [allow(["s3:*"], STORE_BUCKET, f"{STORE_BUCKET}/*")]) as keys:
        use_keys(monkeypatch, keys)
        message = failure_message(run(production_graph(tmp_path), "raw_queries", partition_key=day))

    assert f"Access denied reading s3://{LOG_BUCKET}/{LOG_PREFIX}/dt={day}/" in message
    assert f"s3:ListBucket on arn:aws:s3:::{LOG_BUCKET}" in message
    assert stored_bytes(buckets, stored_key) == before


def test_asset_values_the_credentials_cannot_write_fail_naming_the_key_and_keep_the_stored_value(
    buckets: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (day,) = recent_days(1)
    write_s3_day(buckets, day, QUERIES[:2])
    assert run(production_graph(tmp_path), "raw_queries", partition_key=day).success
    stored_key = f"{STORE_PREFIX}/assets/raw_queries/{day}.parquet"
    before = stored_bytes(buckets, stored_key)
    write_s3_day(buckets, day, QUERIES)
    read_only = allow(
        ["s3:ListBucket", "s3:GetObject"], LOG_BUCKET, f"{LOG_BUCKET}/*", STORE_BUCKET, f"{STORE_BUCKET}/*"
    )

    with enforced_iam(buckets, [read_only]) as keys:
        use_keys(monkeypatch, keys)
        message = failure_message(run(production_graph(tmp_path), "raw_queries", partition_key=day))

    assert f"Access to s3://{STORE_BUCKET}/{stored_key} was denied (AccessDenied)" in message
    assert "s3:PutObject" in message
    assert stored_bytes(buckets, stored_key) == before


def test_a_model_store_the_credentials_cannot_read_fails_naming_the_key_and_keeps_the_stored_ref(
    buckets: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = production_graph(tmp_path)
    labels = labels_of(graph)
    assert run(graph, "teacher_model", config=registered_teacher(tmp_path, labels, seed=0)).success
    stored_key = f"{STORE_PREFIX}/assets/teacher_model/data.json"
    before = stored_bytes(buckets, stored_key)
    other_teacher = registered_teacher(tmp_path, labels, seed=1)
    assets_only = allow(["s3:*"], f"{STORE_BUCKET}/{STORE_PREFIX}/assets/*")

    with enforced_iam(buckets, [assets_only, allow(["s3:ListBucket"], STORE_BUCKET)]) as keys:
        use_keys(monkeypatch, keys)
        message = failure_message(run(production_graph(tmp_path), "teacher_model", config=other_teacher))

    assert f"Access to s3://{STORE_BUCKET}/{STORE_PREFIX}/models/teacher/" in message
    assert "s3:GetObject" in message
    assert stored_bytes(buckets, stored_key) == before
