"""General passages: WikiText markup undone, whole sentences packed up to a word limit, repeats dropped."""

import pytest

from manga_distill_assets.data.general_corpus import clean_line, passages


def test_a_wikitext_heading_is_no_text():
    assert clean_line(" = = Description = = ") == ""


def test_wikitext_joins_and_unknown_words_are_undone():
    line = " It weighs 0 @.@ 7 kg , a well @-@ known <unk> lobster of 1 @,@ 000 . "
    assert clean_line(line) == "It weighs 0.7 kg , a well-known lobster of 1,000 ."


def test_sentences_are_packed_until_the_next_would_pass_the_limit():
    line = "One two three. Four five. Six seven eight nine."
    assert passages([line], max_words=5) == ["One two three. Four five.", "Six seven eight nine."]


def test_a_sentence_longer_than_the_limit_is_cut_into_pieces():
    assert passages(["a b c d e f g"], max_words=3) == ["a b c", "d e f", "g"]


def test_passages_never_span_two_paragraphs_and_repeats_go():
    lines = ["Alpha beta.", "", " = Heading = ", "Gamma delta.", "Alpha beta."]
    assert passages(lines, max_words=50) == ["Alpha beta.", "Gamma delta."]


def test_a_limit_below_one_word_is_refused():
    with pytest.raises(ValueError, match="max_words"):
        passages(["text"], max_words=0)
