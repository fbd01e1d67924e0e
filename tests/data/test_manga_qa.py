"""The manga QA set: generated from the catalogue with held-out phrasings, or loaded from a user's file."""

from pathlib import Path

import pandas as pd
import pytest

from manga_distill_assets.data.catalog import TITLES
from manga_distill_assets.data.catalogue_assistant import REFUSAL, catalogue_answer, find_kind, find_title
from manga_distill_assets.data.manga_qa import QA_COLUMNS, QADataError, generate_manga_qa, load_qa


@pytest.fixture(scope="module")
def qa() -> pd.DataFrame:
    return generate_manga_qa()


def test_every_reference_answer_states_its_facts(qa):
    for answer, facts in zip(qa["answer"], qa["facts"], strict=True):
        assert facts and all(fact in answer for fact in facts), answer


def test_held_out_questions_are_phrased_in_words_training_never_saw(qa):
    train, held_out = qa[qa["split"] == "train"], qa[qa["split"] != "train"]
    assert set(held_out["split"]) == {"validation", "test"}
    assert not set(train["question"]) & set(held_out["question"])
    for title in TITLES:
        trained = {q.replace(title.name, "{title}") for q in train["question"] if title.name in q}
        asked = {q.replace(title.name, "{title}") for q in held_out["question"] if title.name in q}
        assert trained and asked and not trained & asked


def test_held_out_questions_ask_about_items_seen_in_training(qa):
    trained = set(
        zip(qa.loc[qa["split"] == "train", "kind"], qa.loc[qa["split"] == "train", "answer"], strict=True)
    )
    held_out = set(
        zip(qa.loc[qa["split"] == "test", "kind"], qa.loc[qa["split"] == "test", "answer"], strict=True)
    )
    assert held_out <= trained


def test_the_same_seed_gives_the_same_set_and_another_seed_another_split(qa):
    pd.testing.assert_frame_equal(qa, generate_manga_qa())
    assert (generate_manga_qa(seed=14)["split"] != qa["split"]).any()


def test_the_offline_teacher_names_the_longest_title_written_in_the_question():
    title, rest = find_title("Is Dragon Ball Z in stock?")
    assert title is not None and title.name == "Dragon Ball"
    assert "dragon ball" not in rest


def test_the_offline_teacher_breaks_keyword_ties_by_the_longest_keyword():
    assert find_kind("is international delivery possible?") == "international"


def test_the_offline_teacher_refuses_questions_it_cannot_place():
    assert catalogue_answer("Who wrote it?") == REFUSAL
    assert catalogue_answer("What is the meaning of life?") == REFUSAL


def write(tmp_path: Path, text: str, name: str = "qa.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_user_file_loads_with_facts_split_on_bars(tmp_path):
    path = write(
        tmp_path, "question,answer,facts,split\nWho wrote Berserk?,Kentaro Miura.,Kentaro Miura|Miura,test\n"
    )
    frame = load_qa(path)
    assert list(frame.columns) == QA_COLUMNS
    assert frame.loc[0, "facts"] == ["Kentaro Miura", "Miura"] and frame.loc[0, "split"] == "test"


def test_a_file_without_the_answer_column_names_the_file_and_the_column(tmp_path):
    path = write(tmp_path, "question,facts\nWho wrote Berserk?,Kentaro Miura\n")
    with pytest.raises(QADataError, match=r"qa\.csv: no column 'answer'.*answer_column"):
        load_qa(path)


def test_an_empty_question_names_its_line(tmp_path):
    path = write(tmp_path, "question,answer,facts\n  ,Kentaro Miura.,Kentaro Miura\n")
    with pytest.raises(QADataError, match="line 2: the question is empty"):
        load_qa(path)


def test_an_over_long_question_names_its_line_and_the_limit(tmp_path):
    path = write(tmp_path, f"question,answer,facts\n{'a' * 50},Kentaro Miura.,Kentaro Miura\n")
    with pytest.raises(QADataError, match="line 2: the question is 50 characters, over the limit of 40"):
        load_qa(path, max_question_chars=40)


def test_a_file_that_is_not_utf8_says_so(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_bytes("question,answer,facts\nCafé?,Oui.,Oui\n".encode("latin-1"))
    with pytest.raises(QADataError, match="not UTF-8"):
        load_qa(path)


def test_a_row_without_facts_says_what_to_write(tmp_path):
    path = write(tmp_path, "question,answer,facts\nWho wrote Berserk?,Kentaro Miura.,\n")
    with pytest.raises(QADataError, match=r"line 2: no facts\. List the facts"):
        load_qa(path)
