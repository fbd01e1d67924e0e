"""Typing noise as a store's inbox shows it: neighbouring-key typos, casing, punctuation, fillers, emoji.

Noise touches plain words only, so that order numbers, e-mails and prices in a query stay intact.
"""

from __future__ import annotations

import random

from manga_distill_assets.data.catalog import ROMAJI_FILLERS
from manga_distill_assets.data.intent_wording import EMOJI

KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    neighbours: dict[str, str] = {}
    for row_index, row in enumerate(KEYBOARD_ROWS):
        for column, key in enumerate(row):
            near = [row[i] for i in (column - 1, column + 1) if 0 <= i < len(row)]
            for other in (row_index - 1, row_index + 1):
                if 0 <= other < len(KEYBOARD_ROWS):
                    near += [
                        KEYBOARD_ROWS[other][i]
                        for i in (column - 1, column)
                        if 0 <= i < len(KEYBOARD_ROWS[other])
                    ]
            neighbours[key] = "".join(near)
    return neighbours


KEYBOARD_NEIGHBOURS = _keyboard_neighbours()


def add_typo(word: str, rng: random.Random) -> str:
    """One slip of the finger: a swapped pair, a neighbouring key, a dropped or a doubled letter."""
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if len(letters) < 3:
        return word
    i = rng.choice(letters[1:])
    kind = rng.choice(("swap", "neighbour", "drop", "double"))
    if kind == "swap" and i + 1 < len(word) and word[i + 1].isalpha():
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "neighbour" and word[i].lower() in KEYBOARD_NEIGHBOURS:
        replacement = rng.choice(KEYBOARD_NEIGHBOURS[word[i].lower()])
        return word[:i] + (replacement.upper() if word[i].isupper() else replacement) + word[i + 1 :]
    if kind == "double":
        return word[: i + 1] + word[i] + word[i + 1 :]
    return word[:i] + word[i + 1 :]


def with_typos(text: str, rng: random.Random, count: int = 1) -> str:
    """Typos only in plain words: order numbers, emails and prices must stay intact."""
    words = text.split(" ")
    plain = [i for i, word in enumerate(words) if word.isascii() and word.isalpha() and len(word) >= 3]
    for i in rng.sample(plain, min(count, len(plain))):
        words[i] = add_typo(words[i], rng)
    return " ".join(words)


def recase(text: str, rng: random.Random) -> str:
    """Casing as customers type it: mostly lower or as written, sometimes shouting, sometimes odd."""
    draw = rng.random()
    if draw < 0.45:
        return text.lower()
    if draw < 0.49:
        return text.upper()
    if draw < 0.53:
        return " ".join(word.capitalize() for word in text.split(" "))
    if draw < 0.56:
        return " ".join(word.upper() if rng.random() < 0.3 else word for word in text.split(" "))
    return text


def add_noise(text: str, rng: random.Random, typo_rate: float = 0.22) -> str:
    """Typos, casing, punctuation, romaji fillers and emoji at the rates a store's inbox shows."""
    if rng.random() < typo_rate:
        text = with_typos(text, rng, count=rng.choice((1, 1, 1, 2)))
    text = recase(text, rng)
    draw = rng.random()
    if draw < 0.35:
        text = text.rstrip("?.!")
    elif draw < 0.40:
        text = text.rstrip("?.!") + rng.choice(("??", "???", "!!", "?!"))
    if rng.random() < 0.15:
        text = text.replace("'", "").replace(",", "")
    if rng.random() < 0.04:
        filler = rng.choice(ROMAJI_FILLERS)
        text = f"{filler}, {text}" if rng.random() < 0.5 else f"{text} {filler}"
    if rng.random() < 0.02:
        text = f"{text} {rng.choice(EMOJI)}"
    return text
