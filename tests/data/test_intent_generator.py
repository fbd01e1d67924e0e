"""The packaged labelled intent set: in sync with its generator, balanced, split cleanly, hard enough."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from manga_distill_assets.data.catalog import LABELLED_AS_OF, TITLES
from manga_distill_assets.data.intent_generator import (
    INTENTS_CSV,
    generate_intent_rows,
    generate_intents,
    main,
)
from manga_distill_assets.data.labeled import load_labeled


@pytest.fixture(scope="module")
def intents() -> pd.DataFrame:
    return pd.read_csv(INTENTS_CSV, dtype=str, keep_default_na=False)


def _keys(texts: pd.Series) -> pd.Series:
    return texts.str.casefold().str.split().str.join(" ")


def test_committed_csv_is_what_the_generator_writes(intents):
    assert generate_intents().equals(intents)


def test_generation_is_deterministic_and_seeded():
    assert generate_intents(seed=3, total=400).equals(generate_intents(seed=3, total=400))
    assert not generate_intents(seed=3, total=400).equals(generate_intents(seed=4, total=400))


def test_module_entry_point_writes_the_csv(tmp_path):
    out = tmp_path / "intents.csv"
    main(["--seed", "5", "--total", "300", "--out", str(out)])
    assert pd.read_csv(out, dtype=str, keep_default_na=False).equals(generate_intents(seed=5, total=300))


def test_about_three_thousand_rows_over_ten_intents(intents):
    assert intents.columns.tolist() == ["text", "label", "split"]
    assert len(intents) == 3000
    assert intents["label"].nunique() == 10


def test_intents_are_roughly_but_not_perfectly_balanced(intents):
    shares = intents["label"].value_counts(normalize=True)
    assert shares.between(0.07, 0.13).all()
    assert shares.max() - shares.min() > 0.02


def test_split_is_80_10_10_within_each_label(intents):
    for label, group in intents.groupby("label"):
        shares = group["split"].value_counts(normalize=True)
        assert abs(shares["train"] - 0.8) < 0.02, label
        assert abs(shares["validation"] - 0.1) < 0.02, label
        assert abs(shares["test"] - 0.1) < 0.02, label


def test_no_text_appears_twice_even_ignoring_case(intents):
    assert not _keys(intents["text"]).duplicated().any()


def test_the_loader_reads_the_packaged_file_unchanged(intents):
    assert load_labeled(INTENTS_CSV).equals(intents)


def test_texts_have_three_to_forty_words(intents):
    words = intents["text"].str.split().str.len()
    assert words.min() >= 3 and words.max() <= 40
    assert words.std() > 3


def test_about_one_row_in_six_is_hard():
    kinds = generate_intent_rows()["kind"].value_counts(normalize=True)
    assert 0.14 <= 1 - kinds["regular"] <= 0.18


def test_texts_carry_customer_noise(intents):
    texts = intents["text"]
    assert (texts == texts.str.lower()).mean() > 0.3
    assert ((texts == texts.str.upper()) & texts.str.contains("[A-Z]")).sum() > 30
    assert (~texts.str.contains(r"[?.!]$")).mean() > 0.25
    assert texts.str.contains(r"\b(?:sumimasen|arigatou|onegaishimasu|yoroshiku)\b", case=False).sum() > 10
    assert texts.str.contains(r"[\U0001F300-\U0001FAFF]").sum() > 10


def test_prices_in_dollars_and_yen_come_from_the_catalogue(intents):
    assert intents["text"].str.contains(r"\$\d+\.\d\d").any()
    assert intents["text"].str.contains(r"¥[\d,]+").any()


def test_only_obviously_fake_personal_data(intents):
    text = " ".join(intents["text"])
    emails = re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", text)
    assert emails and all(email.lower().endswith("@example.com") for email in emails)
    orders = re.findall(r"\bma-\w+", text, flags=re.IGNORECASE)
    assert orders and all(re.fullmatch(r"MA-\d{8}", order, flags=re.IGNORECASE) for order in orders)
    assert not re.search(r"\d{3}[- ]\d{3,4}[- ]\d{4}", text)


def test_titles_newer_than_the_labelled_set_are_absent(intents):
    newer = [title for title in TITLES if title.trending_from > LABELLED_AS_OF]
    text = " ".join(intents["text"]).casefold()
    assert newer
    assert not [title.name for title in newer if any(name.casefold() in text for name in title.names())]


def _naive_bayes_accuracy(train: pd.DataFrame, test: pd.DataFrame) -> float:
    """Multinomial naive Bayes on word counts, add-one smoothing: the cheapest honest baseline."""
    tokens = lambda text: re.findall(r"[a-z0-9']+", text.lower())  # noqa: E731
    vocabulary = {
        word: i for i, word in enumerate(sorted({w for text in train["text"] for w in tokens(text)}))
    }
    labels = sorted(train["label"].unique())

    def counts(texts: pd.Series) -> np.ndarray:
        matrix = np.zeros((len(texts), len(vocabulary)))
        for row, text in enumerate(texts):
            for word in tokens(text):
                if word in vocabulary:
                    matrix[row, vocabulary[word]] += 1
        return matrix

    train_counts = counts(train["text"])
    per_label = np.stack([train_counts[(train["label"] == label).to_numpy()].sum(0) for label in labels]) + 1
    log_likelihood = np.log(per_label / per_label.sum(1, keepdims=True))
    log_prior = np.log(train["label"].value_counts(normalize=True)[labels].to_numpy())
    predicted = (counts(test["text"]) @ log_likelihood.T + log_prior).argmax(1)
    return float((np.array(labels)[predicted] == test["label"].to_numpy()).mean())


def test_bag_of_words_baseline_is_good_but_far_from_perfect(intents):
    accuracy = _naive_bayes_accuracy(
        intents[intents["split"] == "train"], intents[intents["split"] == "test"]
    )
    assert 0.75 <= accuracy <= 0.92
