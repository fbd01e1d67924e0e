"""The labelled-data loader: formats, configurable columns, splits, and errors that point at the row."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from manga_distill_assets.data.labeled import LabeledDataError, label_names, load_labeled

BANKING77 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "banking77"


def _rows(counts: dict[str, int]) -> list[dict[str, str]]:
    return [
        {"text": f"{label} question number {i}", "label": label}
        for label, n in counts.items()
        for i in range(n)
    ]


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    if path.suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    elif path.suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path, index=False)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _splits_by_text(frame: pd.DataFrame) -> dict[str, str]:
    return dict(zip(frame["text"], frame["split"], strict=True))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json", ".parquet"])
def test_each_format_round_trips_text_label_and_split(tmp_path, suffix):
    rows = [
        {"text": "where is my order", "label": "order_status", "split": "train"},
        {"text": "do you ship to Canada", "label": "shipping", "split": "validation"},
        {"text": "has it shipped yet", "label": "order_status", "split": "test"},
        {"text": "shipping cost to Japan", "label": "shipping", "split": "train"},
    ]
    frame = load_labeled(_write(tmp_path / f"intents{suffix}", rows))
    assert frame.to_dict(orient="records") == rows


def test_texts_are_stripped_and_labels_become_strings(tmp_path):
    rows = [{"text": "  refund please \n", "label": 3}, {"text": "refund?", "label": 3}]
    path = _write(tmp_path / "ids.jsonl", [*rows, {"text": "hi", "label": 4}, {"text": "hello", "label": 4}])
    frame = load_labeled(path, split_column=None, validation_fraction=0.0, test_fraction=0.0)
    assert frame["text"].tolist() == ["refund please", "refund?", "hi", "hello"]
    assert frame["label"].tolist() == ["3", "3", "4", "4"]


def test_columns_are_chosen_by_configuration(tmp_path):
    rows = [
        {"utterance": f"{word} {i}", "intent": word, "fold": "train"}
        for word in ("hi", "bye")
        for i in range(2)
    ]
    frame = load_labeled(
        _write(tmp_path / "x.csv", rows), text_column="utterance", label_column="intent", split_column="fold"
    )
    assert frame.columns.tolist() == ["text", "label", "split"]
    assert frame["label"].tolist() == ["hi", "hi", "bye", "bye"]


def test_common_split_spellings_are_understood(tmp_path):
    rows = [
        {"text": f"t{i}", "label": label, "split": split}
        for i, (label, split) in enumerate(
            zip("aaabb", ["Train", "val", "dev", "train", "TEST"], strict=True)
        )
    ]
    frame = load_labeled(_write(tmp_path / "x.csv", rows))
    assert frame["split"].tolist() == ["train", "validation", "validation", "train", "test"]


def test_missing_split_column_gives_round_fraction_per_label(tmp_path):
    frame = load_labeled(
        _write(tmp_path / "x.csv", _rows({"a": 20, "b": 30})), validation_fraction=0.1, test_fraction=0.2
    )
    counts = frame.groupby(["label", "split"]).size().to_dict()
    assert counts == {
        ("a", "test"): 4,
        ("a", "train"): 14,
        ("a", "validation"): 2,
        ("b", "test"): 6,
        ("b", "train"): 21,
        ("b", "validation"): 3,
    }


def test_split_column_none_ignores_a_present_split_column(tmp_path):
    rows = [{**row, "split": "train"} for row in _rows({"a": 20, "b": 20})]
    frame = load_labeled(_write(tmp_path / "x.csv", rows), split_column=None)
    assert set(frame["split"]) == {"train", "validation", "test"}


def test_every_label_with_ten_rows_appears_in_every_split(tmp_path):
    frame = load_labeled(_write(tmp_path / "x.csv", _rows({"a": 10, "b": 11, "c": 37, "d": 14})))
    for label, group in frame.groupby("label"):
        assert set(group["split"]) == {"train", "validation", "test"}, label


def test_split_is_the_same_on_every_load_and_for_any_row_order(tmp_path):
    rows = _rows({"a": 25, "b": 25})
    first = load_labeled(_write(tmp_path / "x.csv", rows))
    again = load_labeled(tmp_path / "x.csv")
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    reordered = load_labeled(_write(tmp_path / "shuffled.csv", shuffled))
    assert first.equals(again)
    assert _splits_by_text(reordered) == _splits_by_text(first)


def test_another_seed_gives_another_split(tmp_path):
    path = _write(tmp_path / "x.csv", _rows({"a": 40, "b": 40}))
    assert _splits_by_text(load_labeled(path, seed=1)) != _splits_by_text(load_labeled(path, seed=2))


def test_texts_equal_up_to_case_and_spacing_share_a_split(tmp_path):
    rows = _rows({"a": 30, "b": 10}) + [{"text": f"A  QUESTION number {i}", "label": "a"} for i in range(30)]
    frame = load_labeled(_write(tmp_path / "x.csv", rows))
    keys = frame["text"].str.casefold().str.split().str.join(" ")
    assert frame.groupby(keys)["split"].nunique().max() == 1


def test_test_path_rows_are_the_test_split_and_validation_comes_from_the_first_file(tmp_path):
    train = _write(tmp_path / "train.csv", _rows({"a": 20, "b": 20}))
    test_rows = [{"text": f"held out {i}", "label": "ab"[i % 2]} for i in range(6)]
    frame = load_labeled(train, split_column=None, test_path=_write(tmp_path / "test.csv", test_rows))
    assert frame.loc[frame["split"] == "test", "text"].tolist() == [row["text"] for row in test_rows]
    assert frame.groupby("split").size().to_dict() == {"test": 6, "train": 36, "validation": 4}


def test_first_file_rows_that_repeat_a_test_text_are_dropped(tmp_path):
    train = _write(tmp_path / "train.csv", _rows({"a": 20, "b": 20}))
    test = _write(tmp_path / "test.csv", [{"text": "A question NUMBER 3", "label": "a"}])
    frame = load_labeled(train, split_column=None, test_path=test)
    assert "a question number 3" not in frame.loc[frame["split"] != "test", "text"].str.casefold().tolist()
    assert len(frame) == 40


def test_label_names_are_sorted_and_unique():
    frame = pd.DataFrame({"text": ["x", "y", "z"], "label": ["shipping", "complaint", "shipping"]})
    assert label_names(frame) == ["complaint", "shipping"]


@pytest.mark.skipif(
    not BANKING77.is_dir(), reason=f"BANKING77 is not at {BANKING77} (the shared data folder)"
)
def test_banking77_loads_by_configuration_alone():
    frame = load_labeled(
        BANKING77 / "train.csv", label_column="category", split_column=None, test_path=BANKING77 / "test.csv"
    )
    assert len(label_names(frame)) == 77
    assert (frame["split"] == "test").sum() == 3080
    assert 950 <= (frame["split"] == "validation").sum() <= 1050
    keys = frame["text"].str.casefold().str.strip()
    assert frame.groupby(keys)["split"].nunique().max() == 1


def _error(path: Path, **settings) -> str:
    with pytest.raises(LabeledDataError) as caught:
        load_labeled(path, **settings)
    return str(caught.value)


def test_missing_file_is_named(tmp_path):
    message = _error(tmp_path / "nope.csv")
    assert str(tmp_path / "nope.csv") in message and "no such file" in message


def test_unreadable_path_is_named(tmp_path):
    (tmp_path / "folder.csv").mkdir()
    message = _error(tmp_path / "folder.csv")
    assert str(tmp_path / "folder.csv") in message and "cannot be read" in message


def test_unsupported_extension_lists_the_supported_ones(tmp_path):
    path = tmp_path / "intents.xlsx"
    path.write_text("text,label\n")
    message = _error(path)
    assert str(path) in message and ".xlsx" in message and ".jsonl" in message


def test_missing_column_lists_the_columns_found(tmp_path):
    path = _write(tmp_path / "b.csv", [{"text": "hi", "category": "x"}, {"text": "yo", "category": "x"}])
    message = _error(path)
    assert str(path) in message and "'label'" in message and "text, category" in message


def test_blank_text_names_the_csv_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text('text,label\n"a\nmulti-line text",a\nfine,a\n   ,a\n', encoding="utf-8")
    message = _error(path)
    assert f"{path}: line 5:" in message and "text is empty" in message


def test_blank_text_names_the_parquet_row(tmp_path):
    path = _write(
        tmp_path / "x.parquet",
        [{"text": "ok", "label": "a"}, {"text": "ok 2", "label": "a"}, {"text": None, "label": "a"}],
    )
    assert f"{path}: row 3:" in _error(path)


def test_blank_label_names_the_line(tmp_path):
    path = _write(tmp_path / "x.jsonl", [{"text": "ok", "label": "a"}, {"text": "no label", "label": ""}])
    message = _error(path)
    assert f"{path}: line 2:" in message and "label is empty" in message


def test_text_that_is_not_a_string_names_the_line(tmp_path):
    path = _write(tmp_path / "x.jsonl", [{"text": 42, "label": "a"}])
    message = _error(path)
    assert f"{path}: line 1:" in message and "int" in message


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n\n{"text": "broken", \n', encoding="utf-8")
    message = _error(path)
    assert f"{path}: line 3:" in message and "not valid JSON" in message


def test_label_with_a_single_row_is_named(tmp_path):
    path = _write(tmp_path / "x.csv", [*_rows({"common": 5}), {"text": "only one", "label": "rare"}])
    message = _error(path)
    assert str(path) in message and "'rare'" in message and "line 7" in message


def test_unknown_split_value_names_the_line(tmp_path):
    rows = [{"text": "a", "label": "x", "split": "train"}, {"text": "b", "label": "x", "split": "holdout"}]
    message = _error(_write(tmp_path / "x.csv", rows))
    assert f"{tmp_path / 'x.csv'}: line 3:" in message and "'holdout'" in message


def test_same_text_in_two_given_splits_names_both_lines(tmp_path):
    rows = [
        {"text": "Refund?", "label": "x", "split": "train"},
        {"text": "refund?", "label": "x", "split": "test"},
    ]
    message = _error(_write(tmp_path / "x.csv", rows))
    assert "line 2 (train)" in message and "line 3 (test)" in message


def test_test_file_label_unknown_to_the_first_file_is_named(tmp_path):
    train = _write(tmp_path / "train.csv", _rows({"a": 5, "c": 5}))
    test = _write(tmp_path / "test.csv", [{"text": "new thing", "label": "b"}])
    message = _error(train, split_column=None, test_path=test)
    assert f"{test}: line 2:" in message and "'b'" in message


def test_fractions_that_leave_no_training_rows_are_refused(tmp_path):
    message = _error(_write(tmp_path / "x.csv", _rows({"a": 5})), validation_fraction=0.5, test_fraction=0.5)
    assert "validation_fraction + test_fraction" in message


def test_a_label_only_in_the_test_split_is_named_with_its_lines(tmp_path):
    rows = [
        *({"text": f"where is order {i}", "label": "order_status", "split": "train"} for i in range(3)),
        {"text": "gift wrap this please", "label": "gift_wrap", "split": "test"},
        {"text": "can you gift wrap it", "label": "gift_wrap", "split": "test"},
    ]
    path = _write(tmp_path / "x.csv", rows)
    message = _error(path)
    assert f"{path}: label 'gift_wrap' has no train rows (line 5 (test), line 6 (test))" in message
    assert "Move some of its rows to the train split" in message


def test_a_label_only_in_validation_is_named_when_a_test_file_gives_the_test_split(tmp_path):
    train = _write(
        tmp_path / "train.csv",
        [
            {"text": "where is my order", "label": "a", "split": "train"},
            {"text": "track my order", "label": "a", "split": "train"},
            {"text": "gift wrap it", "label": "b", "split": "validation"},
            {"text": "wrap it as a gift", "label": "b", "split": "validation"},
        ],
    )
    test = _write(tmp_path / "test.csv", [{"text": "my order is late", "label": "a"}])
    message = _error(train, test_path=test)
    assert f"{train}: label 'b' has no train rows (line 4 (validation), line 5 (validation))" in message


def test_a_split_column_asked_for_by_name_and_missing_is_named(tmp_path):
    rows = [{**row, "split": "train"} for row in _rows({"a": 5, "b": 5})]
    path = _write(tmp_path / "x.csv", rows)
    message = _error(path, split_column="Split")
    assert f"{path}: no split column 'Split'; columns found: text, label, split." in message
    assert "Did you mean 'split'?" in message and "MANGA_LABELED_SPLIT_COLUMN" in message


def test_the_default_split_column_spelled_in_another_case_is_named(tmp_path):
    rows = [{"text": row["text"], "label": row["label"], "Split": "train"} for row in _rows({"a": 5, "b": 5})]
    message = _error(_write(tmp_path / "x.csv", rows))
    assert "no split column 'split'" in message and "Did you mean 'Split'?" in message


def test_the_same_text_under_two_labels_names_both_lines(tmp_path):
    rows = [*_rows({"a": 3, "b": 3}), {"text": "A question NUMBER 1", "label": "b"}]
    path = _write(tmp_path / "x.csv", rows)
    message = _error(path)
    assert f"{path}: line 3 ('a question number 1', label 'a')" in message
    assert f"{path}: line 8 ('A question NUMBER 1', label 'b')" in message
    assert "same text with different labels" in message


def test_a_training_text_labelled_otherwise_in_the_test_file_names_both_files(tmp_path):
    train = _write(tmp_path / "train.csv", _rows({"a": 5, "b": 5}))
    test = _write(tmp_path / "test.csv", [{"text": "a question number 0", "label": "b"}])
    message = _error(train, split_column=None, test_path=test)
    assert f"{train}: line 2" in message and f"{test}: line 2" in message
    assert "same text with different labels" in message


def test_labels_differing_only_in_case_or_spacing_are_refused_naming_both(tmp_path):
    rows = [
        *_rows({"order_status": 3, "shipping": 3}),
        {"text": "has my parcel left", "label": "Order_Status"},
        {"text": "is my order on its way", "label": " ORDER_STATUS "},
    ]
    path = _write(tmp_path / "x.jsonl", rows)
    message = _error(path)
    assert f"'ORDER_STATUS' ({path}: line 8)" in message
    assert f"'Order_Status' ({path}: line 7)" in message
    assert f"'order_status' ({path}: line 1, {path}: line 2, {path}: line 3)" in message
    assert "differ only in case or spacing" in message


def test_a_single_class_is_refused_naming_the_label_column(tmp_path):
    path = _write(tmp_path / "x.csv", _rows({"only_one": 20}))
    message = _error(path)
    assert f"{path}: the file holds only the label 'only_one'; a classifier needs at least 2" in message
    assert "label_column ('label')" in message


@pytest.mark.parametrize("invisible", ["\u200b", "\u200b\u200d\u2060", "\ufeff \u00ad", "\u3164"])
def test_a_text_of_invisible_characters_names_the_line(tmp_path, invisible):
    path = _write(tmp_path / "x.jsonl", [*_rows({"a": 2, "b": 2}), {"text": invisible, "label": "a"}])
    message = _error(path)
    assert f"{path}: line 5: the text holds only invisible characters (U+" in message
