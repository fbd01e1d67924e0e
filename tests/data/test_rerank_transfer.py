"""The reranker's transfer set: log queries join the train pairs, held-out queries never do."""

import pandas as pd

from manga_distill_assets.data.rerank_transfer import candidate_lists, pair_key, transfer_pairs

PAIRS = pd.DataFrame(
    [
        ("q1", "jjk box set", "d1", "Jujutsu Kaisen box set", 3, "train"),
        ("q1", "jjk box set", "d2", "One Piece paperback", 0, "train"),
        ("q2", "one piece", "d2", "One Piece paperback", 3, "test"),
        ("q2", "one piece", "d3", "Berserk deluxe hardcover", 0, "test"),
    ],
    columns=["query_id", "query", "doc_id", "doc", "grade", "split"],
)


def test_log_queries_that_match_a_document_join_the_train_pairs_and_test_queries_do_not():
    log = pd.DataFrame(
        {"text": ["berserk hardcover", "One Piece!", "where is my order"], "frequency": [3, 9, 5]}
    )
    frame = transfer_pairs(PAIRS, log, max_log_queries=10, candidates=2)
    assert set(frame.loc[frame["origin"] == "train", "query_id"]) == {"q1"}
    logged = frame[frame["origin"] == "log"]
    assert logged["query"].unique().tolist() == ["berserk hardcover"]
    assert logged["doc_id"].tolist()[0] == "d3" and len(logged) == 2


def test_the_log_share_is_capped_most_frequent_first():
    log = pd.DataFrame({"text": ["berserk", "jujutsu kaisen"], "frequency": [1, 2]})
    frame = transfer_pairs(PAIRS, log, max_log_queries=1, candidates=2)
    assert frame.loc[frame["origin"] == "log", "query"].unique().tolist() == ["jujutsu kaisen"]


def test_lists_put_the_teachers_best_first_and_pad_short_lists():
    scores = pd.DataFrame(
        {
            "query_id": ["a", "a", "a"],
            "query": ["jjk"] * 3,
            "doc": ["x", "y", "z"],
            "teacher_score": [0.1, 2.0, -1.0],
        }
    )
    queries, lists, teacher = candidate_lists(scores, list_size=4, seed=0)
    assert queries == ["jjk"] and lists[0][:3] == ["y", "x", "z"] and len(lists[0]) == 4
    assert teacher[0][:3] == [2.0, 0.1, -1.0]


def test_pair_keys_do_not_collide_when_texts_hold_separators():
    assert pair_key("a\tb", "c") != pair_key("a", "b\tc")
