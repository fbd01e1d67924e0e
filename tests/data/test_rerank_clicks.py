"""A click log read as a relevance file: click-through rates become grades, queries keep one split."""

from collections import Counter

import pandas as pd
import pytest

from manga_distill_assets.data.rerank_clicks import CLICK_COLUMNS, graded_from_clicks, split_of
from manga_distill_assets.data.rerank_file import RerankFileError, read_rerank_file


def impressions(query: str, doc_id: str, clicks: int, shown: int, doc: str = "") -> list[tuple]:
    return [(query, doc_id, doc or f"product {doc_id}", int(i < clicks)) for i in range(shown)]


def log(*rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame([row for group in rows for row in group], columns=list(CLICK_COLUMNS))


def test_click_through_rates_become_grades_by_thirds():
    rates = {"d0": (0, 4), "d1": (1, 3), "d2": (1, 2), "d3": (2, 3), "d4": (3, 4), "d5": (1, 1)}
    frame = graded_from_clicks(log(*(impressions("jjk", d, c, n) for d, (c, n) in rates.items())), "log")
    grades = dict(zip(frame["doc_id"], frame["grade"], strict=True))
    # ceil(3 x rate): 0; 1/3 -> 1; 1/2 -> 2; 2/3 -> 2; 3/4 -> 3; 1 -> 3
    assert grades == {"d0": 0, "d1": 1, "d2": 2, "d3": 2, "d4": 3, "d5": 3}


def test_spellings_of_one_query_are_one_query_and_a_product_keeps_its_latest_text():
    frame = graded_from_clicks(
        log(
            impressions("JJK Box Set", "d1", 1, 1, "Jujutsu Kaisen box set"),
            impressions("jjk box set!", "d1", 0, 1, "Jujutsu Kaisen box set (2nd printing)"),
            impressions("jjk box set", "d2", 0, 2),
        ),
        "log",
    )
    assert frame["query_id"].nunique() == 1 and frame["split"].nunique() == 1
    assert set(frame["query"]) == {"JJK Box Set"}
    assert frame.set_index("doc_id").loc["d1", "doc"] == "Jujutsu Kaisen box set (2nd printing)"
    assert frame.set_index("doc_id").loc["d1", "grade"] == 2  # one click in two impressions


def test_a_query_keeps_its_split_in_a_longer_log_and_queries_split_about_70_15_15():
    short = graded_from_clicks(log(impressions("berserk deluxe", "d1", 1, 2)), "log")
    longer = graded_from_clicks(
        log(impressions("berserk deluxe", "d1", 1, 2), impressions("uzumaki", "d2", 1, 1)), "log"
    )
    assert longer.set_index("query").loc["berserk deluxe", "split"] == short["split"].item()
    shares = Counter(split_of(f"query {i}") for i in range(3000))
    assert shares["train"] / 3000 == pytest.approx(0.70, abs=0.03)
    assert shares["validation"] / 3000 == pytest.approx(0.15, abs=0.03)
    assert shares["test"] / 3000 == pytest.approx(0.15, abs=0.03)


def test_a_click_log_file_is_graded_then_checked_like_a_relevance_file(tmp_path):
    path = tmp_path / "clicks.csv"
    log(
        impressions("jjk box set", "d1", 2, 2),
        impressions("jjk box set", "d2", 0, 3),
        impressions("never clicked", "d1", 0, 2),
        impressions("never clicked", "d2", 0, 2),
    ).assign(session_id="s1").to_csv(path, index=False)
    checked = read_rerank_file(path)
    assert checked.frame.set_index("doc_id")["grade"].to_dict() == {"d1": 3, "d2": 0}
    assert checked.skipped["queries_all_grade_0"] == 1


def test_a_clicked_value_that_is_not_a_click_is_refused_naming_the_row(tmp_path):
    path = tmp_path / "clicks.csv"
    frame = log(impressions("jjk box set", "d1", 1, 2)).astype({"clicked": object})
    frame.loc[1, "clicked"] = "maybe"
    frame.to_csv(path, index=False)
    with pytest.raises(RerankFileError, match=r"row 1: clicked 'maybe' is not 1/0 or true/false"):
        read_rerank_file(path)
