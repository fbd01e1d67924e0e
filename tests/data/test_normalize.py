"""normalize_text is what the models see; dedup_key is what exact-duplicate detection compares."""

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manga_distill_assets.data.normalize import dedup_key, normalize_text

# Everything normalize_text must never leave behind: whitespace other than one plain space, controls, and the
# zero-width characters.
INVISIBLE_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u180e\u200b-\u200d\u2060\ufeff]")

any_text = st.text(max_size=40)
messy_text = st.lists(
    st.sampled_from(
        ["One", "piece", "ｖｏｌ．１２", "?", "!", " ", "\u00a0", "\u3000", "\u200b", "\t", "\x00", "ß", "é"]
    ),
    max_size=12,
).map("".join)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ｏｎｅ　Ｐｉｅｃｅ　ｖｏｌ．１２", "One Piece vol.12"),
        ("ﾜﾝﾋﾟｰｽ １０５巻", "ワンピース 105巻"),
        ("one\u200bpiece", "one piece"),
        ("one \u200b\ufeff piece", "one piece"),
        ("a\u00a0\u00a0b\u3000c", "a b c"),
        ("a\x00b\tc\nd\r\ne", "a b c d e"),
        ("   padded   ", "padded"),
        ("", ""),
        ("\u200b \t", ""),
    ],
)
def test_normalize_text_unifies_width_and_invisible_characters(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_normalize_text_keeps_case_and_punctuation() -> None:
    assert normalize_text("Where is my order?! CANCEL it...") == "Where is my order?! CANCEL it..."


@settings(max_examples=200, deadline=None)
@given(st.one_of(any_text, messy_text))
def test_normalize_text_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


@settings(max_examples=200, deadline=None)
@given(st.one_of(any_text, messy_text))
def test_normalize_text_leaves_single_plain_spaces_only(text: str) -> None:
    normalised = normalize_text(text)
    assert INVISIBLE_OR_SPACE.search(normalised.replace(" ", "")) is None
    assert "  " not in normalised
    assert normalised == normalised.strip(" ")


@settings(max_examples=200, deadline=None)
@given(st.one_of(any_text, messy_text))
def test_normalize_text_output_is_nfkc(text: str) -> None:
    assert unicodedata.is_normalized("NFKC", normalize_text(text))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Where is my order?", "where is my order"),
        ("ONE-PIECE vol.12!!", "one piece vol 12"),
        ("Ｗｈｅｒｅ　ｉｓ　ｍｙ　ｏｒｄｅｒ？", "where is my order"),
        ("STRASSE", "straße"),
        ("ワンピース、ありますか？", "ワンピース ありますか"),
        ("  spaced\u200b out  ", "spaced out"),
    ],
)
def test_dedup_key_ignores_case_punctuation_and_spacing(first: str, second: str) -> None:
    assert dedup_key(first) == dedup_key(second)


def test_dedup_key_of_a_plain_question() -> None:
    assert dedup_key("Where is my order?") == "where is my order"


@pytest.mark.parametrize(("first", "second"), [("$12", "12"), ("vol 12", "vol 13"), ("<EMAIL>", "email")])
def test_dedup_key_keeps_symbols_and_words_apart(first: str, second: str) -> None:
    assert dedup_key(first) != dedup_key(second)


@settings(max_examples=200, deadline=None)
@given(st.one_of(any_text, messy_text))
def test_dedup_key_holds_no_punctuation_and_single_spaces(text: str) -> None:
    key = dedup_key(text)
    assert not any(unicodedata.category(char).startswith("P") for char in key)
    assert "  " not in key
    assert key == key.strip(" ")
