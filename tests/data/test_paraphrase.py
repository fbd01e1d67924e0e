"""Offline paraphrases, the paraphrase prompt, and the strict parsing of an LLM's answer."""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manga_distill_assets.data.paraphrase import build_prompt, offline_paraphrases, parse_paraphrases

QUERIES = [
    "Is One Piece volume 105 in stock?",
    "Where is my order <ORDER_ID>?",
    "Can you recommend a manga like Attack on Titan?",
    "I want a refund for Spy x Family vol. 3, it arrived damaged",
    "Did my order ship yet?",
    "Do you have the new Chainsaw Man volume?",
    'What is the price of "Kaguya-sama: Love Is War" vol 12?',
    "cancel order #12345 please",
]


def _normalised(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.mark.parametrize("query", QUERIES)
def test_offline_paraphrases_give_n_distinct_texts_that_differ_from_the_source(query: str) -> None:
    paraphrases = offline_paraphrases(query, n=5)

    assert len(paraphrases) == 5
    assert len({_normalised(p) for p in paraphrases}) == 5
    assert _normalised(query) not in {_normalised(p) for p in paraphrases}


def test_offline_paraphrases_are_the_same_on_every_call() -> None:
    assert offline_paraphrases(QUERIES[0], n=5, seed=3) == offline_paraphrases(QUERIES[0], n=5, seed=3)


def test_offline_paraphrases_are_the_same_in_a_process_with_another_hash_seed() -> None:
    script = (
        "import json, sys\n"
        "from manga_distill_assets.data.paraphrase import offline_paraphrases\n"
        "print(json.dumps([offline_paraphrases(q, n=5, seed=7) for q in json.loads(sys.argv[1])]))\n"
    )
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}
    completed = subprocess.run(
        [sys.executable, "-c", script, json.dumps(QUERIES)],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )

    assert json.loads(completed.stdout) == [offline_paraphrases(q, n=5, seed=7) for q in QUERIES]


def test_offline_paraphrases_change_with_the_seed() -> None:
    assert offline_paraphrases(QUERIES[2], n=5, seed=0) != offline_paraphrases(QUERIES[2], n=5, seed=1)


@pytest.mark.parametrize(
    ("query", "kept_verbatim"),
    [
        ("Is One Piece volume 105 in stock?", ["One Piece", "105"]),
        ("Where is my order <ORDER_ID>?", ["<ORDER_ID>"]),
        ("Can you recommend a manga like Attack on Titan?", ["Attack on Titan"]),
        ("I want a refund for Spy x Family vol. 3, it arrived damaged", ["Spy x Family", "3"]),
        ('What is the price of "Kaguya-sama: Love Is War" vol 12?', ['"Kaguya-sama: Love Is War"', "12"]),
        (
            "Please email <EMAIL> when Chainsaw Man 17 ships, total $12.99",
            ["<EMAIL>", "Chainsaw Man", "$12.99"],
        ),
    ],
)
def test_offline_paraphrases_keep_titles_numbers_and_placeholders(
    query: str, kept_verbatim: list[str]
) -> None:
    for seed in range(5):
        for paraphrase in offline_paraphrases(query, n=5, seed=seed):
            for span in kept_verbatim:
                assert span in paraphrase, f"{span!r} lost in {paraphrase!r}"


_FILLER_WORDS = st.sampled_from(
    ["is", "my", "order", "manga", "volume", "in", "stock", "please", "where", "ship", "refund", "the", "a"]
)


@settings(max_examples=60, deadline=None)
@given(
    before=st.lists(_FILLER_WORDS, max_size=6),
    after=st.lists(_FILLER_WORDS, max_size=6),
    number=st.integers(min_value=0, max_value=99999),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_offline_paraphrases_never_lose_a_title_a_number_or_a_placeholder(
    before: list[str], after: list[str], number: int, seed: int
) -> None:
    query = " ".join([*before, "Dragon Ball", str(number), *after, "<ORDER_ID>?"])

    for paraphrase in offline_paraphrases(query, n=5, seed=seed):
        assert "Dragon Ball" in paraphrase
        assert str(number) in paraphrase
        assert "<ORDER_ID>" in paraphrase


def test_offline_paraphrases_use_store_synonyms() -> None:
    paraphrases = offline_paraphrases("Can you recommend a manga? Is volume 3 in stock?", n=10)
    text = " ".join(paraphrases).lower()

    assert "suggest" in text
    assert "comic" in text
    assert "available" in text


def test_offline_paraphrases_of_an_empty_text_are_empty() -> None:
    assert offline_paraphrases("   ", n=5) == []


def test_prompt_asks_for_n_paraphrases_of_the_text_as_a_json_list() -> None:
    prompt = build_prompt("Is One Piece volume 105 in stock?", n=4, prompt_version="v1")

    assert "Is One Piece volume 105 in stock?" in prompt
    assert "exactly 4 paraphrases" in prompt
    assert "JSON list" in prompt


def test_prompt_with_an_unknown_version_names_the_known_versions() -> None:
    with pytest.raises(ValueError, match=r"'v999'.*\['v1'\]"):
        build_prompt("hello", n=3, prompt_version="v999")


SOURCE = "Where is my order?"
GOOD = ["Where's my order?", "Has my order shipped?"]


@pytest.mark.parametrize(
    "answer",
    [
        json.dumps(GOOD),
        "```json\n" + json.dumps(GOOD) + "\n```",
        "```\n" + json.dumps(GOOD) + "\n```",
        "Here are the paraphrases:\n```json\n" + json.dumps(GOOD) + "\n```\nI hope these help.",
        "Here are the paraphrases:\n" + json.dumps(GOOD, indent=2) + "\n",
    ],
    ids=["bare", "json-fence", "plain-fence", "prose-around-fence", "prose-before-list"],
)
def test_parse_accepts_a_json_list_of_strings(answer: str) -> None:
    assert parse_paraphrases(answer, source=SOURCE, n=2) == (GOOD, 0)


@pytest.mark.parametrize(
    "answer",
    [
        "Sorry, I can't help with that.",
        '{"paraphrases": ["Where\'s my order?"]}',
        '["Where\'s my order?", "Has my order',
        json.dumps(GOOD) + " Let me know if you need more.",
        "```json\n" + json.dumps(GOOD) + "\n```\n```json\n" + json.dumps(GOOD) + "\n```",
        "",
    ],
    ids=["prose", "object", "truncated", "prose-after-list", "two-fences", "empty"],
)
def test_parse_drops_all_n_for_an_answer_without_one_json_list(answer: str) -> None:
    assert parse_paraphrases(answer, source=SOURCE, n=5) == ([], 5)


@pytest.mark.parametrize(
    "bad_item",
    [
        42,
        None,
        ["nested"],
        "",
        "   ",
        "ok",
        "x" * 301,
        "where is my ORDER?",
        "  Where   is my order? ",
        GOOD[0],
    ],
    ids=[
        "number",
        "null",
        "list",
        "empty",
        "blank",
        "too-short",
        "too-long",
        "source-in-other-case",
        "source-with-other-spacing",
        "duplicate",
    ],
)
def test_parse_drops_and_counts_a_bad_item(bad_item: object) -> None:
    answer = json.dumps([GOOD[0], bad_item, GOOD[1]])

    assert parse_paraphrases(answer, source=SOURCE, n=3) == (GOOD, 1)


def test_parse_strips_the_items_it_keeps() -> None:
    assert parse_paraphrases('["  Has my order shipped?\\n"]', source=SOURCE, n=1) == (
        ["Has my order shipped?"],
        0,
    )


def test_parse_keeps_at_most_n_items() -> None:
    answer = json.dumps([*GOOD, "Any news on my order?"])

    assert parse_paraphrases(answer, source=SOURCE, n=2) == (GOOD, 0)


def test_parse_counts_missing_items_as_dropped() -> None:
    assert parse_paraphrases(json.dumps(GOOD), source=SOURCE, n=5) == (GOOD, 3)
