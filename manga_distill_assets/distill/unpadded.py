"""A BERT cross-encoder's forward on its real tokens only, for the graph that scores a query's candidates.

A reranker scores one query's candidates as one batch, padded to the longest pair, and a padded batch spends
every token-wise operation on the padding too: the projections, the feed-forward, GELU, the layer norms and
the int8 graph's quantisation of each matmul's input (whose per-batch scale the padding's activations then
help set). On the test queries of the packaged relevance file 23% of the token positions in a 20-candidate
batch are padding, on the BANKING77 file 32%. This forward gathers the real tokens once, runs every
token-wise operation on them, and lays them out as the padded batch only for the attention products, where
the mask already ignores the padding. Its last layer computes each row's first token alone: the pooler reads
nothing else, so the other tokens' last attention rows, feed-forward and layer norms were wasted work. The
function is the same: its scores differ from the padded model's by float rounding.

One thread, 20 candidates, int8 graphs (docs/reranker.md): untrained students on 100 generated queries, 31.5
ms against the padded graph's 41.3 at the default 4 × 384 and 15.0 against 19.1 at the narrow preset's
4 × 192 (`benchmarks/reranker.py --latency-only`); the narrow preset's trained students, 11.3-12.7 ms against
13.9-15.1 on the packaged test queries and 9.7-10.0 against 12.8-13.1 on the BANKING77 file's.
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
        first_tokens = slot.view(rows, length)[:, 0]
        layers = bert.encoder.layer
        for depth, layer in enumerate(layers, start=1):
            last = depth == len(layers)
            attention = layer.attention.self
            heads = attention.num_attention_heads
            key, value = (
                _by_head(states[0][slot], rows, heads)
                for states in (attention.key(hidden), attention.value(hidden))
            )
            if last:
                # The pooler reads each row's first token alone, so the last layer computes nothing else.
                hidden = hidden[0][first_tokens][None]
                query = _by_head(attention.query(hidden)[0], rows, heads)
            else:
                query = _by_head(attention.query(hidden)[0][slot], rows, heads)
            weights = torch.softmax(query @ key.transpose(-1, -2) * attention.scaling + bias, dim=-1)
            context = (weights @ value).transpose(1, 2).flatten(2).flatten(0, 1)
            context = context[None] if last else context[real][None]
            hidden = layer.attention.output(context, hidden)
            hidden = layer.output(layer.intermediate(hidden), hidden)
        return self.model.classifier(self.model.dropout(bert.pooler(hidden[0][:, None, :])))


def _by_head(states: Tensor, rows: int, heads: int) -> Tensor:
    """[rows · positions, heads · size] → [rows, heads, positions, size]."""
    return states.view(rows, -1, heads, states.shape[-1] // heads).transpose(1, 2)
