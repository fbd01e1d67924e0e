"""The three query-log sources: one layout, one contract for missing and empty days, clear S3 errors."""

from __future__ import annotations

import gzip
import re
import sys
import types
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pandas as pd
import pytest
from botocore.stub import Stubber
from dagster_aws.s3 import S3Resource

from manga_distill_assets.data.query_log import CorruptLogFile, DayNotFound, UnrecognisedLogFiles
from manga_distill_assets.resources.query_log import (
    LocalQueryLog,
    QueryLogSource,
    S3QueryLog,
    S3QueryLogError,
    SimulatedQueryLog,
)

DAY = date(2026, 6, 1)
PLAIN = b'{"text": "is vol 3 in stock"}\n{"text": "ship to tokyo"}\n'
ZIPPED = gzip.compress(b'{"text": "refund please"}\nnot json\n')


def _local_day(root: Path, day: date = DAY) -> Path:
    folder = root / f"dt={day.isoformat()}"
    folder.mkdir(parents=True)
    return folder


def test_local_log_reads_the_day_folder_under_root(tmp_path: Path) -> None:
    folder = _local_day(tmp_path)
    (folder / "a.jsonl").write_bytes(PLAIN)
    (folder / "b.jsonl.gz").write_bytes(ZIPPED)
    (_local_day(tmp_path, date(2026, 6, 2)) / "a.jsonl").write_bytes(b'{"text": "another day"}\n')

    parsed = LocalQueryLog(root=str(tmp_path)).read_day(DAY)

    assert parsed.rows["text"].tolist() == ["is vol 3 in stock", "ship to tokyo", "refund please"]
    assert parsed.malformed["invalid_json"] == 1


def test_local_log_missing_day_names_the_day_folder(tmp_path: Path) -> None:
    with pytest.raises(DayNotFound, match=re.escape(str(tmp_path / "dt=2026-06-01"))):
        LocalQueryLog(root=str(tmp_path)).read_day(DAY)


def test_local_log_existing_day_without_lines_is_empty(tmp_path: Path) -> None:
    (_local_day(tmp_path) / "a.jsonl").write_bytes(b"")

    assert LocalQueryLog(root=str(tmp_path)).read_day(DAY).rows.empty


def test_local_log_missing_root_is_a_configuration_error_not_a_missing_day(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"LocalQueryLog\.root"):
        LocalQueryLog(root=str(tmp_path / "nowhere")).read_day(DAY)


@pytest.fixture
def bucket(s3_client: Any) -> Any:
    s3_client.create_bucket(Bucket="query-logs")
    return s3_client


def _s3_log(endpoint: str, prefix: str = "logs/queries", bucket: str = "query-logs") -> S3QueryLog:
    return S3QueryLog(bucket=bucket, prefix=prefix, s3=S3Resource(endpoint_url=endpoint))


def test_s3_log_reads_plain_and_gzip_objects_of_the_day_in_key_order(s3_endpoint: str, bucket: Any) -> None:
    bucket.put_object(Bucket="query-logs", Key="logs/queries/dt=2026-06-01/part-1.jsonl.gz", Body=ZIPPED)
    bucket.put_object(Bucket="query-logs", Key="logs/queries/dt=2026-06-01/part-0.jsonl", Body=PLAIN)
    bucket.put_object(Bucket="query-logs", Key="logs/queries/dt=2026-06-01/_SUCCESS", Body=b"")
    bucket.put_object(
        Bucket="query-logs", Key="logs/queries/dt=2026-06-02/part-0.jsonl", Body=b'{"text": "x"}\n'
    )
    bucket.put_object(Bucket="query-logs", Key="other/dt=2026-06-01/part-0.jsonl", Body=b'{"text": "y"}\n')

    parsed = _s3_log(s3_endpoint).read_day(DAY)

    assert parsed.rows["text"].tolist() == ["is vol 3 in stock", "ship to tokyo", "refund please"]
    assert parsed.rows["source"].tolist() == ["part-0.jsonl", "part-0.jsonl", "part-1.jsonl.gz"]
    assert parsed.malformed["invalid_json"] == 1
    assert parsed.lines_read == 4


def test_s3_log_reads_key_value_sub_prefixes_of_the_day_like_sub_folders(
    s3_endpoint: str, bucket: Any
) -> None:
    bucket.put_object(Bucket="query-logs", Key="logs/queries/dt=2026-06-01/hour=01/", Body=b"")
    bucket.put_object(Bucket="query-logs", Key="logs/queries/dt=2026-06-01/hour=01/q.jsonl", Body=PLAIN)
    bucket.put_object(Bucket="query-logs", Key="logs/queries/dt=2026-06-01/hour=02/q.JSONL.gz", Body=ZIPPED)

    parsed = _s3_log(s3_endpoint).read_day(DAY)

    assert parsed.rows["text"].tolist() == ["is vol 3 in stock", "ship to tokyo", "refund please"]
    assert parsed.rows["source"].tolist() == ["hour=01/q.jsonl", "hour=01/q.jsonl", "hour=02/q.JSONL.gz"]


def test_s3_log_objects_it_does_not_recognise_fail_the_day_naming_each(s3_endpoint: str, bucket: Any) -> None:
    bucket.put_object(Bucket="query-logs", Key="logs/queries/dt=2026-06-01/q.jsonl", Body=PLAIN)
    bucket.put_object(Bucket="query-logs", Key="logs/queries/dt=2026-06-01/part-1.json", Body=PLAIN)
    bucket.put_object(Bucket="query-logs", Key="logs/queries/dt=2026-06-01/old/q.jsonl", Body=PLAIN)

    with pytest.raises(
        UnrecognisedLogFiles,
        match=re.escape(
            "s3://query-logs/logs/queries/dt=2026-06-01/ holds files the query-log reader does not "
            "recognise: old/q.jsonl, part-1.json."
        ),
    ):
        _s3_log(s3_endpoint).read_day(DAY)


def test_s3_log_zero_byte_gzip_object_fails_naming_it(s3_endpoint: str, bucket: Any) -> None:
    bucket.put_object(Bucket="query-logs", Key="logs/queries/dt=2026-06-01/q.jsonl.gz", Body=b"")

    with pytest.raises(CorruptLogFile, match=r"q\.jsonl\.gz is empty \(0 bytes\)"):
        _s3_log(s3_endpoint).read_day(DAY)


def test_s3_log_with_an_empty_prefix_reads_from_the_bucket_root(s3_endpoint: str, bucket: Any) -> None:
    bucket.put_object(Bucket="query-logs", Key="dt=2026-06-01/q.jsonl", Body=PLAIN)

    assert len(_s3_log(s3_endpoint, prefix="").read_day(DAY).rows) == 2


def test_s3_log_missing_day_prefix_is_a_day_not_found_naming_it(s3_endpoint: str, bucket: Any) -> None:
    bucket.put_object(Bucket="query-logs", Key="logs/queries/dt=2026-05-31/q.jsonl", Body=PLAIN)

    with pytest.raises(DayNotFound, match="s3://query-logs/logs/queries/dt=2026-06-01/"):
        _s3_log(s3_endpoint).read_day(DAY)


def test_s3_log_day_with_only_a_folder_marker_is_empty(s3_endpoint: str, bucket: Any) -> None:
    bucket.put_object(Bucket="query-logs", Key="logs/queries/dt=2026-06-01/", Body=b"")

    parsed = _s3_log(s3_endpoint).read_day(DAY)

    assert parsed.rows.empty
    assert parsed.lines_read == 0


def test_s3_log_missing_bucket_names_the_bucket(s3_endpoint: str) -> None:
    with pytest.raises(S3QueryLogError, match="'no-such-bucket' does not exist"):
        _s3_log(s3_endpoint, bucket="no-such-bucket").read_day(DAY)


def test_s3_log_errors_never_show_credentials(s3_endpoint: str) -> None:
    with pytest.raises(S3QueryLogError) as raised:
        _s3_log(s3_endpoint, bucket="no-such-bucket").read_day(DAY)

    assert "testing" not in str(raised.value)


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Stubber:
    """An S3 client answering from a botocore Stubber, for the errors moto's server does not produce."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", region_name="us-east-1")
    monkeypatch.setattr(S3Resource, "get_client", lambda self: client)
    with Stubber(client) as stubber:
        yield stubber


def test_s3_log_list_denied_names_the_place_and_s3_listbucket(stubbed: Stubber) -> None:
    stubbed.add_client_error("list_objects_v2", service_error_code="AccessDenied", http_status_code=403)
    log = S3QueryLog(bucket="query-logs", prefix="logs", s3=S3Resource())

    with pytest.raises(S3QueryLogError) as raised:
        log.read_day(DAY)

    message = str(raised.value)
    assert "s3://query-logs/logs/dt=2026-06-01/" in message
    assert "s3:ListBucket on arn:aws:s3:::query-logs" in message


def test_s3_log_read_denied_names_the_object_and_s3_getobject(stubbed: Stubber) -> None:
    key = "logs/dt=2026-06-01/q.jsonl"
    stubbed.add_response("list_objects_v2", {"Contents": [{"Key": key}], "IsTruncated": False})
    stubbed.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
    log = S3QueryLog(bucket="query-logs", prefix="logs", s3=S3Resource())

    with pytest.raises(S3QueryLogError) as raised:
        log.read_day(DAY)

    assert f"s3:GetObject on arn:aws:s3:::query-logs/{key}" in str(raised.value)


def test_s3_log_works_as_a_dagster_resource_with_a_nested_s3_resource(s3_endpoint: str, bucket: Any) -> None:
    bucket.put_object(Bucket="query-logs", Key="logs/queries/dt=2026-06-01/q.jsonl", Body=PLAIN)

    @dg.asset
    def day_rows(query_log: QueryLogSource) -> int:
        return len(query_log.read_day(DAY).rows)

    result = dg.materialize([day_rows], resources={"query_log": _s3_log(s3_endpoint)})

    assert result.output_for_node("day_rows") == 2


def test_simulated_log_parses_the_simulator_lines_for_its_day_seed_and_volume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[date, int, int]] = []

    def simulate_day(day: date, *, seed: int, mean_volume: int) -> list[str]:
        calls.append((day, seed, mean_volume))
        return ['{"text": "is vol 3 in stock"}', "not json"]

    simulator = types.ModuleType("manga_distill_assets.data.query_simulator")
    simulator.simulate_day = simulate_day  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, simulator.__name__, simulator)

    parsed = SimulatedQueryLog(seed=3, mean_volume=20).read_day(DAY)

    assert calls == [(DAY, 3, 20)]
    assert parsed.rows["text"].tolist() == ["is vol 3 in stock"]
    assert parsed.rows["source"].tolist() == ["simulated"]
    assert parsed.malformed["invalid_json"] == 1


def test_simulated_log_is_the_same_for_the_same_day_and_seed() -> None:
    first = SimulatedQueryLog(seed=7, mean_volume=50).read_day(DAY)
    again = SimulatedQueryLog(seed=7, mean_volume=50).read_day(DAY)

    assert len(first.rows) > 0
    assert set(first.rows["source"]) == {"simulated"}
    pd.testing.assert_frame_equal(first.rows, again.rows)


def test_simulated_log_differs_between_days() -> None:
    log = SimulatedQueryLog(seed=7, mean_volume=50)

    assert log.read_day(DAY).rows["text"].tolist() != log.read_day(date(2026, 6, 2)).rows["text"].tolist()
