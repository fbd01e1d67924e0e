"""The manga question-answering set: catalogue and store-policy questions with reference answers and facts.

Every title gets every kind of question in the training phrasings; the held-out questions ask about the same
titles and policies in phrasings training never saw, so evaluation measures whether a model learnt the facts
rather than the sentences. The phrasings, answers and facts live in CSV files beside this module; a user's own
set (CSV, JSON Lines or Parquet with question, answer and facts columns) loads through `load_qa`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import pandas as pd

from manga_distill_assets.data.catalog import LABELLED_AS_OF, TITLES, Title
from manga_distill_assets.data.labeled import (
    SPLIT_ALIASES,
    LabeledDataError,
    _read_table,
    _require_column,
    stratified_split,
)

DATA_DIR = Path(__file__).resolve().parent
TEMPLATES_CSV = DATA_DIR / "manga_qa_templates.csv"
ANSWERS_CSV = DATA_DIR / "manga_qa_answers.csv"
QA_COLUMNS = ["question", "answer", "facts", "kind", "split"]
FACT_SEPARATOR = "|"
MAX_QUESTION_CHARS = 1000
SIMILAR_TITLES = 2


class QADataError(LabeledDataError):
    """A question-answering file that cannot be used as it is; the message says where and what to change."""


@dataclass(frozen=True)
class AnswerTemplate:
    reference: str
    assistant: str
    facts: str


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def question_templates() -> list[dict[str, str]]:
    """(kind, split, question) rows; split is `train` or `held_out`."""
    return _read_csv(TEMPLATES_CSV)


def answer_templates() -> dict[str, AnswerTemplate]:
    return {
        row["kind"]: AnswerTemplate(row["reference"], row["assistant"], row["facts"])
        for row in _read_csv(ANSWERS_CSV)
    }


def similar_titles(title: Title, titles: Sequence[Title] = TITLES) -> list[str]:
    """Other titles of the same genre (else the same demographic), most asked-about first."""
    same_genre = [other.name for other in titles if other.genre == title.genre and other != title]
    same_demographic = [
        other.name for other in titles if other.demographic == title.demographic and other != title
    ]
    return list(dict.fromkeys([*same_genre, *same_demographic]))[:SIMILAR_TITLES]


def title_fields(title: Title, titles: Sequence[Title] = TITLES) -> dict[str, str]:
    """The values answer templates name; titles launching after the catalogue snapshot are pre-orders."""
    similar = similar_titles(title, titles)
    return {
        "title": title.name,
        "author": title.author,
        "volumes": str(title.volumes),
        "genre": title.genre,
        "demographic": title.demographic,
        "publisher": title.publisher,
        "original_publisher": title.original_publisher,
        "similar": " and ".join(similar),
        "similar_facts": FACT_SEPARATOR.join(similar),
        "availability": ("available to pre-order" if title.trending_from > LABELLED_AS_OF else "in stock"),
    }


def fill(template: str, fields: dict[str, str]) -> str:
    return template.format(**fields)


def facts_of(template: AnswerTemplate, fields: dict[str, str]) -> list[str]:
    return [fact for fact in fill(template.facts, fields).split(FACT_SEPARATOR) if fact]


def generate_manga_qa(titles: Sequence[Title] = TITLES, seed: int = 13) -> pd.DataFrame:
    """Every (title or policy, kind, phrasing) once. Held-out phrasings go half to validation, half to test,
    by a seeded hash of the question, so adding a title never moves another title's questions."""
    answers = answer_templates()
    rows = []
    for template in question_templates():
        kind = template["kind"]
        subjects = (
            [title_fields(title, titles) for title in titles] if "{title}" in template["question"] else [{}]
        )
        for fields in subjects:
            question = fill(template["question"], fields)
            rows.append(
                {
                    "question": question,
                    "answer": fill(answers[kind].reference, fields),
                    "facts": facts_of(answers[kind], fields),
                    "kind": kind,
                    "split": "train" if template["split"] == "train" else _held_out_split(question, seed),
                }
            )
    return pd.DataFrame(rows, columns=QA_COLUMNS)


def _held_out_split(question: str, seed: int) -> str:
    digest = sha256(f"{seed}:{question}".encode()).digest()
    return "validation" if digest[0] % 2 else "test"


def check_question(question: object, where: str, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """A question a model can be asked: text, not blank, not longer than `max_chars`."""
    if not isinstance(question, str):
        raise QADataError(
            f"{where}: the question is a {type(question).__name__}, not text. Write it as text."
        )
    text = question.strip()
    if not text:
        raise QADataError(f"{where}: the question is empty. Fill it in or delete it.")
    if len(text) > max_chars:
        raise QADataError(
            f"{where}: the question is {len(text)} characters, over the limit of {max_chars}. "
            "Shorten it or raise max_question_chars."
        )
    return text


def load_qa(
    path: Path,
    *,
    question_column: str = "question",
    answer_column: str = "answer",
    facts_column: str = "facts",
    split_column: str | None = "split",
    max_question_chars: int = MAX_QUESTION_CHARS,
    seed: int = 13,
) -> pd.DataFrame:
    """A user's QA file as the packaged set's columns. Facts are a list or a `|`-separated string; without a
    split column, 10% of questions go to validation and 10% to test by a seeded hash."""
    try:
        table = _read_table(Path(path))
    except LabeledDataError as error:
        raise QADataError(str(error)) from None
    for column, setting in (
        (question_column, "question_column"),
        (answer_column, "answer_column"),
        (facts_column, "facts_column"),
    ):
        try:
            _require_column(table, column, setting)
        except LabeledDataError as error:
            raise QADataError(str(error)) from None
    rows = []
    for row, place in zip(table.rows, table.places, strict=True):
        where = f"{table.path}: {place}"
        answer = row.get(answer_column)
        if not isinstance(answer, str) or not answer.strip():
            raise QADataError(f"{where}: the answer is empty. Write the reference answer or delete the row.")
        rows.append(
            {
                "question": check_question(row.get(question_column), where, max_question_chars),
                "answer": answer.strip(),
                "facts": _facts(row.get(facts_column), where),
                "kind": str(row.get("kind") or "custom"),
            }
        )
    frame = pd.DataFrame(rows)
    if split_column and split_column in table.columns:
        frame["split"] = [
            _split_name(row.get(split_column), place, table.path)
            for row, place in zip(table.rows, table.places, strict=True)
        ]
    else:
        frame["split"] = stratified_split(
            frame["question"].tolist(),
            frame["kind"].tolist(),
            validation_fraction=0.1,
            test_fraction=0.1,
            seed=seed,
        )
    return frame[QA_COLUMNS]


def _facts(value: object, where: str) -> list[str]:
    if isinstance(value, str):
        facts = [fact.strip() for fact in value.split(FACT_SEPARATOR)]
    elif isinstance(value, list | tuple):
        facts = [str(fact).strip() for fact in value]
    else:
        facts = []
    facts = [fact for fact in facts if fact]
    if not facts:
        raise QADataError(
            f"{where}: no facts. List the facts the answer must state, separated by '{FACT_SEPARATOR}'."
        )
    return facts


def _split_name(value: object, place: str, path: Path) -> str:
    name = str(value or "").strip().casefold()
    if name not in SPLIT_ALIASES:
        raise QADataError(f"{path}: {place}: unknown split {value!r}. Use train, validation or test.")
    return SPLIT_ALIASES[name]
