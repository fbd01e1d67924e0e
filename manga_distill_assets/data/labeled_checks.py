"""Whether labelled rows make a set a classifier can learn from and be judged on.

Each check refuses the whole file rather than dropping rows, because a labelled file is small, fixed by hand,
and every row in it was meant: the message names the file, the lines (or Parquet rows) and what to change.
The checks take a frame of text, label, place (and split where they judge the split), where place is what
an editor shows ("line 7", "row 3").
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd

MIN_ROWS_PER_LABEL = 2
MIN_LABELS = 2
PLACES_SHOWN = 3


class LabeledDataError(ValueError):
    """A labelled file that cannot be used as it is; the message says where and what to change."""


def text_key(text: str) -> str:
    """Texts that differ only in case or spacing are the same text for splitting and leakage."""
    return " ".join(text.casefold().split())


def label_key(label: str) -> str:
    """Labels that differ only in case or spacing are one intent spelled two ways."""
    return " ".join(label.casefold().split())


def check_label_spellings(frame: pd.DataFrame) -> None:
    """`Order_Status` and `order_status` would become two classes that split one intent's examples.

    Refused rather than merged: which spelling is the class name a deployment expects is the user's call.
    `frame` has a `where` column ("file: line 7") so that rows of two files can be compared.
    """
    places_of: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for label, where in zip(frame["label"], frame["where"], strict=True):
        places_of[label_key(label)][label].append(where)
    for spellings in places_of.values():
        if len(spellings) > 1:
            named = " and ".join(
                f"'{label}' ({_places(places)})" for label, places in sorted(spellings.items())
            )
            raise LabeledDataError(
                f"Labels {named} differ only in case or spacing, so they would become separate classes of "
                "one intent. Spell the label the same way on every row."
            )


def check_conflicting_labels(frame: pd.DataFrame) -> None:
    """The same text under two labels teaches the model both and leaves one copy to grade it wrongly.

    `frame` has a `where` column ("file: line 7") so that rows of two files can be compared.
    """
    first_seen: dict[str, tuple[str, str, str]] = {}
    for text, label, where in zip(frame["text"], frame["label"], frame["where"], strict=True):
        earlier_label, earlier_where, earlier_text = first_seen.setdefault(
            text_key(text), (label, where, text)
        )
        if earlier_label != label:
            raise LabeledDataError(
                f"{earlier_where} ({earlier_text!r}, label '{earlier_label}') and {where} ({text!r}, label "
                f"'{label}') hold the same text with different labels; a text has one intent. Keep the right "
                "label on both rows or delete one."
            )


def check_label_counts(path: Path, frame: pd.DataFrame) -> None:
    counts = frame["label"].value_counts()
    for label, count in sorted(counts.items()):
        if count < MIN_ROWS_PER_LABEL:
            places = ", ".join(frame.loc[frame["label"] == label, "place"])
            raise LabeledDataError(
                f"{path}: label '{label}' has only {count} row ({places}); every label needs at least "
                f"{MIN_ROWS_PER_LABEL}. Add examples of it, merge it into another label, or delete it."
            )


def check_several_labels(path: Path, frame: pd.DataFrame, label_column: str) -> None:
    """A classifier with one class has nothing to learn and scores 100% on anything."""
    labels = sorted(set(frame["label"]))
    if len(labels) < MIN_LABELS:
        found = f"only the label '{labels[0]}'" if labels else "no labels"
        raise LabeledDataError(
            f"{path}: the file holds {found}; a classifier needs at least {MIN_LABELS}. Check that "
            f"label_column ('{label_column}') names the intent column, or add examples of other intents."
        )


def check_no_text_in_two_splits(path: Path, frame: pd.DataFrame) -> None:
    first_seen: dict[str, tuple[str, str]] = {}
    for text, split, place in zip(frame["text"], frame["split"], frame["place"], strict=True):
        key = text_key(text)
        earlier = first_seen.setdefault(key, (split, place))
        if earlier[0] != split:
            raise LabeledDataError(
                f"{path}: {earlier[1]} ({earlier[0]}) and {place} ({split}) hold the same text; "
                "evaluation must not see training texts. Put both rows in one split or delete one."
            )


def check_every_label_has_train_rows(path: Path, frame: pd.DataFrame) -> None:
    """A label seen only in validation or test cannot be learnt, and every score on it would be noise."""
    trained = set(frame.loc[frame["split"] == "train", "label"])
    untrained = frame[~frame["label"].isin(trained)]
    if untrained.empty:
        return
    label = sorted(untrained["label"])[0]
    rows = untrained[untrained["label"] == label]
    places = ", ".join(f"{place} ({name})" for place, name in zip(rows["place"], rows["split"], strict=True))
    raise LabeledDataError(
        f"{path}: label '{label}' has no train rows ({places}), so no model can learn it. "
        "Move some of its rows to the train split, or delete the label's rows."
    )


def _places(places: list[str]) -> str:
    shown = ", ".join(places[:PLACES_SHOWN])
    more = len(places) - PLACES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown
