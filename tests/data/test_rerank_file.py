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


def test_a_valid_file_loads_with_integer_grades(tmp_path):
    frame = read_rerank_file(write(tmp_path, ROWS))
    assert list(frame.columns) == COLUMNS
    assert frame["grade"].tolist() == [3, 0, 2, 0]


def test_a_query_without_candidates_is_refused(tmp_path):
    rows = [*ROWS, ("q3", "naruto", "d4", "Naruto paperback", 3, "train")]
    with pytest.raises(RerankFileError, match="query 'q3' has no candidates"):
        read_rerank_file(write(tmp_path, rows))


def test_a_query_whose_candidates_have_empty_docs_is_refused(tmp_path):
    rows = [*ROWS, ("q3", "naruto", "", "", 3, "train"), ("q3", "naruto", "d4", "Naruto", 1, "train")]
    with pytest.raises(RerankFileError, match="query 'q3' has no candidates"):
        read_rerank_file(write(tmp_path, rows))


def test_a_query_with_only_zero_grades_is_refused(tmp_path):
    rows = [(*row[:4], 0, row[5]) if row[0] == "q2" else row for row in ROWS]
    with pytest.raises(RerankFileError, match="every candidate of query 'q2' has grade 0"):
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
