"""build_unlabeled_set: the order of cleaning, scrubbing, deduplication and the leakage filter."""

from manga_distill_assets.data.unlabeled import UNLABELED_COLUMNS, build_unlabeled_set


def test_case_and_punctuation_variants_collapse_into_the_first_with_their_count():
    result = build_unlabeled_set(
        ["Where is my JJK box set?", "where is my jjk box set", "WHERE IS MY JJK BOX SET!"], []
    )
    assert result.frame.to_dict(orient="records") == [{"text": "Where is my JJK box set?", "frequency": 3}]


def test_pii_is_scrubbed_before_deduplication():
    result = build_unlabeled_set(["email me at a@example.com please", "email me at b@example.org please"], [])
    assert result.frame["text"].tolist() == ["email me at <EMAIL> please"]
    assert result.steps["pii_scrubbed"] == 2


def test_blank_and_overlong_queries_are_dropped_and_counted():
    result = build_unlabeled_set(["  ", "", "x" * 600, "is frieren vol 13 out"], [], max_chars=512)
    assert result.frame["text"].tolist() == ["is frieren vol 13 out"]
    assert (result.steps["blank_dropped"], result.steps["too_long_dropped"]) == (2, 1)


def test_queries_of_only_invisible_characters_are_dropped_and_counted():
    invisible = ["\u00ad", "\u200e\u200f", "\u3164\u3164", "\ufe0f", "\U000e0041"]
    result = build_unlabeled_set([*invisible, "is frieren vol 13 out"], [])
    assert result.frame["text"].tolist() == ["is frieren vol 13 out"]
    assert (result.steps["blank_dropped"], result.steps["invisible_dropped"]) == (0, 5)


def test_exact_and_near_duplicates_of_evaluation_texts_are_removed():
    queries = ["Recommend manga like Berserk", "recommend manga lke bersek", "where is my order"]
    eval_texts = ["recommend manga like berserk", "recommend manga lke berserk"]
    result = build_unlabeled_set(queries, eval_texts)
    assert result.frame["text"].tolist() == ["where is my order"]
    assert result.steps["leakage_removed"] == 2


def test_steps_account_for_every_row():
    result = build_unlabeled_set(
        ["a query here", "A query here.", "", "\u00ad" * 600, "x" * 600, "another one entirely"],
        ["another one entirely"],
        max_chars=512,
    )
    steps = result.steps
    dropped = steps["blank_dropped"] + steps["invisible_dropped"] + steps["too_long_dropped"]
    assert steps["rows_in"] == dropped + steps["rows_after_cleaning"]
    assert (
        steps["rows_after_cleaning"]
        == steps["leakage_removed"] + steps["duplicates_removed"] + steps["rows_out"]
    )
    assert list(result.frame.columns) == UNLABELED_COLUMNS


def test_an_evaluation_text_with_pii_still_catches_its_scrubbed_copy():
    eval_text = "when does order #12345678 arrive"
    result = build_unlabeled_set([eval_text, "is berserk deluxe 2 in stock"], [eval_text])
    assert result.frame["text"].tolist() == ["is berserk deluxe 2 in stock"]
