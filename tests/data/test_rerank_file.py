"""A user's relevance file: a valid one loads, each kind of bad input is refused naming what to fix."""

import pandas as pd
import pytest

from manga_distill_assets.data.rerank_file import RerankFileError, read_rerank_file

ROWS = [
    ("q1", "jjk box set", "d1", "Jujutsu Kaisen box set", 3, "train"),
    ("q1", "jjk box set", "d2", "One Piece paperback", 0, "train"),
    ("q2", "horror manga", "d3", "Uzumaki by Junji Ito", 2, "test"),
    ("q2", "horror manga", "d2", "One Piece paperback", 0, "test"),
]
COLUMNS = ["query_id", "query", "doc_id", "doc", "grade", "split"]


def write(tmp_path, rows, columns=COLUMNS):
    path = tmp_path / "pairs.csv"
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


def test_a_valid_file_loads_with_integer_grades_and_nothing_skipped(tmp_path):
    checked = read_rerank_file(write(tmp_path, ROWS))
    assert list(checked.frame.columns) == COLUMNS
    assert checked.frame["grade"].tolist() == [3, 0, 2, 0]
    assert not any(checked.skipped.values())


def test_a_query_with_one_candidate_is_skipped_and_counted(tmp_path):
    rows = [*ROWS, ("q3", "naruto", "d4", "Naruto paperback", 3, "train")]
    checked = read_rerank_file(write(tmp_path, rows))
    assert "q3" not in set(checked.frame["query_id"])
    assert checked.skipped["queries_with_one_candidate"] == 1


def test_a_candidate_with_an_empty_doc_is_skipped_and_its_query_counted_when_left_alone(tmp_path):
    rows = [*ROWS, ("q3", "naruto", "", "", 3, "train"), ("q3", "naruto", "d4", "Naruto", 1, "train")]
    checked = read_rerank_file(write(tmp_path, rows))
    assert checked.frame["query_id"].tolist() == ["q1", "q1", "q2", "q2"]
    assert (checked.skipped["rows_without_doc"], checked.skipped["queries_with_one_candidate"]) == (1, 1)


def test_a_query_with_only_zero_grades_is_skipped_and_counted(tmp_path):
    rows = [
        *ROWS,
        ("q3", "naruto", "d4", "Naruto", 0, "train"),
        ("q3", "naruto", "d2", "One Piece paperback", 0, "train"),
    ]
    checked = read_rerank_file(write(tmp_path, rows))
    assert set(checked.frame["query_id"]) == {"q1", "q2"}
    assert checked.skipped["queries_all_grade_0"] == 1


def test_a_file_that_leaves_no_query_to_rank_is_refused_with_the_skips(tmp_path):
    rows = [(*row[:4], 0, row[5]) for row in ROWS]
    with pytest.raises(
        RerankFileError, match=r"no query is left to rank \(skipped: .*'queries_all_grade_0': 2"
    ):
        read_rerank_file(write(tmp_path, rows))


@pytest.mark.parametrize("bad", [4, -1, 1.5, "high"])
def test_a_grade_out_of_range_is_refused_naming_the_row(tmp_path, bad):
    rows = [ROWS[0], (*ROWS[1][:4], bad, "train"), *ROWS[2:]]
    with pytest.raises(RerankFileError, match=r"row 1: grade .* \(query 'q1', doc 'd2'\) is not an integer"):
        read_rerank_file(write(tmp_path, rows))


def test_a_duplicate_pair_is_refused(tmp_path):
    with pytest.raises(
        RerankFileError, match=r"row 4: the pair \(query 'q1', doc 'd1'\) appears more than once"
    ):
        read_rerank_file(write(tmp_path, [*ROWS, ROWS[0]]))


def test_a_missing_column_or_an_unknown_split_is_refused(tmp_path):
    with pytest.raises(RerankFileError, match=r"lacks the column\(s\) \['split'\]"):
        read_rerank_file(write(tmp_path, [row[:5] for row in ROWS], COLUMNS[:5]))
    with pytest.raises(RerankFileError, match="split 'dev' is not one of"):
        read_rerank_file(write(tmp_path, [(*ROWS[0][:5], "dev"), *ROWS[1:]]))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(RerankFileError, match="does not exist"):
        read_rerank_file(tmp_path / "nowhere.csv")
