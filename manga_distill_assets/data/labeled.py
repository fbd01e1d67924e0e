"""Load any labelled intent file into one table of text, label and split.

The same loader reads the packaged manga set, BANKING77's train.csv / test.csv, or a customer's own export,
by configuration alone. Every problem is reported with the file, the line or row it sits on, and what to
change, because a labelled file is usually fixed by hand in a spreadsheet or an editor.

Splits are made per text, not per row: rows whose texts are equal once case and spacing are ignored always
share a split, so evaluation never sees a training text. The order of the texts inside each label comes from
a seeded sha256 of the text, so the split does not depend on row order and barely moves when rows are added.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from manga_distill_assets.data.labeled_checks import (
    LabeledDataError,
    check_conflicting_labels,
    check_every_label_has_train_rows,
    check_label_counts,
    check_label_spellings,
    check_no_text_in_two_splits,
    check_several_labels,
    text_key,
)
from manga_distill_assets.data.normalize import has_visible_character

SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "dev": "validation",
    "test": "test",
}
SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".pq")
DEFAULT_SPLIT_COLUMN = "split"
ALWAYS_HELD_OUT_FROM = 10


@dataclass(frozen=True)
class _Table:
    """Rows read from one file, each with the place ("line 7", "row 3") an editor would show for it."""

    path: Path
    columns: list[str]
    rows: list[dict[str, object]]
    places: list[str]


def load_labeled(
    path: Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    split_column: str | None = DEFAULT_SPLIT_COLUMN,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 13,
    test_path: Path | None = None,
) -> pd.DataFrame:
    """Read a CSV, JSON Lines or Parquet file into columns text, label, split (train / validation / test).

    The split comes from `split_column` (val, valid and dev read as validation). The default column, `split`,
    is used when the file has one and a deterministic split stratified by label is made when it has not; any
    other name was asked for and must exist. `split_column=None` always makes the split. With `test_path`,
    that file's rows are the test split, validation is carved from `path`, and rows of `path` whose text also
    appears in the test file are dropped so that no test text is trained on (BANKING77's files share a few).
    """
    _check_fractions(validation_fraction, test_fraction)
    main = _read_table(Path(path))
    frame = _labelled_rows(main, text_column, label_column)
    located = _with_where(main, frame)
    if test_path is not None:
        test_table = _read_table(Path(test_path))
        test_frame = _labelled_rows(test_table, text_column, label_column)
        located = pd.concat([located, _with_where(test_table, test_frame)], ignore_index=True)
    check_label_spellings(located)
    check_conflicting_labels(located)
    check_label_counts(main.path, frame)
    use_split_column = _has_split_column(main, split_column)
    if use_split_column:
        frame["split"] = _given_splits(main, split_column)
    if test_path is None:
        if not use_split_column:
            frame["split"] = stratified_split(
                frame["text"].tolist(),
                frame["label"].tolist(),
                validation_fraction=validation_fraction,
                test_fraction=test_fraction,
                seed=seed,
            )
        check_no_text_in_two_splits(main.path, frame)
        check_every_label_has_train_rows(main.path, frame)
    else:
        frame = _with_test_rows(
            main, frame, test_table, test_frame, use_split_column, validation_fraction, seed
        )
    check_several_labels(main.path, frame, label_column)
    return frame[["text", "label", "split"]].reset_index(drop=True)


def label_names(frame: pd.DataFrame) -> list[str]:
    """The canonical label order: sorted, so label ids never depend on row order."""
    return sorted({str(label) for label in frame["label"]})


def stratified_split(
    texts: Sequence[str],
    strata: Sequence[str],
    *,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> list[str]:
    """A split name per row: per stratum, `round(n * fraction)` rows held out for validation and test.

    A stratum with at least ten rows always gets one row in each held-out split whose fraction is positive.
    Equal texts (see `text_key`) share the split of their first row's stratum.
    """
    rows_of_key: dict[str, list[int]] = defaultdict(list)
    for index, text in enumerate(texts):
        rows_of_key[text_key(text)].append(index)
    keys_of_stratum: dict[str, list[str]] = defaultdict(list)
    for key, rows in rows_of_key.items():
        keys_of_stratum[strata[rows[0]]].append(key)

    splits = ["train"] * len(texts)
    for stratum in sorted(keys_of_stratum):
        keys = sorted(keys_of_stratum[stratum], key=lambda key: (_seeded_digest(seed, key), key))
        n_rows = sum(len(rows_of_key[key]) for key in keys)
        held_out = _held_out_counts(n_rows, validation_fraction, test_fraction)
        wanted = dict(zip(("validation", "test"), held_out, strict=True))
        taken = Counter[str]()
        for key in keys:
            split = next((name for name in ("test", "validation") if taken[name] < wanted[name]), "train")
            taken[split] += len(rows_of_key[key])
            for row in rows_of_key[key]:
                splits[row] = split
    return splits


def _held_out_counts(n_rows: int, validation_fraction: float, test_fraction: float) -> tuple[int, int]:
    counts = []
    for fraction in (validation_fraction, test_fraction):
        count = math.floor(n_rows * fraction + 0.5)
        if fraction > 0 and n_rows >= ALWAYS_HELD_OUT_FROM:
            count = max(count, 1)
        counts.append(count)
    n_validation, n_test = counts
    while n_validation + n_test >= n_rows and n_validation + n_test > 0:
        if n_validation >= n_test:
            n_validation -= 1
        else:
            n_test -= 1
    return n_validation, n_test


def _seeded_digest(seed: int, key: str) -> str:
    return sha256(f"{seed}\x1f{key}".encode()).hexdigest()


def _check_fractions(validation_fraction: float, test_fraction: float) -> None:
    for name, fraction in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise LabeledDataError(f"{name} must be in [0, 1), got {fraction}.")
    if validation_fraction + test_fraction >= 1.0:
        raise LabeledDataError(
            f"validation_fraction + test_fraction must leave rows for training, got "
            f"{validation_fraction} + {test_fraction}."
        )


def _read_table(path: Path) -> _Table:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LabeledDataError(
            f"{path}: unsupported file type '{path.suffix}'. "
            "Use .csv, .jsonl or .json (JSON Lines), or .parquet."
        )
    if not path.exists():
        raise LabeledDataError(
            f"{path}: no such file. Check the path (relative paths start at {Path.cwd()})."
        )
    try:
        if suffix == ".csv":
            table = _read_csv(path)
        elif suffix in (".jsonl", ".json"):
            table = _read_json_lines(path)
        else:
            table = _read_parquet(path)
    except UnicodeDecodeError as error:
        raise LabeledDataError(f"{path}: not UTF-8 text ({error}). Save it as UTF-8 and try again.") from None
    except OSError as error:
        raise LabeledDataError(f"{path}: cannot be read ({error.strerror or error}).") from None
    if not table.rows:
        raise LabeledDataError(f"{path}: the file holds no rows. Point to a file with labelled examples.")
    return table


def _read_csv(path: Path) -> _Table:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise LabeledDataError(f"{path}: the file is empty; expected a header row and labelled rows.")
            rows, places = [], []
            start_line = reader.line_num + 1
            for record in reader:
                if record:
                    if len(record) > len(header):
                        raise LabeledDataError(
                            f"{path}: line {start_line}: {len(record)} fields but the header has "
                            f"{len(header)}. "
                            "Quote fields that contain commas."
                        )
                    rows.append(dict(zip(header, record, strict=False)))
                    places.append(f"line {start_line}")
                start_line = reader.line_num + 1
        except csv.Error as error:
            raise LabeledDataError(f"{path}: line {reader.line_num}: not valid CSV ({error}).") from None
    return _Table(path, header, rows, places)


def _read_json_lines(path: Path) -> _Table:
    rows, places, columns = [], [], {}
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise LabeledDataError(
                    f"{path}: line {number}: not valid JSON ({error.msg}). Each line must be one JSON object."
                ) from None
            if not isinstance(record, dict):
                raise LabeledDataError(
                    f"{path}: line {number}: expected a JSON object, found {type(record).__name__}. "
                    "Each line must be one JSON object."
                )
            columns.update(dict.fromkeys(record))
            rows.append(record)
            places.append(f"line {number}")
    return _Table(path, list(columns), rows, places)


def _read_parquet(path: Path) -> _Table:
    try:
        arrow_table = pq.read_table(path)
    except (pa.ArrowException, ValueError) as error:
        raise LabeledDataError(f"{path}: not a readable Parquet file ({error}).") from None
    rows = arrow_table.to_pylist()
    return _Table(
        path, arrow_table.column_names, rows, [f"row {number}" for number in range(1, len(rows) + 1)]
    )


def _require_column(table: _Table, column: str, setting: str) -> None:
    if column not in table.columns:
        found = ", ".join(table.columns) or "none"
        raise LabeledDataError(
            f"{table.path}: no column '{column}'; columns found: {found}. Set {setting} to the right one."
        )


def _has_split_column(table: _Table, split_column: str | None) -> bool:
    """A missing split column that was named on purpose is an error: re-splitting would silently move rows
    the file holds out for testing into training."""
    if split_column is None:
        return False
    if split_column in table.columns:
        return True
    same_but_case = [column for column in table.columns if column.casefold() == split_column.casefold()]
    if split_column == DEFAULT_SPLIT_COLUMN and not same_but_case:
        return False
    found = ", ".join(table.columns) or "none"
    hint = f" Did you mean '{same_but_case[0]}'?" if same_but_case else ""
    raise LabeledDataError(
        f"{table.path}: no split column '{split_column}'; columns found: {found}.{hint} Set split_column "
        "(MANGA_LABELED_SPLIT_COLUMN) to the column that holds each row's split, or to nothing (an empty "
        "value) to have a split made."
    )


def _with_where(table: _Table, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(where=[f"{table.path}: {place}" for place in frame["place"]])


def _labelled_rows(table: _Table, text_column: str, label_column: str) -> pd.DataFrame:
    _require_column(table, text_column, "text_column")
    _require_column(table, label_column, "label_column")
    texts, labels = [], []
    for row, place in zip(table.rows, table.places, strict=True):
        texts.append(_clean_text(row.get(text_column), table.path, place))
        labels.append(_clean_label(row.get(label_column), table.path, place))
    return pd.DataFrame({"text": texts, "label": labels, "place": table.places})


def _clean_text(value: object, path: Path, place: str) -> str:
    if value is not None and not isinstance(value, str):
        raise LabeledDataError(
            f"{path}: {place}: the text is a {type(value).__name__}, not a string. Write it as text."
        )
    text = (value or "").strip()
    if not text:
        raise LabeledDataError(f"{path}: {place}: the text is empty. Fill it in or delete the row.")
    if not has_visible_character(text):
        codes = " ".join(f"U+{ord(char):04X}" for char in dict.fromkeys(text))
        raise LabeledDataError(
            f"{path}: {place}: the text holds only invisible characters ({codes}), so no customer could "
            "have typed it. Write the query or delete the row."
        )
    return text


def _clean_label(value: object, path: Path, place: str) -> str:
    label = "" if value is None else str(value).strip()
    if not label:
        raise LabeledDataError(f"{path}: {place}: the label is empty. Fill it in or delete the row.")
    return label


def _given_splits(table: _Table, split_column: str) -> list[str]:
    splits = []
    for row, place in zip(table.rows, table.places, strict=True):
        value = row.get(split_column)
        split = SPLIT_ALIASES.get(str(value).strip().casefold()) if value is not None else None
        if split is None:
            raise LabeledDataError(
                f"{table.path}: {place}: unknown split {value!r} in column '{split_column}'. Use train, "
                "validation or test (val, valid and dev also mean validation), or set split_column=None."
            )
        splits.append(split)
    return splits


def _with_test_rows(
    main: _Table,
    frame: pd.DataFrame,
    test_table: _Table,
    test_frame: pd.DataFrame,
    use_split_column: bool,
    validation_fraction: float,
    seed: int,
) -> pd.DataFrame:
    test_path = test_table.path
    test_frame["split"] = "test"
    if use_split_column and (frame["split"] == "test").any():
        place = frame.loc[frame["split"] == "test", "place"].iloc[0]
        raise LabeledDataError(
            f"{main.path}: {place}: a test row, but test_path={test_path} also gives the test split. "
            "Use one source for test rows."
        )
    test_keys = {text_key(text) for text in test_frame["text"]}
    frame = frame[[text_key(text) not in test_keys for text in frame["text"]]].copy()
    if not use_split_column:
        frame["split"] = stratified_split(
            frame["text"].tolist(),
            frame["label"].tolist(),
            validation_fraction=validation_fraction,
            test_fraction=0.0,
            seed=seed,
        )
    check_no_text_in_two_splits(main.path, frame)
    check_every_label_has_train_rows(main.path, frame)
    trained = set(frame.loc[frame["split"] == "train", "label"])
    for label, place in zip(test_frame["label"], test_frame["place"], strict=True):
        if label not in trained:
            raise LabeledDataError(
                f"{test_path}: {place}: label '{label}' has no training rows in {main.path}, "
                "so no model can learn it. "
                "Add training examples of it or remove it from the test file."
            )
    combined = pd.concat([frame, test_frame], ignore_index=True)
    return combined[["text", "label", "split"]]
