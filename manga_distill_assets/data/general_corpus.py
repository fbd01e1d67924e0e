"""General text for the general distillation stage: raw lines in, short passages out.

Passages are a few sentences each, up to `max_words` words: the task stage sees short queries, attention
maps cost the square of the length, and on a CPU short passages let the student see many more contexts in the
same time. WikiText's markup is undone so the text reads as the tokenizer expects: section headings
(`= = Title = =`) are dropped, `@-@`, `@,@` and `@.@` join their neighbours again and `<unk>` placeholders
go.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_HEADING = re.compile(r"^\s*=.*=\s*$")
_JOINED = re.compile(r" @(?P<mark>[-.,])@ ")
_UNKNOWN = re.compile(r"\s*<unk>")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SPACES = re.compile(r"\s+")


def clean_line(line: str) -> str:
    """One line of plain or WikiText-style text as plain text ("" for a heading or a blank line)."""
    if _HEADING.match(line):
        return ""
    line = _JOINED.sub(lambda match: match["mark"], line)
    line = _UNKNOWN.sub("", line)
    return _SPACES.sub(" ", line).strip()


def passages(lines: Iterable[str], max_words: int) -> list[str]:
    """Consecutive sentences of each paragraph packed into passages of at most `max_words` words.

    A sentence longer than `max_words` is cut into pieces of `max_words` words. Passages never span two
    paragraphs, and an exact repeat of an earlier passage is dropped.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}.")
    found: dict[str, None] = {}
    for line in lines:
        current: list[str] = []
        for sentence in _SENTENCE_END.split(clean_line(line)):
            words = sentence.split()
            if current and len(current) + len(words) > max_words:
                found.setdefault(" ".join(current))
                current = []
            while len(words) > max_words:
                found.setdefault(" ".join(words[:max_words]))
                words = words[max_words:]
            current.extend(words)
        if current:
            found.setdefault(" ".join(current))
    return list(found)
