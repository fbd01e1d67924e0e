"""Text normalisation shared by every step that reads customer queries.

Two levels exist because they serve different readers. `normalize_text` is what the models see: it removes
only differences no reader can perceive (full-width forms, invisible characters, ragged whitespace) and keeps
case and punctuation, which carry intent ("Cancel!!" vs "cancel?"). `dedup_key` is what duplicate detection
compares: it also drops case and punctuation, so "Where is my order?" and "where is my order" are one query.

Both run on every logged query (millions a month), so each has a fast path for the common case (printable
text, ASCII text) that gives exactly the result of the general path.
"""

from __future__ import annotations

import re
import unicodedata

# Whitespace, control characters and zero-width characters all act as (or hide) a word break. Python's `\s`
# already covers Unicode spaces such as U+00A0 and U+3000; the explicit ranges add the C0/C1 controls that are
# not spaces and the zero-width space, non-joiner, joiner, word joiner, byte-order mark and Mongolian vowel
# separator, which render as nothing but split or glue words invisibly.
_SEPARATOR_RUN = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u180e\u200b-\u200d\u2060\ufeff]+")


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


# Punctuation (Unicode categories P*, all of which lie in planes 0 and 1) becomes a word break rather than
# vanishing, so "one-piece" and "one piece" share a key while two words around a slash do not fuse into a new
# word. Symbols (currency, <, >, +) are kept: "$12" and "12" are different questions, and PII placeholders
# such as "<EMAIL>" stay recognisable.
_PUNCTUATION_TO_SPACE = {code: " " for code in range(0x20000) if _is_punctuation(chr(code))}
_ASCII_PUNCTUATION_TO_SPACE = bytes(32 if _is_punctuation(chr(code)) else code for code in range(256))


def normalize_text(text: str) -> str:
    """Unicode NFKC, every run of whitespace / invisible characters as one space, no leading/trailing space.

    Idempotent: normalising a normalised text returns it unchanged.
    """
    composed = unicodedata.normalize("NFKC", text)
    if composed.isprintable():
        # Printable text holds no controls, no format characters and no space other than U+0020.
        return " ".join(composed.split())
    return _SEPARATOR_RUN.sub(" ", composed).strip()


# Characters that render as nothing although they are neither spaces nor format characters: the Hangul
# fillers, the blank Braille pattern, the combining grapheme joiner and the variation selectors. Spam and
# copy-paste accidents use them to make a message that looks empty but is not.
_BLANK_LOOKING = frozenset("\u034f\u115f\u1160\u2800\u3164\uffa0") | frozenset(
    map(chr, [*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)])
)
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def has_visible_character(text: str) -> bool:
    """False for a text made only of spaces, controls, zero-width and other invisible characters.

    Such a text reaches no reader as a query, so it must never become a training or evaluation example,
    although it is not empty. The first visible character ends the scan, so ordinary text costs almost
    nothing.
    """
    return any(
        char not in _BLANK_LOOKING and unicodedata.category(char) not in _INVISIBLE_CATEGORIES
        for char in text
    )


def dedup_key(text: str) -> str:
    """The key under which two texts are exact duplicates: normalised, casefolded, without punctuation."""
    folded = normalize_text(text).casefold()
    if folded.isascii():
        words = folded.encode("ascii").translate(_ASCII_PUNCTUATION_TO_SPACE).split()
        return b" ".join(words).decode("ascii")
    return " ".join(folded.translate(_PUNCTUATION_TO_SPACE).split())
