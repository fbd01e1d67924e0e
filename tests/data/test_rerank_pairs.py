"""Generated reranker pairs: the grading rules, determinism, and candidate lists as retrieval gives them."""

import pandas as pd
import pytest

from manga_distill_assets.data.catalog import TITLES
from manga_distill_assets.data.rerank_candidates import Bm25Index, select_candidates
from manga_distill_assets.data.rerank_pairs import (
    Intent,
    Product,
    catalogue_products,
    generate_queries,
    grade,
    graded_rows,
)

TITLE = {title.name: title for title in TITLES}
JJK, BERSERK, AOT, KAGUYA, OSHI = (
    TITLE[name]
    for name in ("Jujutsu Kaisen", "Berserk", "Attack on Titan", "Kaguya-sama: Love Is War", "Oshi no Ko")
)


def test_a_title_query_grades_the_asked_edition_over_other_editions_creator_and_genre():
    intent = Intent("title", JJK, format="box set")
    assert grade(intent, Product("a", JJK, "box set")) == 3
    assert grade(intent, Product("b", JJK, "paperback")) == 2
    assert grade(intent, Product("c", BERSERK, "box set")) == 1  # same genre (dark fantasy)
    assert grade(intent, Product("d", TITLE["Blue Lock"], "box set")) == 0


def test_a_creator_query_grades_every_title_they_share_credit_for():
    # Aka Akasaka wrote Kaguya-sama and co-created Oshi no Ko
    intent = Intent("creator", creator="Aka Akasaka")
    assert grade(intent, Product("a", KAGUYA, "paperback")) == 3
    assert grade(intent, Product("b", OSHI, "omnibus")) == 3
    assert grade(intent, Product("c", JJK, "paperback")) == 0


def test_a_similar_query_wants_other_titles_of_the_genre_not_the_title_itself():
    intent = Intent("similar", BERSERK)
    assert grade(intent, Product("a", BERSERK, "paperback")) == 0
    assert grade(intent, Product("b", AOT, "paperback")) == 2  # dark fantasy, shōnen (Berserk is seinen)
    assert grade(intent, Product("c", TITLE["Frieren: Beyond Journey's End"], "paperback")) == 1  # "fantasy"


def test_generation_is_deterministic_and_every_query_has_a_relevant_product():
    products = catalogue_products(formats_per_title=2, seed=3)
    first = graded_rows(generate_queries(40, seed=3), products, seed=3)
    second = graded_rows(generate_queries(40, seed=3), products, seed=3)
    pd.testing.assert_frame_equal(first, second)
    assert (first.groupby("query_id")["grade"].max() > 0).all()
    assert set(first["split"]) <= {"train", "validation", "test"}


def test_bm25_ranks_the_passage_that_shares_the_query_words_first():
    index = Bm25Index(["One Piece paperback by Eiichiro Oda", "Berserk deluxe hardcover by Kentaro Miura"])
    assert index.top("berserk hardcover", 2) == [1, 0]


def test_candidates_are_bm25s_best_plus_hard_negatives_and_the_best_graded_products():
    products = catalogue_products(formats_per_title=2, seed=0)
    judged = graded_rows(generate_queries(12, seed=0), products, seed=0)
    query_id = judged["query_id"].iloc[0]
    hard = judged[(judged["query_id"] == query_id) & (judged["grade"] == 0)]["doc_id"].tolist()[-2:]
    chosen = select_candidates(judged, 6, {query_id: hard}, ensured_positives=2)
    assert (chosen.groupby("query_id").size() == 6).all()
    mine = chosen[chosen["query_id"] == query_id]
    assert set(hard) <= set(mine["doc_id"])
    best = judged[judged["query_id"] == query_id]["grade"].max()
    assert mine["grade"].max() == best
    assert list(mine["bm25_rank"]) == list(range(6))
    assert mine["bm25_score"].is_monotonic_decreasing


def test_a_candidate_list_needs_two_candidates():
    with pytest.raises(ValueError, match="at least 2 candidates"):
        select_candidates(pd.DataFrame(columns=["query_id", "doc_id", "doc", "grade"]), 1, {})
