"""deduplicate: exact duplicates by key, near duplicates by shingle Jaccard, clustered around leaders.

Walking the texts in order, a text collapses into the earliest kept text it is a duplicate of, and is kept
otherwise; the first-seen text of a cluster represents it.
"""

import itertools
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manga_distill_assets.data.dedup import EXACT_PAIR_LIMIT, MAX_BUCKET, choose_bands, deduplicate
from manga_distill_assets.data.normalize import dedup_key


def shingles(text: str, size: int = 3) -> set[str]:
    key = dedup_key(text)
    return {key[i : i + size] for i in range(len(key) - size + 1)}


def jaccard(first: str, second: str) -> float:
    a, b = shingles(first), shingles(second)
    return len(a & b) / len(a | b)


def test_case_punctuation_and_spacing_variants_are_exact_duplicates() -> None:
    result = deduplicate(["Where is my order?", "where is my order", "WHERE  IS MY ORDER!!", "cancel it"])
    assert result.kept.tolist() == [0, 3]
    assert result.representative.tolist() == [0, 0, 0, 3]
    assert (result.exact_removed, result.near_removed) == (2, 0)


def test_a_typo_variant_is_a_near_duplicate() -> None:
    texts = ["do you have one piece vol 105", "Do you have One Pice vol 105?"]
    assert jaccard(*texts) == pytest.approx(24 / 29)
    result = deduplicate(texts)
    assert result.kept.tolist() == [0]
    assert (result.exact_removed, result.near_removed) == (0, 1)


def test_similarity_exactly_at_the_threshold_merges_and_just_below_does_not() -> None:
    texts = ["where is my order", "where is my oder"]
    similarity = jaccard(*texts)
    assert similarity == pytest.approx(12 / 17)
    assert deduplicate(texts, threshold=similarity).kept.tolist() == [0]
    assert deduplicate(texts, threshold=math.nextafter(similarity, 1.0)).kept.tolist() == [0, 1]


def test_the_first_seen_text_represents_its_cluster() -> None:
    texts = [
        "Hello there, my good friend!",
        "recommend berserk",
        "hello there my good friend",
        "hello there my good frend",
    ]
    result = deduplicate(texts)
    assert result.kept.tolist() == [0, 1]
    assert result.representative.tolist() == [0, 1, 0, 0]


def test_frequencies_count_every_input_once() -> None:
    texts = ["a b c d", "A B C D!", "x y z w", "a b c d", "x y z w?", "something else entirely"]
    result = deduplicate(texts)
    assert result.kept.tolist() == [0, 2, 5]
    assert result.frequencies().tolist() == [3, 2, 1]
    assert result.frequencies().sum() == len(texts)


# Each step is a near duplicate of the next, the ends are not.
CHAIN = ["recommend manga like berserk", "recommend manga lke berserk", "recommend manga lke bersek"]


def test_the_chain_fixture_is_a_chain() -> None:
    assert jaccard(CHAIN[0], CHAIN[1]) >= 0.8 and jaccard(CHAIN[1], CHAIN[2]) >= 0.8
    assert jaccard(CHAIN[0], CHAIN[2]) < 0.8


def test_a_chain_keeps_both_ends() -> None:
    result = deduplicate(CHAIN)
    assert result.kept.tolist() == [0, 2]
    assert result.representative.tolist() == [0, 0, 2]


def test_a_near_duplicate_of_two_kept_texts_collapses_into_the_earlier_not_the_more_similar() -> None:
    earlier, later, both = CHAIN[0], CHAIN[2], CHAIN[1]
    assert 0.8 <= jaccard(both, earlier) < jaccard(both, later)
    result = deduplicate([earlier, later, both])
    assert result.kept.tolist() == [0, 1]
    assert result.representative.tolist() == [0, 1, 0]


def test_texts_shorter_than_a_shingle_match_only_exactly() -> None:
    result = deduplicate(["ok", "OK!", "oh", "o"])
    assert result.kept.tolist() == [0, 2, 3]
    assert result.representative.tolist() == [0, 0, 2, 3]


def test_empty_input_gives_an_empty_result() -> None:
    result = deduplicate([])
    assert result.kept.tolist() == []
    assert result.frequencies().tolist() == []


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.5, float("nan")])
def test_a_threshold_outside_0_to_1_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match=r"threshold must be a Jaccard similarity in \(0, 1\]"):
        deduplicate(["a text"], threshold=threshold)


@pytest.mark.parametrize(("setting", "value"), [("num_perm", 0), ("shingle", 0)])
def test_non_positive_sketch_settings_are_refused(setting: str, value: int) -> None:
    with pytest.raises(ValueError, match=setting):
        deduplicate(["a text"], **{setting: value})


def test_default_banding_is_nine_bands_of_seven_rows() -> None:
    assert choose_bands(0.8, 64) == (9, 7)


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.5, 16), (0.8, 64), (0.9, 128), (1.0, 32)])
def test_banding_fits_in_the_signature(threshold: float, num_perm: int) -> None:
    bands, rows = choose_bands(threshold, num_perm)
    assert bands >= 1 and rows >= 1 and bands * rows <= num_perm


# Beyond EXACT_PAIR_LIMIT pairs the candidates come from MinHash LSH: a corpus of distinct random sentences
# with planted typo variants exercises that path.
WORDS = [
    "manga", "volume", "order", "ship", "stock", "price", "release", "return", "refund", "gift", "box",
    "set", "english", "japanese", "store", "card", "email", "track", "late", "damaged", "new", "old",
    "series", "art",
]  # fmt: skip


def random_sentences(count: int, length: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=length)) for _ in range(count)]


def with_typo(text: str, position: int) -> str:
    return text[:position] + ("x" if text[position] != "x" else "y") + text[position + 1 :]


@pytest.fixture(scope="module")
def planted_corpus() -> tuple[list[str], list[tuple[int, int]]]:
    """500 long random sentences, then 40 typo variants of the first 40 (J about 0.96 with the original)."""
    originals = random_sentences(500, length=24, seed=7)
    variants = [with_typo(text, position=len(text) // 2) for text in originals[:40]]
    return originals + variants, [(i, 500 + i) for i in range(40)]


def test_corpus_is_large_enough_for_the_sketch_path(planted_corpus: tuple[list[str], list]) -> None:
    texts, _ = planted_corpus
    assert len(texts) * (len(texts) - 1) // 2 > EXACT_PAIR_LIMIT


def test_sketch_path_finds_planted_near_duplicates(planted_corpus: tuple[list[str], list]) -> None:
    texts, planted = planted_corpus
    assert min(jaccard(texts[a], texts[b]) for a, b in planted) > 0.93
    representative = deduplicate(texts).representative
    assert all(representative[b] == representative[a] for a, b in planted)


def test_sketch_path_removes_only_near_duplicates_of_the_representative(
    planted_corpus: tuple[list[str], list],
) -> None:
    texts, _ = planted_corpus
    result = deduplicate(texts)
    removed = np.flatnonzero(result.representative != np.arange(len(texts)))
    assert len(removed) >= 40
    assert all(jaccard(texts[i], texts[result.representative[i]]) >= 0.8 for i in removed)


def test_sketch_path_keeps_unrelated_texts() -> None:
    rng = np.random.default_rng(11)
    texts = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=30)) for _ in range(400)]
    assert deduplicate(texts).kept.tolist() == list(range(400))


def test_more_identical_shingle_sets_than_a_bucket_holds_still_form_one_cluster() -> None:
    # "aaa", "aaaa", ... have different keys but the same single shingle, so identical signatures: one LSH
    # bucket larger than MAX_BUCKET that no signature column can split.
    texts = ["a" * length for length in range(3, MAX_BUCKET + 103)]
    result = deduplicate(texts)
    assert result.kept.tolist() == [0]
    assert (result.exact_removed, result.near_removed) == (0, len(texts) - 1)


def test_same_texts_give_the_same_result_in_another_process(planted_corpus: tuple[list[str], list]) -> None:
    texts, _ = planted_corpus
    shuffled = [texts[i] for i in np.random.default_rng(3).permutation(len(texts))]
    script = (
        "import json, sys\n"
        "from manga_distill_assets.data.dedup import deduplicate\n"
        "print(json.dumps(deduplicate(json.load(sys.stdin)).representative.tolist()))\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(shuffled),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert json.loads(other.stdout) == deduplicate(shuffled).representative.tolist()


@st.composite
def sentences(draw: st.DrawFn) -> list[str]:
    """A few short sentences, each repeated with small edits, so exact and near duplicates are common."""
    words = st.sampled_from(["one", "piece", "vol", "12", "where", "is", "my", "order", "Naruto", "a", "?"])
    bases = draw(st.lists(st.lists(words, min_size=1, max_size=6).map(" ".join), min_size=1, max_size=4))
    texts = []
    for _ in range(draw(st.integers(0, 14))):
        text = draw(st.sampled_from(bases))
        if text and draw(st.booleans()):
            position = draw(st.integers(0, len(text) - 1))
            edit = draw(st.sampled_from(["", "x", text[position] * 2, text[position].upper()]))
            text = text[:position] + edit + text[position + 1 :]
        texts.append(text)
    return texts


def kept_pairs_similarity(texts: list[str], kept: np.ndarray) -> float:
    comparable = [texts[i] for i in kept if len(dedup_key(texts[i])) >= 3]
    return max((jaccard(a, b) for a, b in itertools.combinations(comparable, 2)), default=0.0)


def duplicates(first: str, second: str) -> bool:
    """Exact duplicates, or near duplicates where both keys are long enough to have shingles."""
    if dedup_key(first) == dedup_key(second):
        return True
    return min(len(dedup_key(first)), len(dedup_key(second))) >= 3 and jaccard(first, second) >= 0.8


@settings(max_examples=80, deadline=None)
@given(sentences())
def test_no_two_kept_texts_are_near_duplicates(texts: list[str]) -> None:
    result = deduplicate(texts)
    assert kept_pairs_similarity(texts, result.kept) < 0.8
    assert len({dedup_key(texts[i]) for i in result.kept}) == len(result.kept)


@settings(max_examples=80, deadline=None)
@given(sentences())
def test_every_removed_text_is_a_duplicate_of_its_own_representative(texts: list[str]) -> None:
    result = deduplicate(texts)
    removed = np.flatnonzero(result.representative != np.arange(len(texts)))
    assert all(duplicates(texts[i], texts[result.representative[i]]) for i in removed)


@settings(max_examples=80, deadline=None)
@given(sentences())
def test_every_removed_text_collapses_into_the_earliest_kept_duplicate(texts: list[str]) -> None:
    result = deduplicate(texts)
    removed = np.flatnonzero(result.representative != np.arange(len(texts)))
    for i in removed:
        earlier_kept = result.kept[result.kept < result.representative[i]]
        assert not any(duplicates(texts[i], texts[k]) for k in earlier_kept)


@settings(max_examples=80, deadline=None)
@given(sentences())
def test_deduplicating_the_kept_texts_keeps_them_all(texts: list[str]) -> None:
    kept_texts = [texts[i] for i in deduplicate(texts).kept]
    assert deduplicate(kept_texts).kept.tolist() == list(range(len(kept_texts)))


@settings(max_examples=80, deadline=None)
@given(sentences())
def test_every_input_collapses_into_an_earlier_or_same_kept_text(texts: list[str]) -> None:
    result = deduplicate(texts)
    assert np.all(np.diff(result.kept) > 0)
    assert np.all(result.representative <= np.arange(len(texts)))
    assert set(result.representative.tolist()) == set(result.kept.tolist())
    assert result.frequencies().sum() == len(texts)
    assert len(texts) - result.exact_removed - result.near_removed == len(result.kept)


@settings(max_examples=80, deadline=None)
@given(sentences())
def test_moving_the_kept_texts_to_the_front_keeps_the_same_texts_and_clusters(texts: list[str]) -> None:
    result = deduplicate(texts)
    removed = np.flatnonzero(result.representative != np.arange(len(texts)))
    order = np.concatenate((result.kept, removed)).astype(np.int64)
    reordered = deduplicate([texts[i] for i in order])
    assert reordered.kept.tolist() == list(range(len(result.kept)))
    assert order[reordered.representative].tolist() == result.representative[order].tolist()


def test_pinned_texts_are_kept_and_each_claims_its_own_near_duplicates():
    texts = ["recommend manga like berserk", "recommend manga lke berserk", "recommend manga lke bersek"]
    result = deduplicate(texts, threshold=0.8, pinned=2)
    assert result.kept.tolist() == [0, 1]
    assert result.representative.tolist() == [0, 1, 1]
