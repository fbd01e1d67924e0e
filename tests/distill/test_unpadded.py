"""A BERT cross-encoder's forward on its real tokens only: the same scores as the padded model, in PyTorch and
exported."""

import numpy as np
import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from manga_distill_assets.distill.onnx_export import export_onnx, open_session
from manga_distill_assets.distill.smoothing import input_ranges, smoothed
from manga_distill_assets.distill.unpadded import UnpaddedBertScorer, unpadded_forward_fits
from tests.distill.tiny import TINY_TEXTS, TINY_VOCAB, tiny_teacher, tiny_tokenizer

QUERY = "where is my order"
# Passages from 1 to 9 words, so most rows of the batch carry padding.
PASSAGES = ["refund", *TINY_TEXTS[10:14], "the delivery date changed why " + TINY_TEXTS[20]]


def pair_batch(tokenizer, passages=PASSAGES):
    return tokenizer([QUERY] * len(passages), passages, padding=True, return_tensors="pt")


def padded_logits(model, batch) -> np.ndarray:
    with torch.inference_mode():
        return model(**batch).logits.numpy()


def test_the_unpadded_forward_gives_the_padded_models_scores(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    model = tiny_teacher(num_labels=1, layers=2)
    batch = pair_batch(tokenizer)
    assert (batch["attention_mask"] == 0).any()

    with torch.inference_mode():
        unpadded = UnpaddedBertScorer(model)(**batch).numpy()

    np.testing.assert_allclose(unpadded, padded_logits(model, batch), atol=1e-5)


def test_a_smoothed_models_unpadded_forward_is_still_the_original_function(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    model = tiny_teacher(num_labels=1, layers=2)
    batch = pair_batch(tokenizer)
    ranges = input_ranges(model, [batch])

    with torch.inference_mode():
        unpadded = UnpaddedBertScorer(smoothed(model, ranges, alpha=0.8))(**batch).numpy()

    np.testing.assert_allclose(unpadded, padded_logits(model, batch), atol=1e-4)


def test_the_unpadded_graph_scores_padded_and_unpadded_batches_as_the_model_does(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    model = tiny_teacher(num_labels=1, layers=2)
    session = open_session(export_onnx(model, tokenizer, tmp_path / "model.onnx", unpadded=True))

    for batch in (pair_batch(tokenizer), pair_batch(tokenizer, ["refund", "return"])):
        feed = {item.name: batch[item.name].numpy() for item in session.get_inputs()}
        np.testing.assert_allclose(session.run(None, feed)[0], padded_logits(model, batch), atol=1e-4)


def test_only_a_bert_classifier_fed_padding_on_the_right_takes_the_unpadded_forward(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    bert = tiny_teacher(num_labels=1, layers=2)
    distilbert = DistilBertForSequenceClassification(
        DistilBertConfig(
            vocab_size=len(TINY_VOCAB), dim=32, n_layers=1, n_heads=4, hidden_dim=64, num_labels=1
        )
    )
    left_padding = tiny_tokenizer(tmp_path / "left")
    left_padding.padding_side = "left"

    assert unpadded_forward_fits(bert, tokenizer)
    assert not unpadded_forward_fits(distilbert, tokenizer)
    assert not unpadded_forward_fits(bert, left_padding)
