"""A BERT cross-encoder's forward on its real tokens only, for the graph that scores a query's candidates.

A reranker scores one query's candidates as one batch, padded to the longest pair, and a padded batch spends
every token-wise operation on the padding too: the projections, the feed-forward, GELU, the layer norms and
the int8 graph's quantisation of each matmul's input (whose per-batch scale the padding's activations then
help set). On the test queries of the packaged relevance file 23% of the token positions in a 20-candidate
batch are padding, on the BANKING77 file 32%. This forward gathers the real tokens once, runs every
token-wise operation on them, and lays them out as the padded batch only for the attention products, where
the mask already ignores the padding. It is the same function: its scores differ from the padded model's by
float rounding. The attention products and the softmax still run on the padded layout, so the saving is
smaller than the padding's share: one thread, 20 candidates, the int8 graphs of untrained students on 100
generated queries (22% padding), 37.1 ms against 37.8 at the default 4 × 384 and 17.2 against 17.3 at the
narrow preset's 4 × 192 (`benchmarks/reranker.py --latency-only`); on the narrow preset's trained students,
14.0-14.2 ms against 14.9 on the packaged test queries and 11.4-11.7 against 12.6-13.5 on the BANKING77
file's (docs/reranker.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers import BertForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase


def unpadded_forward_fits(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether `UnpaddedBertScorer` computes `model`'s function: a BERT classifier with absolute positions,
    fed by a tokenizer that pads on the right (so each row's first token, which the pooler reads, is real)."""
    return (
        isinstance(model, BertForSequenceClassification)
        and getattr(model.config, "position_embedding_type", "absolute") == "absolute"
        and not model.config.is_decoder
        and tokenizer.padding_side == "right"
    )


class UnpaddedBertScorer(nn.Module):
    """`model`'s logits from (input_ids, attention_mask[, token_type_ids]), computed on the real tokens.

    The encoder's modules are called as they are, so a model whose linear layers were swapped for smoothed
    ones (`distill.smoothing`) exports with them. The real tokens travel as one [1, tokens, hidden] row, so
    that each linear layer exports as the MatMul + Add that the int8 tools look for."""

    def __init__(self, model: BertForSequenceClassification) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        bert = self.model.bert
        rows, length = input_ids.shape
        mask = attention_mask.reshape(-1)
        real = mask.nonzero().squeeze(1)
        # Where each padded position's vector lives among the real tokens; padding borrows token 0, whose
        # keys the mask ignores and whose outputs are dropped.
        slot = torch.where(mask > 0, mask.cumsum(0) - 1, 0)
        positions = torch.arange(length, device=input_ids.device).expand(rows, length).reshape(-1)
        types = torch.zeros_like(mask) if token_type_ids is None else token_type_ids.reshape(-1)
        hidden = bert.embeddings(
            input_ids=input_ids.reshape(-1)[real][None],
            token_type_ids=types[real][None],
            position_ids=positions[real][None],
        )
        bias = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        for layer in bert.encoder.layer:
            attention = layer.attention.self
            heads, size = attention.num_attention_heads, attention.attention_head_size
            query, key, value = (
                projection(hidden)[0][slot].view(rows, length, heads, size).transpose(1, 2)
                for projection in (attention.query, attention.key, attention.value)
            )
            weights = torch.softmax(query @ key.transpose(-1, -2) * attention.scaling + bias, dim=-1)
            context = (weights @ value).transpose(1, 2).reshape(rows * length, heads * size)[real][None]
            hidden = layer.attention.output(context, hidden)
            hidden = layer.output(layer.intermediate(hidden), hidden)
        first_tokens = hidden[0][slot.view(rows, length)[:, 0]][:, None, :]
        return self.model.classifier(self.model.dropout(bert.pooler(first_tokens)))
