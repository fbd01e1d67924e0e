"""The classical ensemble member: TF-IDF over character n-grams inside word boundaries, then multinomial
logistic regression, fitted with scikit-learn and served by numpy.

It errs differently from a transformer (spelling and sub-word overlap instead of meaning), which is what
makes it worth a vote. It is stored without pickles: the vocabulary and settings as JSON, the idf vector and
the weights as safetensors, and `CharTfidfClassifier` re-scores texts with numpy alone, reproducing
scikit-learn's `TfidfVectorizer(analyzer="char_wb")` and `predict_proba` (tests hold it to them).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

SETTINGS_FILE = "char_tfidf.json"
WEIGHTS_FILE = "char_tfidf.safetensors"
_WHITE_SPACES = re.compile(r"\s\s+")


@dataclass(frozen=True)
class CharTfidfSettings:
    """min_df drops n-grams seen in fewer train texts (typos, names), which keeps the weights small."""

    min_n: int = 2
    max_n: int = 5
    min_df: int = 2
    sublinear_tf: bool = True
    regularisation_c: float = 10.0
    max_iterations: int = 2000


def fit_char_tfidf(
    texts: Sequence[str], labels: Sequence[int], label_names: Sequence[str], settings: CharTfidfSettings
) -> tuple[TfidfVectorizer, LogisticRegression]:
    """Fit the vectorizer and the classifier on the train texts; `labels` index `label_names`."""
    present = set(labels)
    if present != set(range(len(label_names))):
        missing = [label_names[i] for i in range(len(label_names)) if i not in present]
        raise ValueError(
            f"The train texts have no example of {missing}; every class needs at least one for the "
            "classical member. Add train rows for them."
        )
    vectorizer = TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(settings.min_n, settings.max_n),
        min_df=settings.min_df,
        sublinear_tf=settings.sublinear_tf,
        lowercase=True,
    )
    features = vectorizer.fit_transform(list(texts))
    classifier = LogisticRegression(C=settings.regularisation_c, max_iter=settings.max_iterations)
    classifier.fit(features, np.asarray(labels))
    return vectorizer, classifier


class CharTfidfClassifier:
    """The fitted member as plain arrays: `logits(texts)` [N, C], whose softmax is scikit-learn's
    `predict_proba`."""

    def __init__(
        self,
        vocabulary: dict[str, int],
        idf: np.ndarray,
        weights: np.ndarray,
        bias: np.ndarray,
        labels: list[str],
        settings: CharTfidfSettings,
    ) -> None:
        if weights.shape != (len(vocabulary), len(labels)) or idf.shape != (len(vocabulary),):
            raise ValueError(
                f"The classical member's arrays disagree: {len(vocabulary)} n-grams, {len(labels)} labels, "
                f"idf {idf.shape}, weights {weights.shape}; export it again with `save`."
            )
        self.vocabulary = vocabulary
        self.idf = idf
        self.weights = weights
        self.bias = bias
        self.labels = labels
        self.settings = settings

    @classmethod
    def from_sklearn(
        cls,
        vectorizer: TfidfVectorizer,
        classifier: LogisticRegression,
        labels: Sequence[str],
        settings: CharTfidfSettings,
    ) -> CharTfidfClassifier:
        coef, intercept = classifier.coef_, classifier.intercept_
        if coef.shape[0] == 1:  # binary: predict_proba is sigmoid(z), which is softmax([0, z])
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
        return cls(
            vocabulary={ngram: int(index) for ngram, index in vectorizer.vocabulary_.items()},
            idf=vectorizer.idf_.astype(np.float64),
            weights=np.ascontiguousarray(coef.T, dtype=np.float64),
            bias=intercept.astype(np.float64),
            labels=list(labels),
            settings=settings,
        )

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        ngrams = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        (folder / SETTINGS_FILE).write_text(
            json.dumps(
                {"labels": self.labels, "settings": self.settings.__dict__, "ngrams": ngrams},
                ensure_ascii=False,
            )
        )
        save_file({"idf": self.idf, "weights": self.weights, "bias": self.bias}, str(folder / WEIGHTS_FILE))
        return folder

    @classmethod
    def load(cls, folder: Path) -> CharTfidfClassifier:
        folder = Path(folder)
        for name in (SETTINGS_FILE, WEIGHTS_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    f"{folder} has no {name}: it is not a classical ensemble member. Re-materialise "
                    "ensemble_members, or register a folder written by CharTfidfClassifier.save."
                )
        stored = json.loads((folder / SETTINGS_FILE).read_text())
        arrays = load_file(str(folder / WEIGHTS_FILE))
        return cls(
            vocabulary={ngram: index for index, ngram in enumerate(stored["ngrams"])},
            idf=arrays["idf"],
            weights=arrays["weights"],
            bias=arrays["bias"],
            labels=list(stored["labels"]),
            settings=CharTfidfSettings(**stored["settings"]),
        )

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        scores = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        for row, text in enumerate(texts):
            indices, values = self._features(text)
            scores[row] = values @ self.weights[indices] + self.bias
        return scores.astype(np.float32)

    def _features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The text's l2-normalised tf-idf vector as (n-gram indices, values)."""
        counts = Counter(
            self.vocabulary[ngram]
            for ngram in char_wb_ngrams(text.lower(), self.settings.min_n, self.settings.max_n)
            if ngram in self.vocabulary
        )
        indices = np.fromiter(counts, dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        if self.settings.sublinear_tf:
            tf = 1.0 + np.log(tf)
        values = tf * self.idf[indices]
        norm = np.sqrt((values**2).sum())
        return indices, values / norm if norm > 0 else values


def char_wb_ngrams(text: str, min_n: int, max_n: int) -> list[str]:
    """Every n-gram (min_n ≤ n ≤ max_n) of each space-padded word; a word shorter than n counts once."""
    ngrams = []
    for word in _WHITE_SPACES.sub(" ", text).split():
        padded = f" {word} "
        for n in range(min_n, max_n + 1):
            ngrams.extend(padded[start : start + n] for start in range(max(1, len(padded) - n + 1)))
            if len(padded) <= n:
                break
    return ngrams
