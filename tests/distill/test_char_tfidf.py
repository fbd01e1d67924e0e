"""The classical member: numpy re-scoring equals scikit-learn, and it survives a save without pickles."""

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from manga_distill_assets.distill.char_tfidf import (
    SETTINGS_FILE,
    WEIGHTS_FILE,
    CharTfidfClassifier,
    CharTfidfSettings,
    char_wb_ngrams,
    fit_char_tfidf,
)

TEXTS = [
    "is one piece vol 105 in stock",
    "do you have chainsaw man box set",
    "where is my order",
    "my package never arrived",
    "refund my damaged copy please",
    "I want my money back",
    "track order 12345",
    "is frieren volume 10 available",
]
LABELS = [0, 0, 1, 1, 2, 2, 1, 0]
NAMES = ["stock", "shipping", "refund"]
UNSEEN = ["is berserk   vol 3 IN STOCK?", "refund for order 999", "zzz", "a"]
SETTINGS = CharTfidfSettings(min_n=2, max_n=4, min_df=1)


@pytest.fixture(scope="module")
def fitted():
    vectorizer, classifier = fit_char_tfidf(TEXTS, LABELS, NAMES, SETTINGS)
    return vectorizer, classifier, CharTfidfClassifier.from_sklearn(vectorizer, classifier, NAMES, SETTINGS)


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def test_ngrams_are_scikit_learns_char_wb_analyzer():
    analyzer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=False).build_analyzer()
    for text in ["one  piece\tvol 1", "a", "hi there", ""]:
        assert char_wb_ngrams(text, 2, 5) == analyzer(text)


def test_numpy_probabilities_equal_predict_proba(fitted):
    vectorizer, classifier, member = fitted
    expected = classifier.predict_proba(vectorizer.transform(UNSEEN))
    assert softmax(member.logits(UNSEEN).astype(np.float64)) == pytest.approx(expected, abs=1e-5)


def test_a_saved_member_loads_from_json_and_safetensors_alone(fitted, tmp_path):
    _, _, member = fitted
    folder = member.save(tmp_path / "member")
    assert sorted(path.name for path in folder.iterdir()) == sorted([SETTINGS_FILE, WEIGHTS_FILE])
    loaded = CharTfidfClassifier.load(folder)
    assert loaded.labels == NAMES and loaded.settings == SETTINGS
    np.testing.assert_array_equal(loaded.logits(UNSEEN), member.logits(UNSEEN))


def test_a_binary_classifier_scores_like_predict_proba():
    vectorizer, classifier = fit_char_tfidf(TEXTS[:4], [0, 0, 1, 1], NAMES[:2], SETTINGS)
    member = CharTfidfClassifier.from_sklearn(vectorizer, classifier, NAMES[:2], SETTINGS)
    expected = classifier.predict_proba(vectorizer.transform(UNSEEN))
    assert softmax(member.logits(UNSEEN).astype(np.float64)) == pytest.approx(expected, abs=1e-5)


def test_a_class_without_train_examples_is_named():
    with pytest.raises(ValueError, match="refund"):
        fit_char_tfidf(TEXTS[:4], [0, 0, 1, 1], NAMES, SETTINGS)


def test_a_folder_that_is_not_a_member_is_refused_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=SETTINGS_FILE):
        CharTfidfClassifier.load(tmp_path)
