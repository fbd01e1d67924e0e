"""Activation smoothing before dynamic int8 quantisation (SmoothQuant: Xiao et al., 2023).

Dynamic quantisation gives each matmul's input one 8-bit scale per call, set by its largest value, and a
transformer's activations put most of that range into a few channels: on the 4 × 384 reranker student, layer
0's feed-forward input peaked at 28.3 in one channel where the median channel's peak was 1.9, so every
ordinary channel kept a handful of levels. Dividing input channel j by s_j and multiplying the weight's
matching input row by s_j leaves the product exact and moves part of the range into the weights, which are
quantised per output channel and can afford it. s_j = max|X_j|^α / max|W_j|^(1-α): α = 0 leaves the
activations' range as it is, α = 1 hands all of it to the weights. The division stays in the graph as one
fp32 elementwise multiply per distinct input (the query, key and value projections share theirs); the
residual paths that read the same activations are untouched.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from manga_distill_assets.distill.observed_pass import observe
from manga_distill_assets.distill.onnx_export import FP32_FILE, HEAD_PARTS, INT8_FILE

_FLOOR = 1e-5
SMOOTHING_STRENGTHS: tuple[float | None, ...] = (None, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Smoothing strengths tried on the calibration texts (None: the graph as exported). The best one depends on
the model, so it is measured: on the 4 x 384 reranker student whose plain int8 graph kept 0.859 of the test
queries' top 3, alpha = 0.5 kept 0.864, 0.7 kept 0.944 and 0.85 kept 0.929 (docs/reranker.md); of two
2-layer BANKING77 intent students whose plain int8 graphs agreed with them on 0.9912 and 0.9974 of the test
texts, 0.5 and 0.7 tied on the first (0.9971) and 0.7 was best on the second (0.9997; 0.9 gave 0.9968 and
0.9987; docs/intent-on-real-data.md)."""


class SmoothedLinear(nn.Module):
    """`linear(x)` computed as `linear_scaled(x * inverse)`, where the weight's input rows carry the scale."""

    def __init__(self, linear: nn.Linear, scale: Tensor, inverse: Tensor) -> None:
        super().__init__()
        self.linear = copy.deepcopy(linear)
        with torch.no_grad():
            self.linear.weight.mul_(scale[None, :])
        self.inverse = inverse

    def forward(self, inputs: Tensor) -> Tensor:
        return self.linear(inputs * self.inverse)


def encoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The linear layers smoothing applies to: all but the pooler's and the classifier's, which take one
    vector a text and whose rounding lands straight on the output (they stay fp32 in the int8 graph)."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not any(part in name for part in HEAD_PARTS)
    }


def input_ranges(model: PreTrainedModel, batches: Iterable[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Each encoder linear layer's largest absolute input per channel over `batches` (tokenised model
    inputs); layers that read the same input tensor (the query, key and value projections) are one entry,
    their names joined by "|", since they must share one scale."""
    peaks: dict[str, Tensor] = {}
    first_inputs: dict[str, Tensor] = {}
    hooks = []
    for name, module in encoder_linears(model).items():

        def record(_module: nn.Module, args: tuple[Tensor, ...], name: str = name) -> None:
            first_inputs.setdefault(name, args[0])
            values = args[0].detach().float()
            peak = values.abs().reshape(-1, values.shape[-1]).amax(dim=0)
            peaks[name] = torch.maximum(peaks[name], peak) if name in peaks else peak

        hooks.append(module.register_forward_pre_hook(record))
    observe(model, batches, hooks)
    if not peaks:
        raise ValueError(
            "Smoothing needs at least one calibration batch through an encoder with linear layers."
        )
    # Every first input is still referenced here, so no two distinct tensors share an id.
    groups: dict[int, list[str]] = {}
    for name, tensor in first_inputs.items():
        groups.setdefault(id(tensor), []).append(name)
    return {"|".join(names): _peak([peaks[name] for name in names]) for names in groups.values()}


def smoothed(model: PreTrainedModel, ranges: Mapping[str, Tensor], alpha: float) -> PreTrainedModel:
    """A copy of `model` whose encoder linear layers divide their inputs by s (shared by the layers of one
    input) and carry s in their weights: the same function, with flatter inputs for int8."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"The smoothing strength alpha must lie in [0, 1], got {alpha}.")
    copied = copy.deepcopy(model)
    for group, peak in ranges.items():
        names = group.split("|")
        linears = [copied.get_submodule(name) for name in names]
        weight_peak = _peak([linear.weight.detach().abs().amax(dim=0) for linear in linears])
        scale = peak.clamp(min=_FLOOR) ** alpha / weight_peak.clamp(min=_FLOOR) ** (1 - alpha)
        scale = scale.clamp(min=_FLOOR)
        inverse = nn.Parameter((1.0 / scale).float(), requires_grad=False)
        for name, linear in zip(names, linears, strict=True):
            parent, _, child = name.rpartition(".")
            setattr(copied.get_submodule(parent), child, SmoothedLinear(linear, scale, inverse))
    return copied.eval()


def _peak(per_channel: list[Tensor]) -> Tensor:
    """The channel-wise maximum over several per-channel peaks."""
    return torch.stack(per_channel).amax(dim=0)


@dataclass(frozen=True)
class SmoothingTrials:
    """The strength chosen, and each strength's measure (and error, where one was given) by its name."""

    alpha: float | None
    measures: dict[str, float]
    errors: dict[str, float]


def smoothing_strength(
    model: PreTrainedModel,
    ranges: Mapping[str, Tensor],
    *,
    export: Callable[[PreTrainedModel, Path], Path],
    quantize: Callable[[Path, Path], Path],
    scores: Callable[[Path], np.ndarray],
    measure: Callable[[np.ndarray, np.ndarray], float],
    reference: np.ndarray,
    folder: Path,
    error: Callable[[np.ndarray, np.ndarray], float] | None = None,
) -> SmoothingTrials:
    """The strength in `SMOOTHING_STRENGTHS` whose all-int8 graph (`export`, then `quantize`) `measure`s best
    against `reference` (`scores` of the calibration inputs), with every strength's measure. That strength's
    fp32 and int8 graphs are left in `folder` (`FP32_FILE`, `INT8_FILE`), where a parity search starts.

    Without `error` the first of equals wins, so no smoothing wins a tie. With it, every strength whose
    measure lies within half a calibration row of the best is tied (no count over these rows could tell
    them apart), and of those the one with the smallest `error` wins: where a small model agrees on every
    held-out text at every strength, the measure saturates at 1.0, and on a 7-intent BANKING77 student
    the unsmoothed graph that a first-of-equals rule kept moved the held-out margins two to three times as
    far as the smoothed ones (σ 0.060 against 0.019 to 0.039), and its 280 test texts' margins 0.071
    against 0.030 at the strength this rule picks (docs/intent-on-real-data.md)."""
    measures: dict[str, float] = {}
    errors: dict[str, float] = {}
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        graphs = {}
        for alpha in SMOOTHING_STRENGTHS:
            candidate = model if alpha is None else smoothed(model, ranges, alpha)
            fp32 = export(candidate, Path(scratch) / f"{alpha}.onnx")
            int8 = quantize(fp32, Path(scratch) / f"{alpha}_int8.onnx")
            logits = scores(int8)
            measures[str(alpha)] = measure(reference, logits)
            if error is not None:
                errors[str(alpha)] = error(reference, logits)
            graphs[alpha] = (fp32, int8)
        best = max(measures.values())
        if error is None:
            chosen = next(alpha for alpha in graphs if measures[str(alpha)] == best)
        else:
            tolerance = 0.5 / len(reference)
            tied = [alpha for alpha in graphs if measures[str(alpha)] >= best - tolerance]
            chosen = min(tied, key=lambda alpha: errors[str(alpha)])
        fp32, int8 = graphs[chosen]
        fp32.replace(folder / FP32_FILE)
        int8.replace(folder / INT8_FILE)
    return SmoothingTrials(chosen, measures, errors)
