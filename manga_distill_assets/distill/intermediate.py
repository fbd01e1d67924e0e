"""TinyBERT stage 1: the student imitates the teacher's embeddings, hidden states and attention maps.

Each `LayerMatch` adds one mean-squared-error term. Student states pass through a learnable projection into
the teacher's width first (TinyBERT's W_h), and those projections are part of the training result: save them
beside the student (`projections.state_dict()`), or a resumed stage 1 starts from scratch.

Differences from TinyBERT's reference code, on purpose:

- Attention is compared as probabilities (what transformers returns), not pre-softmax scores, and only over
  query/key pairs where both tokens are real, so padding never contributes.
- When the teacher has more heads, adjacent teacher heads are averaged in groups to the student's head count.
- The squared errors are summed in fp32 whatever precision autocast gave the states: in bf16, a sum over
  thousands of terms loses the small differences the student is being taught.

transformers returns attention probabilities after attention dropout, so a student trained with attention
dropout compares a noisy copy of its own maps; set `attention_probs_dropout_prob=0` for stage 1 to avoid it.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

import torch
from torch import Tensor, nn

from manga_distill_assets.distill.layer_match import MATCH_KINDS, LayerMatch, validate_layer_matches
from manga_distill_assets.distill.losses import at_least_fp32


class EncoderOutputs(Protocol):
    """What a transformers encoder returns with `output_hidden_states=True, output_attentions=True`."""

    hidden_states: tuple[Tensor, ...] | None
    attentions: tuple[Tensor, ...] | None


class IntermediateLoss(nn.Module):
    """Weighted sum of embedding, hidden-state and attention MSE terms over a declarative layer map.

    β scales every embeddings/hidden term and γ every attention term, on top of each match's own weight.
    Layer ranges are checked against `student_layers`/`teacher_layers` here when given, and against the
    models' actual outputs on every forward pass.
    """

    def __init__(
        self,
        matches: Sequence[LayerMatch],
        student_hidden: int,
        teacher_hidden: int,
        student_heads: int,
        teacher_heads: int,
        beta: float = 1.0,
        gamma: float = 1.0,
        *,
        student_layers: int | None = None,
        teacher_layers: int | None = None,
    ) -> None:
        super().__init__()
        self.matches = tuple(matches)
        if student_layers is not None and teacher_layers is not None:
            validate_layer_matches(self.matches, student_layers, teacher_layers)
        _check_scale("beta", beta)
        _check_scale("gamma", gamma)
        if any(match.kind == "attention" for match in self.matches):
            _check_head_groups(student_heads, teacher_heads)
        self.student_hidden = student_hidden
        self.teacher_hidden = teacher_hidden
        self.student_heads = student_heads
        self.teacher_heads = teacher_heads
        self.beta = beta
        self.gamma = gamma
        self.projections = nn.ModuleDict(
            {
                _projection_key(match): _projection(student_hidden, teacher_hidden)
                for match in self.matches
                if match.kind in ("embeddings", "hidden")
            }
        )

    def forward(
        self, student_outputs: EncoderOutputs, teacher_outputs: EncoderOutputs, attention_mask: Tensor
    ) -> dict[str, Tensor]:
        """Loss terms for one batch: keys `loss`, `embeddings`, `hidden`, `attention`.

        `attention_mask` is the tokenizer's `[batch, seq]` mask (1 = real token, 0 = padding); student and
        teacher must have seen the same token ids. The teacher's states are a fixed target (detached).
        """
        if attention_mask.ndim != 2:
            raise ValueError(
                f"attention_mask must be the tokenizer's [batch, seq] mask, "
                f"got shape {tuple(attention_mask.shape)}."
            )
        student_layers = _layer_count(student_outputs, "student")
        teacher_layers = _layer_count(teacher_outputs, "teacher")
        validate_layer_matches(self.matches, student_layers, teacher_layers)
        token_mask = attention_mask.bool()
        reference = _first_tensor(student_outputs)
        terms = {kind: reference.new_zeros(()) for kind in MATCH_KINDS}
        for match in self.matches:
            terms[match.kind] = terms[match.kind] + self._match_term(
                match, student_outputs, teacher_outputs, token_mask
            )
        return {"loss": sum(terms.values(), reference.new_zeros(())), **terms}

    def projection_state(self) -> dict[str, Tensor]:
        """Detached copies of the projection weights, keyed like `projections.state_dict()`."""
        return {name: tensor.detach().clone() for name, tensor in self.projections.state_dict().items()}

    def load_projection_state(self, state: Mapping[str, Tensor]) -> None:
        """Restore projections saved by `projection_state` for the same layer map and hidden widths."""
        expected = {name: tuple(tensor.shape) for name, tensor in self.projections.state_dict().items()}
        given = {name: tuple(tensor.shape) for name, tensor in state.items()}
        if expected != given:
            missing = sorted(expected.keys() - given.keys())
            unexpected = sorted(given.keys() - expected.keys())
            resized = sorted(name for name in expected.keys() & given.keys() if expected[name] != given[name])
            raise ValueError(
                f"The saved projections do not fit this layer map: missing {missing}, "
                f"unexpected {unexpected}, wrong shape {resized}. They were saved for another layer map or "
                f"hidden width; use the same matches and models as the run that saved them."
            )
        self.projections.load_state_dict(dict(state))

    def _match_term(
        self, match: LayerMatch, student: EncoderOutputs, teacher: EncoderOutputs, token_mask: Tensor
    ) -> Tensor:
        if match.kind == "attention":
            student_attention = _attentions(student, "student")[match.student_layer - 1]
            teacher_attention = _attentions(teacher, "teacher")[match.teacher_layer - 1]
            _check_attention(student_attention, self.student_heads, token_mask, "student")
            _check_attention(teacher_attention, self.teacher_heads, token_mask, "teacher")
            grouped_teacher = average_head_groups(teacher_attention.detach(), self.student_heads)
            mse = masked_attention_mse(
                at_least_fp32(student_attention), at_least_fp32(grouped_teacher), token_mask
            )
            return self.gamma * match.weight * mse
        student_state = _hidden_states(student, "student")[match.student_layer]
        teacher_state = _hidden_states(teacher, "teacher")[match.teacher_layer]
        _check_state(student_state, self.student_hidden, token_mask, "student")
        _check_state(teacher_state, self.teacher_hidden, token_mask, "teacher")
        projected = self.projections[_projection_key(match)](student_state)
        mse = masked_state_mse(at_least_fp32(projected), at_least_fp32(teacher_state.detach()), token_mask)
        return self.beta * match.weight * mse


def masked_state_mse(student_state: Tensor, teacher_state: Tensor, token_mask: Tensor) -> Tensor:
    """Mean squared error over real tokens × hidden units; padding never counts, whatever it holds."""
    squared = (student_state - teacher_state).pow(2).sum(dim=-1)
    real_squared = torch.where(token_mask, squared, torch.zeros_like(squared))
    return real_squared.sum() / (token_mask.sum().clamp_min(1) * teacher_state.shape[-1])


def masked_attention_mse(student_attention: Tensor, teacher_attention: Tensor, token_mask: Tensor) -> Tensor:
    """Mean squared error over heads × (query, key) pairs where both tokens are real."""
    pair_mask = token_mask[:, None, :, None] & token_mask[:, None, None, :]
    squared = (student_attention - teacher_attention).pow(2)
    real_squared = torch.where(pair_mask, squared, torch.zeros_like(squared))
    return real_squared.sum() / (pair_mask.sum().clamp_min(1) * student_attention.shape[1])


def average_head_groups(attention: Tensor, heads: int) -> Tensor:
    """Reduce `[B, H, L, L]` attention to `heads` heads by averaging adjacent groups of H / heads heads."""
    batch, teacher_heads, queries, keys = attention.shape
    return attention.reshape(batch, heads, teacher_heads // heads, queries, keys).mean(dim=2)


def _projection(student_hidden: int, teacher_hidden: int) -> nn.Linear:
    """Equal widths start at identity, so an already-aligned student is not scrambled on the first step."""
    projection = nn.Linear(student_hidden, teacher_hidden, bias=False)
    if student_hidden == teacher_hidden:
        nn.init.eye_(projection.weight)
    return projection


def _projection_key(match: LayerMatch) -> str:
    return "embeddings" if match.kind == "embeddings" else f"hidden_{match.student_layer}"


def _check_scale(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")


def _check_head_groups(student_heads: int, teacher_heads: int) -> None:
    if student_heads < 1 or student_heads > teacher_heads or teacher_heads % student_heads:
        raise ValueError(
            f"Attention matching averages teacher heads in equal groups, so the teacher's head count "
            f"({teacher_heads}) must be a multiple of the student's ({student_heads}). Choose a student head "
            f"count that divides {teacher_heads}, or drop the attention matches."
        )


def _layer_count(outputs: EncoderOutputs, role: str) -> int:
    if outputs.hidden_states:
        return len(outputs.hidden_states) - 1
    if outputs.attentions:
        return len(outputs.attentions)
    raise ValueError(
        f"The {role} outputs hold neither hidden states nor attentions; call the model with "
        f"output_hidden_states=True and output_attentions=True."
    )


def _first_tensor(outputs: EncoderOutputs) -> Tensor:
    return (outputs.hidden_states or outputs.attentions)[0]


def _hidden_states(outputs: EncoderOutputs, role: str) -> tuple[Tensor, ...]:
    if not outputs.hidden_states:
        raise ValueError(
            f"The {role} outputs have no hidden_states but the layer map has embeddings/hidden matches; "
            f"call the model with output_hidden_states=True."
        )
    return outputs.hidden_states


def _attentions(outputs: EncoderOutputs, role: str) -> tuple[Tensor, ...]:
    if not outputs.attentions:
        raise ValueError(
            f"The {role} outputs have no attentions but the layer map has attention matches. Load or build "
            f'the {role} with attn_implementation="eager" and call it with output_attentions=True '
            f"(sdpa and flash attention do not return attention probabilities)."
        )
    return outputs.attentions


def _check_state(state: Tensor, hidden: int, token_mask: Tensor, role: str) -> None:
    if state.ndim != 3 or state.shape[:2] != token_mask.shape or state.shape[-1] != hidden:
        raise ValueError(
            f"A {role} hidden state has shape {tuple(state.shape)}, expected "
            f"[{token_mask.shape[0]}, {token_mask.shape[1]}, {hidden}] from the attention mask and the "
            f"configured {role}_hidden. Student and teacher must see the same token ids."
        )


def _check_attention(attention: Tensor, heads: int, token_mask: Tensor, role: str) -> None:
    batch, length = token_mask.shape
    if tuple(attention.shape) != (batch, heads, length, length):
        raise ValueError(
            f"A {role} attention map has shape {tuple(attention.shape)}, expected "
            f"[{batch}, {heads}, {length}, {length}] from the attention mask and the configured "
            f"{role}_heads. Student and teacher must see the same token ids."
        )
