"""Bad input, tried for real through the asset graph where a user meets it.

Each case ends in a counted skip reported in metadata, or in a failure that names the thing and what to do;
and a failed run never loses or overwrites what an earlier run stored. Cases already proven through the
graph elsewhere are not repeated: malformed JSON lines (test_query_assets), S3 access denied and missing
buckets (test_production_graph), a registered teacher's message (test_model_assets).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from manga_distill_assets.definitions import labeled_source_from_env
from manga_distill_assets.resources.model_store import ModelRef
from tests.assets.harness import Graph, failure_message, recent_days, registered_teacher, run, write_day

ONE_MEGABYTE = 1 << 20


@pytest.fixture
def graph(tmp_path: Path) -> Graph:
    """The shipped graph; its labelled file is a copy a test can edit."""
    return Graph(tmp_path)


def stored(graph: Graph, *parts: str) -> Path:
    return graph.root.joinpath("artifacts", "assets", *parts)


# The query log


def test_non_utf8_bytes_skip_only_their_line_and_are_counted(graph: Graph) -> None:
    (day,) = recent_days(1)
    path = write_day(graph.log_root, day, ["where is my order", "is frieren vol 3 in stock"])
    path.write_bytes(path.read_bytes() + b'{"text": "caf\xe9 au lait manga"}\n')

    assert graph.materialize("raw_queries", partition_key=day).success

    metadata = graph.metadata("raw_queries", day)
    assert (metadata["rows"], metadata["malformed_invalid_utf8"], metadata["lines_read"]) == (2, 1, 3)


def test_a_one_megabyte_query_is_kept_raw_and_dropped_from_the_transfer_set_counted(graph: Graph) -> None:
    (day,) = recent_days(1)
    huge = "manga " * (ONE_MEGABYTE // 6)
    write_day(graph.log_root, day, [huge, "where is my order"])
    graph.materialize("labeled_intents")

    assert graph.materialize("raw_queries", partition_key=day).success
    result = graph.materialize("unlabeled_queries", partition_key=day)

    assert graph.metadata("raw_queries", day)["rows"] == 2
    assert graph.metadata("unlabeled_queries", day)["too_long_dropped"] == 1
    assert result.output_for_node("unlabeled_queries")["text"].tolist() == ["where is my order"]


def test_an_empty_day_is_stored_as_zero_rows_and_flagged(graph: Graph) -> None:
    (day,) = recent_days(1)
    (graph.log_root / f"dt={day}").mkdir()
    (graph.log_root / f"dt={day}" / "part-0.jsonl").write_bytes(b"")

    assert graph.materialize("raw_queries", partition_key=day).success

    metadata = graph.metadata("raw_queries", day)
    assert (metadata["rows"], metadata["empty_day"]) == (0, True)
    assert pd.read_parquet(stored(graph, "raw_queries", f"{day}.parquet")).empty


def test_a_corrupt_redelivered_file_fails_the_day_naming_it_and_keeps_the_stored_day(graph: Graph) -> None:
    (day,) = recent_days(1)
    write_day(graph.log_root, day, ["where is my order"])
    graph.materialize("raw_queries", partition_key=day)
    before = stored(graph, "raw_queries", f"{day}.parquet").read_bytes()
    zipped = gzip.compress(b'{"text": "refund please"}\n' * 50)
    (graph.log_root / f"dt={day}" / "part-1.jsonl.gz").write_bytes(zipped[: len(zipped) // 2])

    message = failure_message(graph.materialize("raw_queries", partition_key=day, raise_on_error=False))

    assert "part-1.jsonl.gz is not a complete gzip file" in message and "re-deliver it" in message
    assert stored(graph, "raw_queries", f"{day}.parquet").read_bytes() == before


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("part-1.json", b'{"text": "refund please"}\n'),
        ("notes.txt", b"delivered by the nightly export\n"),
        ("old/part-1.jsonl", b'{"text": "refund please"}\n'),
    ],
)
def test_a_file_the_log_reader_does_not_recognise_fails_the_day_naming_it_and_keeps_the_stored_day(
    graph: Graph, name: str, payload: bytes
) -> None:
    (day,) = recent_days(1)
    write_day(graph.log_root, day, ["where is my order"])
    graph.materialize("raw_queries", partition_key=day)
    before = stored(graph, "raw_queries", f"{day}.parquet").read_bytes()
    path = graph.log_root / f"dt={day}" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(payload)

    message = failure_message(graph.materialize("raw_queries", partition_key=day, raise_on_error=False))

    assert f"does not recognise: {name}." in message
    assert stored(graph, "raw_queries", f"{day}.parquet").read_bytes() == before


def test_log_files_in_hour_folders_and_in_capitals_are_read(graph: Graph) -> None:
    (day,) = recent_days(1)
    (graph.log_root / f"dt={day}" / "hour=01").mkdir(parents=True)
    write_day(graph.log_root, day, ["where is my order"], name="hour=01/part-0.jsonl")
    write_day(graph.log_root, day, ["is frieren vol 3 in stock"], name="part-1.JSONL")

    assert graph.materialize("raw_queries", partition_key=day).success

    assert graph.metadata("raw_queries", day)["rows"] == 2


def test_a_zero_byte_gzip_file_fails_the_day_naming_it(graph: Graph) -> None:
    (day,) = recent_days(1)
    write_day(graph.log_root, day, ["where is my order"])
    (graph.log_root / f"dt={day}" / "part-1.jsonl.gz").write_bytes(b"")

    message = failure_message(graph.materialize("raw_queries", partition_key=day, raise_on_error=False))

    assert "part-1.jsonl.gz is empty (0 bytes)" in message and "Re-deliver it" in message


def test_queries_of_only_invisible_characters_are_dropped_and_counted(graph: Graph) -> None:
    (day,) = recent_days(1)
    write_day(graph.log_root, day, ["\u00ad\u200e", "\u3164 \u3164", "where is my order"])
    graph.materialize("labeled_intents")
    graph.materialize("raw_queries", partition_key=day)

    result = graph.materialize("unlabeled_queries", partition_key=day)

    assert result.output_for_node("unlabeled_queries")["text"].tolist() == ["where is my order"]
    assert graph.metadata("unlabeled_queries", day)["invisible_dropped"] == 2


# The labelled set


def test_a_split_column_that_is_not_in_the_file_fails_naming_it_and_keeps_the_stored_set(
    graph: Graph, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert graph.materialize("labeled_intents").success
    before = stored(graph, "labeled_intents", "data.parquet").read_bytes()
    monkeypatch.setenv("MANGA_LABELED_PATH", str(graph.labeled_path))
    monkeypatch.setenv("MANGA_LABELED_SPLIT_COLUMN", "Split")
    graph.resources["labeled_source"] = labeled_source_from_env()
    graph.rebuild()

    message = failure_message(graph.materialize("labeled_intents", raise_on_error=False))

    assert f"{graph.labeled_path}: no split column 'Split'" in message and "Did you mean 'split'?" in message
    assert stored(graph, "labeled_intents", "data.parquet").read_bytes() == before


def test_the_same_text_under_two_labels_fails_naming_both_lines_and_keeps_the_stored_set(
    graph: Graph,
) -> None:
    assert graph.materialize("labeled_intents").success
    before = stored(graph, "labeled_intents", "data.parquet").read_bytes()
    path = graph.labeled_path
    frame = pd.read_csv(path)
    other = sorted(set(frame["label"]) - {frame.loc[0, "label"]})[0]
    copy = pd.DataFrame({"text": [frame.loc[0, "text"].upper()], "label": [other], "split": ["validation"]})
    pd.concat([frame, copy], ignore_index=True).to_csv(path, index=False)

    message = failure_message(graph.materialize("labeled_intents", raise_on_error=False))

    assert f"{path}: line 2 (" in message and f"{path}: line {len(frame) + 2} (" in message
    assert "same text with different labels" in message
    assert stored(graph, "labeled_intents", "data.parquet").read_bytes() == before


def test_labels_spelled_in_two_cases_fail_naming_both(graph: Graph) -> None:
    path = graph.labeled_path
    frame = pd.read_csv(path)
    label = frame.loc[0, "label"]
    frame.loc[0, "label"] = label.title()
    frame.to_csv(path, index=False)

    message = failure_message(graph.materialize("labeled_intents", raise_on_error=False))

    assert f"'{label.title()}' ({path}: line 2)" in message and f"'{label}' ({path}: line" in message


def test_a_single_class_fails_naming_the_label(graph: Graph) -> None:
    path = graph.labeled_path
    frame = pd.read_csv(path)
    frame.assign(label="order_status").drop_duplicates("text").to_csv(path, index=False)

    message = failure_message(graph.materialize("labeled_intents", raise_on_error=False))

    assert f"{path}: the file holds only the label 'order_status'; a classifier needs at least 2" in message


def test_a_text_of_zero_width_characters_fails_naming_the_line(graph: Graph) -> None:
    path = graph.labeled_path
    frame = pd.read_csv(path)
    frame.loc[2, "text"] = "\u200b\u200c\u200d"
    frame.to_csv(path, index=False)

    message = failure_message(graph.materialize("labeled_intents", raise_on_error=False))

    assert f"{path}: line 4: the text holds only invisible characters (U+200B U+200C U+200D)" in message


def test_a_blank_label_fails_naming_the_line_and_keeps_the_stored_set(graph: Graph) -> None:
    assert graph.materialize("labeled_intents").success
    before = stored(graph, "labeled_intents", "data.parquet").read_bytes()
    path = graph.labeled_path
    frame = pd.read_csv(path)
    frame.loc[4, "label"] = ""
    frame.to_csv(path, index=False)

    message = failure_message(graph.materialize("labeled_intents", raise_on_error=False))

    assert f"{path}: line 6: the label is empty. Fill it in or delete the row." in message
    assert stored(graph, "labeled_intents", "data.parquet").read_bytes() == before


def test_a_label_only_in_the_test_split_fails_naming_it_and_keeps_the_stored_set(graph: Graph) -> None:
    assert graph.materialize("labeled_intents").success
    before = stored(graph, "labeled_intents", "data.parquet").read_bytes()
    path = graph.labeled_path
    with path.open("a", encoding="utf-8") as handle:
        handle.write(
            "can you gift wrap volume 1,gift_wrap,test\nplease wrap it as a present,gift_wrap,test\n"
        )

    message = failure_message(graph.materialize("labeled_intents", raise_on_error=False))

    assert f"{path}: label 'gift_wrap' has no train rows" in message
    assert "Move some of its rows to the train split" in message
    assert stored(graph, "labeled_intents", "data.parquet").read_bytes() == before


# Models


def test_a_teacher_with_other_labels_fails_and_keeps_the_stored_teacher(graph: Graph, tmp_path: Path) -> None:
    labels = sorted(graph.materialize("labeled_intents").output_for_node("labeled_intents")["label"].unique())
    assert run(graph, "teacher_model", config=registered_teacher(tmp_path, labels, seed=0)).success
    before = stored(graph, "teacher_model", "data.json").read_bytes()
    other = registered_teacher(tmp_path / "other", list(labels[:3]), seed=1)

    message = failure_message(run(graph, "teacher_model", config=other))

    assert f"The labels of {other.registered_checkpoint} do not match the labelled data" in message
    assert stored(graph, "teacher_model", "data.json").read_bytes() == before


def test_a_truncated_teacher_in_the_store_fails_soft_labels_naming_the_file_and_keeps_them(
    graph: Graph, tmp_path: Path
) -> None:
    first_day, last_day = recent_days(2)
    write_day(graph.log_root, first_day, ["is the one piece box set 4 in stock"])
    labels = sorted(graph.materialize("labeled_intents").output_for_node("labeled_intents")["label"].unique())
    teacher = run(graph, "teacher_model", config=registered_teacher(tmp_path, labels, seed=0))
    graph.materialize("raw_queries", partition_key=first_day)
    graph.materialize("unlabeled_queries", partition_key=last_day)
    graph.materialize("claude_paraphrases")
    assert graph.materialize("teacher_soft_labels").success
    before = stored(graph, "teacher_soft_labels", "data.parquet").read_bytes()
    ref = ModelRef.from_dict(teacher.output_for_node("teacher_model"))
    weights = graph.resources["model_store"].get(ref) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    write_day(graph.log_root, last_day, ["do you ship kagurabachi vol 5 to canada"])
    graph.materialize("raw_queries", partition_key=last_day)
    graph.materialize("unlabeled_queries", partition_key=last_day)

    message = failure_message(graph.materialize("teacher_soft_labels", raise_on_error=False))

    assert f"{weights} is missing or not" in message
    assert "Re-materialise the asset that produced this teacher model" in message
    assert stored(graph, "teacher_soft_labels", "data.parquet").read_bytes() == before


def test_a_stale_teacher_after_a_label_rename_fails_soft_labels_and_keeps_them(
    graph: Graph, tmp_path: Path
) -> None:
    (day,) = recent_days(1)
    write_day(graph.log_root, day, ["is the one piece box set 4 in stock"])
    labels = sorted(graph.materialize("labeled_intents").output_for_node("labeled_intents")["label"].unique())
    run(graph, "teacher_model", config=registered_teacher(tmp_path, labels, seed=0))
    graph.materialize("raw_queries", partition_key=day)
    graph.materialize("unlabeled_queries", partition_key=day)
    graph.materialize("claude_paraphrases")
    assert graph.materialize("teacher_soft_labels").success
    before = stored(graph, "teacher_soft_labels", "data.parquet").read_bytes()
    path = graph.labeled_path
    frame = pd.read_csv(path)
    frame["label"] = frame["label"].replace({labels[0]: "zz_" + labels[0]})
    frame.to_csv(path, index=False)
    graph.materialize("labeled_intents")
    graph.materialize("claude_paraphrases")

    message = failure_message(graph.materialize("teacher_soft_labels", raise_on_error=False))

    assert "teacher_soft_labels cannot use the teacher model" in message
    assert f"'zz_{labels[0]}'" in message
    assert "Re-materialise the teacher model on the current labelled set" in message
    assert stored(graph, "teacher_soft_labels", "data.parquet").read_bytes() == before
