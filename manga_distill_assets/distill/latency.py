"""Inference latency and throughput, measured the same way for every model the report compares.

Texts are tokenised before the clock starts: tokenisation is the same for teacher and student (they share the
tokenizer), so timing only the forward pass shows what distillation changed. Every model is measured on the
same number of CPU threads, set here and restored afterwards.
"""

import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import BatchEncoding, PreTrainedModel, PreTrainedTokenizerBase

_PERCENTILES = {"p50_ms": 50, "p90_ms": 90, "p99_ms": 99}
_MAX_LENGTH = 128
# Throughput runs one batch per this many single-text runs, so it costs about as much as the latency runs.
_RUNS_PER_THROUGHPUT_BATCH = 20


def measure_latency(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    threads: int = 1,
    warmup: int = 10,
    runs: int = 100,
    throughput_batch: int = 64,
) -> dict[str, Any]:
    """Batch-1 latency percentiles (ms) over `runs` texts after `warmup` untimed ones, and batched throughput.

    Texts are cycled through when there are fewer than needed. Returns p50_ms, p90_ms, p99_ms, mean_ms,
    throughput_per_s (samples/s at `throughput_batch`), threads, runs and throughput_batch.
    """
    _check_arguments(texts, threads, warmup, runs, throughput_batch)
    device = next(model.parameters()).device
    singles = [_encode(tokenizer, [text], device) for text in itertools.islice(itertools.cycle(texts), runs)]
    batch_texts = list(itertools.islice(itertools.cycle(texts), throughput_batch))
    batches = max(1, runs // _RUNS_PER_THROUGHPUT_BATCH)
    previous_threads = torch.get_num_threads()
    was_training = model.training
    torch.set_num_threads(threads)
    model.eval()
    try:
        with torch.inference_mode():
            for encoded in itertools.islice(itertools.cycle(singles), warmup):
                model(**encoded)
            latencies_ms = np.array([_timed_ms(model, encoded, device) for encoded in singles])
            batch = _encode(tokenizer, batch_texts, device)
            model(**batch)
            batch_ms = sum(_timed_ms(model, batch, device) for _ in range(batches))
    finally:
        torch.set_num_threads(previous_threads)
        model.train(was_training)
    return {
        **{name: float(np.percentile(latencies_ms, q)) for name, q in _PERCENTILES.items()},
        "mean_ms": float(latencies_ms.mean()),
        "throughput_per_s": float(batches * throughput_batch / (batch_ms / 1000.0)),
        "threads": threads,
        "runs": runs,
        "throughput_batch": throughput_batch,
    }


def _check_arguments(
    texts: Sequence[str], threads: int, warmup: int, runs: int, throughput_batch: int
) -> None:
    if not texts:
        raise ValueError("Latency needs at least one text to run; pass a sample of the test split.")
    limits = (
        ("threads", threads, 1),
        ("warmup", warmup, 0),
        ("runs", runs, 1),
        ("throughput_batch", throughput_batch, 1),
    )
    for name, value, least in limits:
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}.")


def _encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], device: torch.device) -> BatchEncoding:
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=_MAX_LENGTH, return_tensors="pt")
    return encoded.to(device)


def _timed_ms(model: PreTrainedModel, encoded: BatchEncoding, device: torch.device) -> float:
    _wait_for(device)
    start = time.perf_counter()
    model(**encoded)
    _wait_for(device)
    return (time.perf_counter() - start) * 1000.0


def _wait_for(device: torch.device) -> None:
    """GPU kernels run asynchronously; wait for them so the clock measures their work, not their launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
