"""raw_queries and unlabeled_queries, materialised for real on an ephemeral instance."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from manga_distill_assets.assets.queries.assets import WINDOW_DAYS, daily_partitions, unlabeled_queries
from tests.assets.harness import Graph, recent_days, write_day


@pytest.fixture
def graph(tmp_path) -> Graph:
    return Graph(tmp_path)


def test_window_maps_to_exactly_the_last_30_days():
    mapping = unlabeled_queries.get_partition_mapping(dg.AssetKey("raw_queries"))
    subset = daily_partitions.empty_subset().with_partition_keys(["2026-11-27"])
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        subset, daily_partitions, daily_partitions
    ).partitions_subset.get_partition_keys()
    assert list(upstream) == [str(day.date()) for day in pd.date_range("2026-10-29", "2026-11-27")]
    assert len(upstream) == WINDOW_DAYS


def test_same_day_content_gives_the_same_data_version(graph):
    (day,) = recent_days(1)
    write_day(graph.log_root, day, ["where is my order?", "is chainsaw man vol 12 in stock"])
    graph.materialize("raw_queries", partition_key=day)
    first = graph.data_version("raw_queries", day)
    graph.materialize("raw_queries", partition_key=day)
    assert graph.data_version("raw_queries", day) == first


def test_changed_day_content_changes_the_data_version(graph):
    (day,) = recent_days(1)
    write_day(graph.log_root, day, ["where is my order?"])
    graph.materialize("raw_queries", partition_key=day)
    first = graph.data_version("raw_queries", day)
    write_day(graph.log_root, day, ["where is my order?", "refund please"])
    graph.materialize("raw_queries", partition_key=day)
    assert graph.data_version("raw_queries", day) != first


def test_malformed_lines_are_counted_not_fatal(graph):
    (day,) = recent_days(1)
    path = write_day(graph.log_root, day, ["where is my order?"])
    path.write_text(path.read_text() + "{not json\n" + '{"no_text": 1}\n')
    graph.materialize("raw_queries", partition_key=day)
    metadata = graph.metadata("raw_queries", day)
    assert metadata["rows"] == 1
    assert metadata["malformed"] == 2


def test_a_day_that_has_not_landed_fails_naming_the_place(graph):
    (day,) = recent_days(1)
    result = graph.materialize("raw_queries", partition_key=day, raise_on_error=False)
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    message = str(failure.event_specific_data.error)
    assert f"dt={day}" in message and "Re-run partition" in message


def test_unlabeled_queries_scrubs_dedups_and_removes_eval_texts(graph):
    days = recent_days(3)
    graph.materialize("labeled_intents")
    labeled = pd.read_csv(graph.resources["labeled_source"].path)
    test_text = labeled.loc[labeled["split"] == "test", "text"].iloc[0]
    write_day(
        graph.log_root, days[0], ["Where is my order?", "where is my order", "email me at jo@example.com"]
    )
    write_day(graph.log_root, days[1], ["WHERE IS MY ORDER?!", test_text])
    write_day(graph.log_root, days[2], ["do you have frieren vol 3"])
    for day in days:
        graph.materialize("raw_queries", partition_key=day)
    result = graph.materialize("unlabeled_queries", partition_key=days[-1])
    frame = result.output_for_node("unlabeled_queries")
    assert sorted(frame["text"]) == ["Where is my order?", "do you have frieren vol 3", "email me at <EMAIL>"]
    assert frame.set_index("text").loc["Where is my order?", "frequency"] == 3
    metadata = graph.metadata("unlabeled_queries", days[-1])
    assert metadata["leakage_removed"] == 1
    assert metadata["window"].endswith(days[-1])
    checks = {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}
    assert checks == {"no_eval_leakage": True, "no_pii_residue": True, "schema": True}


def test_a_missing_day_inside_the_window_is_skipped(graph):
    days = recent_days(3)
    graph.materialize("labeled_intents")
    write_day(graph.log_root, days[0], ["is berserk deluxe vol 1 back in stock"])
    write_day(graph.log_root, days[2], ["cancel my preorder of oshi no ko 14"])
    graph.materialize("raw_queries", partition_key=days[0])
    graph.materialize("raw_queries", partition_key=days[2])
    result = graph.materialize("unlabeled_queries", partition_key=days[2])
    assert len(result.output_for_node("unlabeled_queries")) == 2


def test_the_window_waits_for_the_labelled_set_but_not_for_missing_days(graph):
    days = recent_days(2)
    write_day(graph.log_root, days[1], ["is frieren vol 14 out yet"])
    tick = dg.evaluate_automation_conditions(defs=graph.defs, instance=graph.instance)
    graph.materialize("raw_queries", partition_key=days[1])
    tick = dg.evaluate_automation_conditions(defs=graph.defs, instance=graph.instance, cursor=tick.cursor)
    assert tick.get_num_requested(dg.AssetKey("unlabeled_queries")) == 0
    graph.materialize("labeled_intents")
    tick = dg.evaluate_automation_conditions(defs=graph.defs, instance=graph.instance, cursor=tick.cursor)
    assert tick.get_requested_partitions(dg.AssetKey("unlabeled_queries")) == {days[1]}
