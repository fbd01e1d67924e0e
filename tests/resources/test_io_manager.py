"""Asset values are stored as Parquet or JSON, one file per partition, and never half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import (
    AssetIn,
    DailyPartitionsDefinition,
    PartitionKeyRange,
    TimeWindowPartitionMapping,
    asset,
    build_input_context,
    build_output_context,
    materialize,
)
from dagster_aws.s3 import S3Resource

from manga_distill_assets.resources.io_manager import S3TableIOManager, TableIOManager
from manga_distill_assets.resources.model_store import ModelRef
from tests.s3_server import object_keys

DAILY = DailyPartitionsDefinition(start_date="2024-01-01")
BUCKET = "assets-bucket"


def _day_frame(day: str, rows: int = 2) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"{day} query {i}" for i in range(rows)], "day": [day] * rows})


def _store(manager, asset_key: str, value, partition_key: str | None = None) -> None:
    context = build_output_context(
        asset_key=asset_key,
        partition_key=partition_key,
        asset_partitions_def=DAILY if partition_key else None,
    )
    manager.handle_output(context, value)


def _load(manager, asset_key: str, first_day: str | None = None, last_day: str | None = None):
    key_range = PartitionKeyRange(first_day, last_day or first_day) if first_day else None
    context = build_input_context(
        asset_key=asset_key,
        asset_partition_key_range=key_range,
        asset_partitions_def=DAILY if key_range else None,
    )
    return manager.load_input(context)


@pytest.fixture
def manager(tmp_path: Path) -> TableIOManager:
    return TableIOManager(base_dir=str(tmp_path / "assets"))


# Round trips and paths


def test_a_dataframe_round_trips_through_parquet(manager: TableIOManager, tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["where is my order", "recommend a manga"], "label": [3, 7]})
    _store(manager, "labeled_intents", frame)
    assert (tmp_path / "assets" / "labeled_intents" / "data.parquet").is_file()
    pd.testing.assert_frame_equal(_load(manager, "labeled_intents"), frame)


def test_a_dict_round_trips_through_readable_json(manager: TableIOManager, tmp_path: Path) -> None:
    report = {"accuracy": 0.921, "per_class_f1": {"order_status": 0.95}, "confusable": [["a", "b"]]}
    _store(manager, "eval_report", report)
    stored = tmp_path / "assets" / "eval_report" / "data.json"
    assert json.loads(stored.read_text()) == report
    assert _load(manager, "eval_report") == report


def test_a_list_round_trips_through_json(manager: TableIOManager) -> None:
    _store(manager, "paraphrase_texts", ["one", "two"])
    assert _load(manager, "paraphrase_texts") == ["one", "two"]


def test_numpy_scalars_in_a_dict_are_stored_as_plain_numbers(manager: TableIOManager) -> None:
    _store(manager, "eval_report", {"accuracy": np.float32(0.5), "n": np.int64(3)})
    assert _load(manager, "eval_report") == {"accuracy": 0.5, "n": 3}


def test_a_partition_is_stored_under_its_partition_key(manager: TableIOManager, tmp_path: Path) -> None:
    _store(manager, "raw_queries", _day_frame("2024-01-02"), partition_key="2024-01-02")
    assert (tmp_path / "assets" / "raw_queries" / "2024-01-02.parquet").is_file()
    pd.testing.assert_frame_equal(_load(manager, "raw_queries", "2024-01-02"), _day_frame("2024-01-02"))


def test_a_multi_part_asset_key_becomes_nested_folders(manager: TableIOManager, tmp_path: Path) -> None:
    _store(manager, ["intents", "eval_report"], {"accuracy": 1.0})
    assert (tmp_path / "assets" / "intents" / "eval_report" / "data.json").is_file()


def test_changing_a_value_from_json_to_a_table_replaces_the_json(
    manager: TableIOManager, tmp_path: Path
) -> None:
    _store(manager, "report", {"rows": 1})
    _store(manager, "report", pd.DataFrame({"rows": [1]}))
    assert sorted(path.name for path in (tmp_path / "assets" / "report").iterdir()) == ["data.parquet"]
    assert isinstance(_load(manager, "report"), pd.DataFrame)


def test_a_step_returning_none_stores_nothing(manager: TableIOManager, tmp_path: Path) -> None:
    _store(manager, "side_effect_only", None)
    assert not (tmp_path / "assets").exists()


def test_an_unsupported_value_is_refused_naming_the_asset(manager: TableIOManager) -> None:
    with pytest.raises(TypeError, match=r"output of teacher_model: a set cannot be stored"):
        _store(manager, "teacher_model", {"not", "storable"})


def test_loading_an_asset_never_stored_says_to_materialise_it(manager: TableIOManager) -> None:
    with pytest.raises(FileNotFoundError, match="materialise labeled_intents first"):
        _load(manager, "labeled_intents")


def test_loading_one_missing_partition_names_it(manager: TableIOManager) -> None:
    with pytest.raises(FileNotFoundError, match="materialise raw_queries partition 2024-01-05 first"):
        _load(manager, "raw_queries", "2024-01-05")


# Windows of partitions


def test_a_three_day_window_loads_as_the_days_concatenated_in_order(manager: TableIOManager) -> None:
    for day in ("2024-01-03", "2024-01-01", "2024-01-02"):
        _store(manager, "raw_queries", _day_frame(day), partition_key=day)
    expected = pd.concat(
        [_day_frame("2024-01-01"), _day_frame("2024-01-02"), _day_frame("2024-01-03")], ignore_index=True
    )
    pd.testing.assert_frame_equal(_load(manager, "raw_queries", "2024-01-01", "2024-01-03"), expected)


def test_a_day_that_never_landed_is_skipped_with_a_warning(
    manager: TableIOManager, capsys: pytest.CaptureFixture[str]
) -> None:
    for day in ("2024-01-01", "2024-01-03"):
        _store(manager, "raw_queries", _day_frame(day), partition_key=day)
    loaded = _load(manager, "raw_queries", "2024-01-01", "2024-01-03")
    assert sorted(set(loaded["day"])) == ["2024-01-01", "2024-01-03"]
    assert "Partition 2024-01-02 of raw_queries was never stored" in capsys.readouterr().err


def test_a_window_with_no_stored_day_fails_naming_the_window(manager: TableIOManager) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"None of the 3 partitions of raw_queries in 2024-01-01..2024-01-03"
    ):
        _load(manager, "raw_queries", "2024-01-01", "2024-01-03")


def test_a_window_of_json_values_loads_as_a_dict_by_partition_key(manager: TableIOManager) -> None:
    for day in ("2024-01-01", "2024-01-02"):
        _store(manager, "daily_counts", {"rows": int(day[-1])}, partition_key=day)
    assert _load(manager, "daily_counts", "2024-01-01", "2024-01-02") == {
        "2024-01-01": {"rows": 1},
        "2024-01-02": {"rows": 2},
    }


def test_a_time_window_partition_mapping_feeds_the_downstream_asset_three_days(
    manager: TableIOManager,
) -> None:
    @asset(partitions_def=DAILY)
    def raw_queries() -> pd.DataFrame:
        raise AssertionError("only the downstream asset is materialised")

    @asset(
        partitions_def=DAILY,
        ins={"raw_queries": AssetIn(partition_mapping=TimeWindowPartitionMapping(start_offset=-2))},
    )
    def window_size(raw_queries: pd.DataFrame) -> dict:
        return {"days": sorted(set(raw_queries["day"])), "rows": len(raw_queries)}

    for day in ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"):
        _store(manager, "raw_queries", _day_frame(day), partition_key=day)
    result = materialize(
        [raw_queries, window_size],
        selection=[window_size],
        partition_key="2024-01-04",
        resources={"io_manager": manager},
    )
    assert result.success
    assert _load(manager, "window_size", "2024-01-04") == {
        "days": ["2024-01-02", "2024-01-03", "2024-01-04"],
        "rows": 6,
    }


def test_a_model_ref_output_comes_back_as_a_model_ref_where_the_input_asks_for_one(
    manager: TableIOManager,
) -> None:
    stored_ref = ModelRef(uri="file:///m", sha256="ab" * 32, kind="teacher", label_map={"0": "a"})

    @asset
    def teacher_model() -> ModelRef:
        return stored_ref

    @asset
    def teacher_summary(teacher_model: ModelRef) -> dict:
        assert teacher_model == stored_ref
        return {"kind": teacher_model.kind}

    assert materialize([teacher_model, teacher_summary], resources={"io_manager": manager}).success
    assert _load(manager, "teacher_model") == stored_ref.to_dict()


# Atomic writes


def test_a_value_that_cannot_be_serialised_leaves_the_stored_one_intact(
    manager: TableIOManager, tmp_path: Path
) -> None:
    _store(manager, "raw_queries", _day_frame("2024-01-01"), partition_key="2024-01-01")
    stored = tmp_path / "assets" / "raw_queries" / "2024-01-01.parquet"
    before = stored.read_bytes()
    unserialisable = pd.DataFrame({"text": ["fine", {"not": "a string"}]})
    with pytest.raises(TypeError, match=r"Nothing stored at .*raw_queries/2024-01-01\.\* was changed"):
        _store(manager, "raw_queries", unserialisable, partition_key="2024-01-01")
    assert stored.read_bytes() == before
    assert sorted(path.name for path in stored.parent.iterdir()) == ["2024-01-01.parquet"]


def test_a_write_that_fails_midway_leaves_the_stored_value_and_no_temporary_file(
    manager: TableIOManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _store(manager, "eval_report", {"accuracy": 0.9})

    def failing_fsync(descriptor: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        _store(manager, "eval_report", {"accuracy": 0.1})
    monkeypatch.undo()
    assert _load(manager, "eval_report") == {"accuracy": 0.9}
    assert sorted(path.name for path in (tmp_path / "assets" / "eval_report").iterdir()) == ["data.json"]


# S3


@pytest.fixture
def s3_manager(s3_endpoint: str, s3_client) -> S3TableIOManager:
    s3_client.create_bucket(Bucket=BUCKET)
    return S3TableIOManager(bucket=BUCKET, prefix="assets", s3=S3Resource(endpoint_url=s3_endpoint))


def _s3_keys(client) -> list[str]:
    return object_keys(client, BUCKET)


def test_s3_a_partition_round_trips_under_its_key(s3_manager: S3TableIOManager, s3_client) -> None:
    _store(s3_manager, "raw_queries", _day_frame("2024-01-01"), partition_key="2024-01-01")
    assert _s3_keys(s3_client) == ["assets/raw_queries/2024-01-01.parquet"]
    pd.testing.assert_frame_equal(_load(s3_manager, "raw_queries", "2024-01-01"), _day_frame("2024-01-01"))


def test_s3_a_dict_round_trips_through_json(s3_manager: S3TableIOManager, s3_client) -> None:
    _store(s3_manager, "eval_report", {"accuracy": 0.921})
    assert _s3_keys(s3_client) == ["assets/eval_report/data.json"]
    assert _load(s3_manager, "eval_report") == {"accuracy": 0.921}


def test_s3_a_three_day_window_loads_as_the_days_concatenated(s3_manager: S3TableIOManager) -> None:
    days = ("2024-01-01", "2024-01-02", "2024-01-03")
    for day in days:
        _store(s3_manager, "raw_queries", _day_frame(day), partition_key=day)
    expected = pd.concat([_day_frame(day) for day in days], ignore_index=True)
    pd.testing.assert_frame_equal(_load(s3_manager, "raw_queries", "2024-01-01", "2024-01-03"), expected)


def test_s3_loading_an_asset_never_stored_names_its_key(s3_manager: S3TableIOManager) -> None:
    with pytest.raises(FileNotFoundError, match=rf"s3://{BUCKET}/assets/labeled_intents/data\.parquet"):
        _load(s3_manager, "labeled_intents")


def test_s3_a_value_that_cannot_be_serialised_leaves_the_stored_object_intact(
    s3_manager: S3TableIOManager,
) -> None:
    _store(s3_manager, "eval_report", {"accuracy": 0.9})
    with pytest.raises(TypeError):
        _store(s3_manager, "eval_report", {"accuracy": object()})
    assert _load(s3_manager, "eval_report") == {"accuracy": 0.9}


def test_s3_manager_serves_a_materialised_asset_graph(s3_manager: S3TableIOManager, s3_client) -> None:
    @asset
    def labeled_intents() -> pd.DataFrame:
        return pd.DataFrame({"text": ["where is my order"], "label": ["order_status"]})

    @asset
    def label_counts(labeled_intents: pd.DataFrame) -> dict:
        return labeled_intents["label"].value_counts().to_dict()

    assert materialize([labeled_intents, label_counts], resources={"io_manager": s3_manager}).success
    assert _load(s3_manager, "label_counts") == {"order_status": 1}
    assert _s3_keys(s3_client) == ["assets/label_counts/data.json", "assets/labeled_intents/data.parquet"]
