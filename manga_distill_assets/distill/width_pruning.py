"""Structured width pruning of a BERT-layout encoder (Minitron: Muralidharan et al., 2024).

A narrower student does a fraction of the multiply-adds: 4 layers at 192 channels, six heads and 768
feed-forward units do a quarter of the work of the same depth at 384, which for the reranker's int8 graph at
20 candidates a query was about 18 ms against 39 as padded graphs (docs/reranker.md). Built from a config it
starts knowing nothing; pruned, it keeps the channels, heads and feed-forward units that carry most of the
teacher's activation on real inputs, and layer matching recovers most of the rest.

Importance is measured on calibration batches as Minitron measures it, from activations alone (no
gradients): a residual channel by its mean |value| after every layer norm (all of them write the one
residual stream, so one set of channels is kept for the whole model), a head by the mean norm of its context
vectors, a feed-forward unit by its mean |activation|, each over real tokens, not padding. The kept layer
norms normalise over the kept channels only, which shifts their output; the training after pruning absorbs
that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from manga_distill_assets.distill.observed_pass import observe
from manga_distill_assets.distill.students import EAGER_ATTENTION


@dataclass(frozen=True)
class Importance:
    """Mean activation per residual channel, and per head and feed-forward unit of each layer."""

    channels: Tensor
    heads: tuple[Tensor, ...]
    units: tuple[Tensor, ...]


def activation_importance(model: PreTrainedModel, batches: Iterable[Mapping[str, Tensor]]) -> Importance:
    """`model`'s importances over `batches` (tokenised inputs with an attention mask)."""
    bert, config = _bert(model), model.config
    layers = bert.encoder.layer
    channels = torch.zeros(config.hidden_size)
    heads = [torch.zeros(config.num_attention_heads) for _ in layers]
    units = [torch.zeros(config.intermediate_size) for _ in layers]
    mask: dict[str, Tensor] = {}

    def remember_mask(batch: Mapping[str, Tensor]) -> None:
        mask["tokens"] = batch["attention_mask"]

    def token_mean(values: Tensor) -> Tensor:
        weights = mask["tokens"][..., None].to(values.dtype)
        return (values * weights).sum(dim=(0, 1)) / weights.sum()

    def norm_output(_module: nn.Module, _args: tuple, output: Tensor) -> None:
        channels.add_(token_mean(output.detach().abs().float()))

    def context_input(index: int):
        def record(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
            context = args[0].detach().float()
            per_head = context.reshape(*context.shape[:2], config.num_attention_heads, -1).norm(dim=-1)
            heads[index].add_(token_mean(per_head))

        return record

    def unit_input(index: int):
        def record(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
            units[index].add_(token_mean(args[0].detach().abs().float()))

        return record

    norms = [bert.embeddings.LayerNorm]
    norms += [norm for layer in layers for norm in (layer.attention.output.LayerNorm, layer.output.LayerNorm)]
    hooks = [norm.register_forward_hook(norm_output) for norm in norms]
    for index, layer in enumerate(layers):
        hooks.append(layer.attention.output.dense.register_forward_pre_hook(context_input(index)))
        hooks.append(layer.output.dense.register_forward_pre_hook(unit_input(index)))
    seen = observe(model, batches, hooks, before_each=remember_mask)
    if not seen:
        raise ValueError("Width pruning needs at least one calibration batch to measure importance on.")
    return Importance(channels / seen, tuple(h / seen for h in heads), tuple(u / seen for u in units))


def prune_width(
    model: PreTrainedModel, importance: Importance, hidden_size: int, intermediate_size: int
) -> PreTrainedModel:
    """A copy of `model` keeping its `hidden_size` most important residual channels, the heads that fill them
    at the model's head size (most important first), and its `intermediate_size` most important feed-forward
    units per layer; each kept in its original order. Widths at or above the model's keep all of it."""
    layers, config = len(_bert(model).encoder.layer), model.config
    head_size = config.hidden_size // config.num_attention_heads
    hidden_size, intermediate_size = (
        min(hidden_size, config.hidden_size),
        min(intermediate_size, config.intermediate_size),
    )
    if intermediate_size < 1 or hidden_size < head_size or hidden_size % head_size:
        raise ValueError(
            f"Cannot prune to {hidden_size} channels and {intermediate_size} feed-forward units: the width "
            f"must be a whole number of this model's {head_size}-wide attention heads (a multiple of "
            f"{head_size}) and at least one unit must stay."
        )
    kept = _top(importance.channels, hidden_size)
    state = model.state_dict()
    pruned = {key: _slice_shared(key, tensor, kept) for key, tensor in state.items()}
    for index in range(layers):
        heads = _top(importance.heads[index], hidden_size // head_size)
        head_rows = torch.cat([torch.arange(h * head_size, (h + 1) * head_size) for h in heads.tolist()])
        units = _top(importance.units[index], intermediate_size)
        prefix = f"bert.encoder.layer.{index}."
        for name in ("query", "key", "value"):
            projection = f"{prefix}attention.self.{name}."
            pruned[projection + "weight"] = state[projection + "weight"][head_rows][:, kept]
            pruned[projection + "bias"] = state[projection + "bias"][head_rows]
        output = f"{prefix}attention.output.dense."
        pruned[output + "weight"] = state[output + "weight"][kept][:, head_rows]
        pruned[output + "bias"] = state[output + "bias"][kept]
        up, down = f"{prefix}intermediate.dense.", f"{prefix}output.dense."
        pruned[up + "weight"] = state[up + "weight"][units][:, kept]
        pruned[up + "bias"] = state[up + "bias"][units]
        pruned[down + "weight"] = state[down + "weight"][kept][:, units]
        pruned[down + "bias"] = state[down + "bias"][kept]
    narrow = type(config).from_dict(
        config.to_dict()
        | {
            "hidden_size": hidden_size,
            "num_attention_heads": hidden_size // head_size,
            "intermediate_size": intermediate_size,
        }
    )
    student = type(model)._from_config(narrow, attn_implementation=EAGER_ATTENTION)
    student.load_state_dict(pruned)
    return student.eval()


def prunable(model: PreTrainedModel) -> bool:
    """Whether `model` has the BERT-layout weights (bert.embeddings, bert.encoder.layer.N) pruning reads."""
    bert = getattr(model, "bert", None)
    return bert is not None and hasattr(bert, "embeddings") and hasattr(bert, "encoder")


def _bert(model: PreTrainedModel) -> nn.Module:
    if not prunable(model):
        raise ValueError(
            f"Width pruning reads BERT-layout weights (bert.embeddings, bert.encoder.layer.N), which "
            f"{type(model).__name__} does not have; keep the teacher's width for this model."
        )
    return model.bert


def _top(scores: Tensor, count: int) -> Tensor:
    """Indices of the `count` largest scores, in ascending index order."""
    return scores.topk(count).indices.sort().values


def _slice_shared(key: str, tensor: Tensor, kept: Tensor) -> Tensor:
    """Weights outside the encoder layers' attention and feed-forward, cut to the kept residual channels:
    embedding tables by column, layer norms by entry, the pooler on both sides, the classifier by column."""
    if key.endswith("_embeddings.weight") or key == "classifier.weight":
        return tensor[:, kept]
    if "LayerNorm" in key or key == "bert.pooler.dense.bias":
        return tensor[kept]
    if key == "bert.pooler.dense.weight":
        return tensor[kept][:, kept]
    return tensor
