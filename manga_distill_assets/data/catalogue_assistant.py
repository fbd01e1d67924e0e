"""The offline teacher: answers a customer's question from the catalogue, in the assistant's voice.

It finds the title the question names (the longest name or alias written in it) and what is asked (the kind
whose keywords the rest of the question contains most, the longest keyword breaking ties), then fills the
assistant's answer for that kind. A question it cannot place gets a refusal, which the teacher asset drops
and counts, as it would drop Claude's. Keywords and refusal markers live in CSV files beside this module.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from functools import cache

from manga_distill_assets.data.catalog import TITLES, Title
from manga_distill_assets.data.manga_qa import DATA_DIR, answer_templates, fill, title_fields

KEYWORDS_CSV = DATA_DIR / "manga_qa_keywords.csv"
REFUSALS_CSV = DATA_DIR / "refusal_markers.csv"
OFFLINE_VOICE_VERSION = "catalogue-voice-1"
REFUSAL = "I'm sorry, I don't have information about that in our catalogue. Could you name the title?"


@cache
def _keywords() -> dict[str, tuple[str, ...]]:
    keywords: dict[str, list[str]] = defaultdict(list)
    with KEYWORDS_CSV.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            keywords[row["kind"]].append(row["keyword"].casefold())
    return {kind: tuple(words) for kind, words in keywords.items()}


@cache
def refusal_markers() -> tuple[str, ...]:
    with REFUSALS_CSV.open(encoding="utf-8", newline="") as handle:
        return tuple(row["marker"].casefold() for row in csv.DictReader(handle))


def is_refusal(answer: str) -> bool:
    """An answer that declines rather than answers (the markers are the phrases assistants decline with)."""
    text = answer.casefold().replace("’", "'")
    return any(marker in text for marker in refusal_markers())


def find_title(question: str, titles: Sequence[Title] = TITLES) -> tuple[Title | None, str]:
    """The title named in the question (longest matching name wins) and the question without that name."""
    folded = question.casefold()
    best: tuple[int, Title, str] | None = None
    for title in titles:
        for name in title.names():
            if name.casefold() in folded and (best is None or len(name) > best[0]):
                best = (len(name), title, name)
    if best is None:
        return None, folded
    return best[1], folded.replace(best[2].casefold(), " ")


def find_kind(text: str) -> str | None:
    """The kind whose keywords appear most often in `text` (case-folded); the longest keyword breaks ties."""
    scores = []
    for kind, words in _keywords().items():
        hits = [word for word in words if word in text]
        if hits:
            scores.append((len(hits), max(len(word) for word in hits), kind))
    return max(scores)[2] if scores else None


def catalogue_answer(question: str, titles: Sequence[Title] = TITLES) -> str:
    """The assistant's answer, or `REFUSAL` when the question names no known title or asks nothing known."""
    title, rest = find_title(question, titles)
    kind = find_kind(rest)
    templates = answer_templates()
    if kind is None or kind not in templates:
        return REFUSAL
    needs_title = "{title}" in templates[kind].assistant
    if needs_title and title is None:
        return REFUSAL
    return fill(templates[kind].assistant, title_fields(title, titles) if title else {})
