import pytest
import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from manga_distill_assets.distill.width_pruning import activation_importance, prune_width
from tests.distill.tiny import TINY_TEXTS, tiny_teacher, tiny_tokenizer

HIDDEN, HEADS, UNITS = 32, 4, 64  # tiny_teacher's shape: heads of 8 channels, a 2x feed-forward
HEAD_SIZE = HIDDEN // HEADS


@pytest.fixture
def tokenizer(tmp_path):
    return tiny_tokenizer(tmp_path)


@pytest.fixture
def model():
    return tiny_teacher(num_labels=1, layers=2)


def batches(tokenizer, texts=TINY_TEXTS, padding=True):
    return [tokenizer(list(texts[:15]), list(texts[15:]), padding=padding, return_tensors="pt")]


def scores(model, tokenizer):
    with torch.inference_mode():
        return model(**batches(tokenizer)[0]).logits


def test_pruning_to_the_full_width_leaves_the_scores_unchanged(model, tokenizer):
    pruned = prune_width(model, activation_importance(model, batches(tokenizer)), HIDDEN, UNITS)
    torch.testing.assert_close(scores(pruned, tokenizer), scores(model, tokenizer))


def test_a_feed_forward_unit_that_never_fires_is_the_one_pruned_and_the_scores_do_not_move(model, tokenizer):
    for index, unit in ((0, 5), (1, 40)):  # zero weights and bias: GELU(0) = 0 on every token
        layer = model.bert.encoder.layer[index]
        with torch.no_grad():
            layer.intermediate.dense.weight[unit] = 0.0
            layer.intermediate.dense.bias[unit] = 0.0
    pruned = prune_width(model, activation_importance(model, batches(tokenizer)), HIDDEN, UNITS - 1)
    assert pruned.config.intermediate_size == UNITS - 1
    torch.testing.assert_close(scores(pruned, tokenizer), scores(model, tokenizer))
    kept = [unit for unit in range(UNITS) if unit != 40]
    torch.testing.assert_close(
        pruned.bert.encoder.layer[1].output.dense.weight,
        model.bert.encoder.layer[1].output.dense.weight[:, kept],
    )


def test_silent_channels_and_a_silent_head_are_the_ones_pruned(model, tokenizer):
    silent_channels = [1, 6, 11, 14, 19, 22, 27, 30]  # nothing writes them, every layer norm zeroes them
    silent_head = 2  # its values are zero, so is its context
    bert = model.bert
    with torch.no_grad():
        embeddings = bert.embeddings
        for table in (
            embeddings.word_embeddings,
            embeddings.position_embeddings,
            embeddings.token_type_embeddings,
        ):
            table.weight[:, silent_channels] = 0.0
        for norm in [m for name, m in bert.named_modules() if name.endswith("LayerNorm")]:
            norm.weight[silent_channels] = 0.0
            norm.bias[silent_channels] = 0.0
        value = bert.encoder.layer[0].attention.self.value
        value.weight[silent_head * HEAD_SIZE : (silent_head + 1) * HEAD_SIZE] = 0.0
        value.bias[silent_head * HEAD_SIZE : (silent_head + 1) * HEAD_SIZE] = 0.0
    importance = activation_importance(model, batches(tokenizer))
    pruned = prune_width(model, importance, HIDDEN - len(silent_channels), UNITS)

    kept = [channel for channel in range(HIDDEN) if channel not in silent_channels]
    assert (pruned.config.hidden_size, pruned.config.num_attention_heads) == (24, 3)
    torch.testing.assert_close(
        pruned.bert.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight[:, kept]
    )
    head_rows = [row for head in (0, 1, 3) for row in range(head * HEAD_SIZE, (head + 1) * HEAD_SIZE)]
    torch.testing.assert_close(
        pruned.bert.encoder.layer[0].attention.self.query.weight,
        bert.encoder.layer[0].attention.self.query.weight[head_rows][:, kept],
    )
    torch.testing.assert_close(pruned.classifier.weight, model.classifier.weight[:, kept])


def test_padding_does_not_count_towards_importance(model, tokenizer):
    text = [TINY_TEXTS[0]]
    short = tokenizer(text, padding=True, return_tensors="pt")
    padded = tokenizer(text, padding="max_length", max_length=24, return_tensors="pt")
    assert padded["attention_mask"].sum() < padded["attention_mask"].numel()
    first, second = activation_importance(model, [short]), activation_importance(model, [padded])
    torch.testing.assert_close(first.channels, second.channels)
    torch.testing.assert_close(first.units[1], second.units[1])


def test_a_width_that_is_not_whole_heads_is_refused_naming_the_head_size(model, tokenizer):
    importance = activation_importance(model, batches(tokenizer))
    with pytest.raises(ValueError, match="multiple of 8"):
        prune_width(model, importance, 20, UNITS)


def test_a_model_without_bert_layout_is_refused_by_name():
    config = DistilBertConfig(vocab_size=50, dim=32, n_layers=1, n_heads=4, hidden_dim=64, num_labels=1)
    with pytest.raises(ValueError, match="DistilBertForSequenceClassification"):
        activation_importance(DistilBertForSequenceClassification(config), [])


def test_importance_needs_a_calibration_batch(model):
    with pytest.raises(ValueError, match="calibration batch"):
        activation_importance(model, [])
