"""Latency of a set of models served as one: each after the other, or all at once in threads.

Every model is timed end to end on one text at a time (tokenise or featurise, then score), because that is
what a request pays and because the classical member has no forward pass to separate from its features.
Running the members in threads overlaps their work only where their kernels release the GIL (PyTorch and
onnxruntime do; the numpy scorer mostly does), so the parallel figure shows what a thread pool really buys.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

Predict = Callable[[str], object]
_PERCENTILES = {"p50": 50, "p90": 90, "p99": 99}


def per_text_latency(predict: Predict, texts: Sequence[str], *, warmup: int = 5, runs: int = 50) -> dict:
    """p50/p90/p99/mean in ms of `predict(text)` over `runs` texts (cycled) after `warmup` untimed calls."""
    return _timed(predict, texts, warmup, runs)


def parallel_latency(
    predicts: Sequence[Predict], texts: Sequence[str], *, warmup: int = 5, runs: int = 50
) -> dict:
    """The same figures for all `predicts` started together on one text each time, in one thread each,
    until the slowest has answered."""
    if not predicts:
        raise ValueError("Parallel latency needs at least one model to run.")
    with ThreadPoolExecutor(max_workers=len(predicts)) as pool:

        def together(text: str) -> None:
            wait([pool.submit(predict, text) for predict in predicts])

        return _timed(together, texts, warmup, runs)


def _timed(call: Callable[[str], object], texts: Sequence[str], warmup: int, runs: int) -> dict:
    if not texts:
        raise ValueError("Latency needs at least one text; pass a sample of the test split.")
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be at least 1 and warmup at least 0, got runs={runs}, warmup={warmup}.")
    for text in itertools.islice(itertools.cycle(texts), warmup):
        call(text)
    timings = []
    for text in itertools.islice(itertools.cycle(texts), runs):
        start = time.perf_counter()
        call(text)
        timings.append((time.perf_counter() - start) * 1000.0)
    values = np.asarray(timings)
    return {
        **{name: float(np.percentile(values, q)) for name, q in _PERCENTILES.items()},
        "mean": float(values.mean()),
        "runs": runs,
    }
