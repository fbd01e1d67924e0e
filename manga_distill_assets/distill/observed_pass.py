"""One pass of calibration batches through a model while forward hooks record what its layers see.

Width pruning measures activations and smoothing measures input ranges this way; both need the hooks gone
afterwards even when a batch fails, and the model left in eval mode, outside autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor
from torch.utils.hooks import RemovableHandle
from transformers import PreTrainedModel


def observe(
    model: PreTrainedModel,
    batches: Iterable[Mapping[str, Tensor]],
    hooks: Iterable[RemovableHandle],
    before_each: Callable[[Mapping[str, Tensor]], None] | None = None,
) -> int:
    """Runs every batch through `model` (eval mode, inference mode), calling `before_each` with a batch
    before its forward, then removes `hooks`; returns how many batches ran."""
    model.eval()
    seen = 0
    try:
        with torch.inference_mode():
            for batch in batches:
                if before_each is not None:
                    before_each(batch)
                model(**batch)
                seen += 1
    finally:
        for hook in hooks:
            hook.remove()
    return seen
