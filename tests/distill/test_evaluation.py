from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import PreTrainedTokenizerFast

from manga_distill_assets.distill.evaluation import (
    classification_report,
    confusion_matrix_png,
    predict_logits,
)
from tests.distill.tiny import TINY_TEXTS, tiny_teacher, tiny_tokenizer

MIXED_LENGTH_TEXTS = [
    "has my manga order shipped yet",
    "refund",
    "can you recommend a manga like one piece",
    "where is my order",
    "late",
    "i want to return volume 2",
    "suggest a short horror manga",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerFast:
    return tiny_tokenizer(tmp_path_factory.mktemp("evaluation"))


def _one_at_a_time(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, texts: list[str], **kwargs
) -> np.ndarray:
    with torch.no_grad():
        return np.stack(
            [model(**tokenizer(text, return_tensors="pt", **kwargs)).logits[0].numpy() for text in texts]
        )


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_predict_logits_matches_unpadded_calls_in_the_given_order(tokenizer, batch_size: int) -> None:
    model = tiny_teacher()
    logits = predict_logits(model, tokenizer, MIXED_LENGTH_TEXTS, batch_size=batch_size)
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, _one_at_a_time(model, tokenizer, MIXED_LENGTH_TEXTS), atol=1e-5)


def test_predict_logits_runs_texts_shortest_first_so_batches_pad_only_to_their_own_longest(tokenizer) -> None:
    model = tiny_teacher()
    widths: list[int] = []
    model.register_forward_pre_hook(
        lambda _, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    token_counts = sorted(len(tokenizer(text)["input_ids"]) for text in MIXED_LENGTH_TEXTS)
    predict_logits(model, tokenizer, MIXED_LENGTH_TEXTS, batch_size=2)
    assert widths == [max(token_counts[start : start + 2]) for start in range(0, len(token_counts), 2)]


def test_predict_logits_truncates_to_max_length(tokenizer) -> None:
    model = tiny_teacher()
    long_texts = [" ".join(TINY_TEXTS), "where is my order"]
    logits = predict_logits(model, tokenizer, long_texts, max_length=8)
    expected = _one_at_a_time(model, tokenizer, long_texts, truncation=True, max_length=8)
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_predict_logits_restores_training_mode(tokenizer) -> None:
    model = tiny_teacher().train()
    first = predict_logits(model, tokenizer, MIXED_LENGTH_TEXTS)
    second = predict_logits(model, tokenizer, MIXED_LENGTH_TEXTS)
    np.testing.assert_array_equal(first, second)
    assert model.training


def test_predict_logits_of_no_texts_is_an_empty_table(tokenizer) -> None:
    assert predict_logits(tiny_teacher(), tokenizer, []).shape == (0, 3)


def test_report_matches_a_hand_computed_fixture() -> None:
    # confusion (rows true): x [2, 2, 0], y [1, 1, 0], z [0, 1, 0]
    report = classification_report([0, 0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 0, 1], ["x", "y", "z"])
    assert report["confusion"] == [[2, 2, 0], [1, 1, 0], [0, 1, 0]]
    assert report["accuracy"] == pytest.approx(3 / 7)
    assert report["per_class"]["x"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1 / 2, "f1": 4 / 7, "support": 4}
    )
    assert report["per_class"]["y"] == pytest.approx(
        {"precision": 1 / 4, "recall": 1 / 2, "f1": 1 / 3, "support": 2}
    )
    assert report["macro_f1"] == pytest.approx((4 / 7 + 1 / 3 + 0) / 3)


def test_a_class_never_predicted_scores_zero_not_nan() -> None:
    report = classification_report([0, 0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 0, 1], ["x", "y", "z"])
    assert report["per_class"]["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_a_class_absent_from_truth_and_predictions_is_left_out_of_macro_f1() -> None:
    report = classification_report([0, 1, 0], [0, 1, 1], ["p", "q", "r"])
    assert report["per_class"]["r"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_confusable_pairs_add_both_directions_and_rank_by_count() -> None:
    report = classification_report([0, 0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 0, 1], ["x", "y", "z"])
    assert report["confusable_pairs"] == [{"a": "x", "b": "y", "count": 3}, {"a": "y", "b": "z", "count": 1}]


def test_confusable_pairs_keep_only_the_top_ones_ties_in_label_order() -> None:
    report = classification_report([0, 1, 2, 0], [1, 2, 0, 0], ["a", "b", "c"], top_pairs=2)
    assert report["confusable_pairs"] == [{"a": "a", "b": "b", "count": 1}, {"a": "a", "b": "c", "count": 1}]


def test_a_perfect_report_has_no_confusable_pairs() -> None:
    report = classification_report([0, 1, 2], [0, 1, 2], ["a", "b", "c"])
    assert (report["accuracy"], report["macro_f1"], report["confusable_pairs"]) == (1.0, 1.0, [])


def test_report_values_are_plain_python_numbers() -> None:
    report = classification_report([0, 1], [0, 0], ["a", "b"])
    assert type(report["accuracy"]) is float
    assert type(report["per_class"]["a"]["support"]) is int
    assert type(report["confusion"][0][0]) is int


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([0, 1], [0], "equally long"),
        ([], [], "empty set of predictions"),
        ([0, 3], [0, 1], r"y_true holds class ids \[3\], but the 3 labels have ids 0 to 2"),
        ([0, 1], [0, -1], r"y_pred holds class ids \[-1\]"),
    ],
)
def test_report_rejects_bad_inputs(y_true: list[int], y_pred: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classification_report(y_true, y_pred, ["a", "b", "c"])


def test_confusion_matrix_png_writes_a_png(tmp_path: Path) -> None:
    path = confusion_matrix_png(
        [[5, 1], [0, 3]], ["order_status", "return_request"], tmp_path / "cm.png", "student"
    )
    assert path == tmp_path / "cm.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_matrix_png_needs_one_row_per_label(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"confusion matrix is \(2, 2\) but there are 3 labels"):
        confusion_matrix_png([[1, 0], [0, 1]], ["a", "b", "c"], tmp_path / "cm.png", "teacher")
