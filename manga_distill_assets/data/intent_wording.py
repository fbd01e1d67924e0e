"""The words of the labelled intent set, read from the CSV files beside this module.

Templates and word lists are data, so that a linguist can add a phrasing without reading Python, and so that a
diff of the wording reads as a diff of rows. Three files:

- `intent_labels.csv`: label, relative frequency (real inboxes are never balanced) and urgency rank (when one
  message holds two requests it is labelled with the one an agent must act on first, rank 1 first).
- `intent_templates.csv`: `{slot}` templates by use: `request` (the plain phrasings of each label),
  `cue` (near-identical phrasings whose label rests on one cue: a word, who the question is about, whether a
  remedy is asked for, or a volume number past the last published one), `side_question` (short second requests
  customers tack on) and `context` (background customers give before the request; it borrows other intents'
  words on purpose). Row order matters: the generator draws from each list in file order with a seeded RNG.
- `intent_words.csv`: the short word lists (openers, closers, connectors, promo codes, e-mail names, weekdays,
  months, emoji). Every field is quoted because some connectors start or end with a space.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

_HERE = Path(__file__).parent


def _read_rows(name: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    path = _HERE / name
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != columns:
            raise ValueError(
                f"{path}: header is {reader.fieldnames}, expected {list(columns)}; restore the header row"
            )
        return list(reader)


def _grouped(rows: list[dict[str, str]], key: str, value: str) -> dict[str, tuple[str, ...]]:
    groups: defaultdict[str, list[str]] = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row[value])
    return {name: tuple(values) for name, values in groups.items()}


_LABEL_ROWS = _read_rows("intent_labels.csv", ("label", "weight", "urgency"))
LABEL_WEIGHTS: dict[str, float] = {row["label"]: float(row["weight"]) for row in _LABEL_ROWS}
LABELS: tuple[str, ...] = tuple(sorted(LABEL_WEIGHTS))
URGENCY: tuple[str, ...] = tuple(
    row["label"] for row in sorted(_LABEL_ROWS, key=lambda row: int(row["urgency"]))
)

_TEMPLATE_ROWS = _read_rows("intent_templates.csv", ("use", "label", "template"))
_TEMPLATES_BY_USE = {
    use: _grouped([row for row in _TEMPLATE_ROWS if row["use"] == use], "label", "template")
    for use in ("request", "cue", "side_question", "context")
}
TEMPLATES: dict[str, tuple[str, ...]] = _TEMPLATES_BY_USE["request"]
CUE_TEMPLATES: dict[str, tuple[str, ...]] = _TEMPLATES_BY_USE["cue"]
SIDE_QUESTIONS: dict[str, tuple[str, ...]] = _TEMPLATES_BY_USE["side_question"]
CONTEXT_SENTENCES: tuple[str, ...] = _TEMPLATES_BY_USE["context"][""]

_WORDS = _grouped(_read_rows("intent_words.csv", ("list", "word")), "list", "word")
OPENERS: tuple[str, ...] = _WORDS["openers"]
CLOSERS: tuple[str, ...] = _WORDS["closers"]
SIDE_CONNECTORS: tuple[str, ...] = _WORDS["side_connectors"]
PROMO_CODES: tuple[str, ...] = _WORDS["promo_codes"]
EMAIL_NAMES: tuple[str, ...] = _WORDS["email_names"]
WEEKDAYS: tuple[str, ...] = _WORDS["weekdays"]
MONTHS: tuple[str, ...] = _WORDS["months"]
EMOJI: tuple[str, ...] = _WORDS["emoji"]
