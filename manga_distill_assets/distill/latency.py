"""Inference latency and throughput, measured the same way for every model the report compares.

Texts are tokenised before the clock starts: tokenisation is the same for teacher and student (they share the
tokenizer), so timing only the forward pass shows what distillation changed. Every model is measured on the
same number of CPU threads, set here and restored afterwards; an ONNX graph gets an onnxruntime session with
that many threads, and is timed by the same loop on the same texts.
"""

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from transformers import BatchEncoding, PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.onnx_export import OUTPUT_NAME, encode_for_session, open_session
from manga_distill_assets.distill.truncation import SCORING_MAX_LENGTH

_PERCENTILES = {"p50_ms": 50, "p90_ms": 90, "p99_ms": 99}
# Throughput runs one batch per this many single-text runs, so it costs about as much as the latency runs.
_RUNS_PER_THROUGHPUT_BATCH = 20
Inputs = TypeVar("Inputs")


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block on `threads` intra-op threads, then give the process back the count it had.

    torch's thread count is process-wide: a step that set it and kept it would leave every later step of
    the process (the next asset of a run, the next test file of a worker) on that count, and two processes
    on two threads each slowed each other about fourfold on the 2-core machine.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
    singles, batch_texts = _sample(texts, runs, throughput_batch)
    was_training = model.training
    model.eval()

    def forward(encoded: BatchEncoding) -> None:
        model(**encoded)
        _wait_for(device)

    try:
        with torch_threads(threads), torch.inference_mode():
            timings = _timings(
                forward,
                [_encode(tokenizer, [text], device) for text in singles],
                _encode(tokenizer, batch_texts, device),
                warmup,
            )
    finally:
        model.train(was_training)
    return _summary(*timings, threads=threads, runs=runs, throughput_batch=throughput_batch)


def measure_onnx_latency(
    path: Path,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    threads: int = 1,
    warmup: int = 10,
    runs: int = 100,
    throughput_batch: int = 64,
) -> dict[str, Any]:
    """The same measurement as :func:`measure_latency` for an ONNX graph, on an onnxruntime session opened
    here with `threads` intra-op threads: same texts, same tokenisation before the clock, same result keys."""
    _check_arguments(texts, threads, warmup, runs, throughput_batch)
    session = open_session(path, threads=threads)
    singles, batch_texts = _sample(texts, runs, throughput_batch)

    def forward(feed: dict[str, np.ndarray]) -> None:
        session.run([OUTPUT_NAME], feed)

    timings = _timings(
        forward,
        [encode_for_session(session, tokenizer, [text]) for text in singles],
        encode_for_session(session, tokenizer, batch_texts),
        warmup,
    )
    return _summary(*timings, threads=threads, runs=runs, throughput_batch=throughput_batch)


def _sample(texts: Sequence[str], runs: int, throughput_batch: int) -> tuple[list[str], list[str]]:
    singles = list(itertools.islice(itertools.cycle(texts), runs))
    return singles, list(itertools.islice(itertools.cycle(texts), throughput_batch))


def _timings(
    forward: Callable[[Inputs], None], singles: list[Inputs], batch: Inputs, warmup: int
) -> tuple[np.ndarray, float, int]:
    """Untimed warm-up, one timed forward per single text, then one untimed and several timed batches."""
    for encoded in itertools.islice(itertools.cycle(singles), warmup):
        forward(encoded)
    latencies_ms = np.array([_timed_ms(forward, encoded) for encoded in singles])
    batches = max(1, len(singles) // _RUNS_PER_THROUGHPUT_BATCH)
    forward(batch)
    batch_ms = sum(_timed_ms(forward, batch) for _ in range(batches))
    return latencies_ms, batch_ms, batches


def _summary(
    latencies_ms: np.ndarray, batch_ms: float, batches: int, *, threads: int, runs: int, throughput_batch: int
) -> dict[str, Any]:
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
    encoded = tokenizer(
        texts, padding=True, truncation=True, max_length=SCORING_MAX_LENGTH, return_tensors="pt"
    )
    return encoded.to(device)


def _timed_ms(forward: Callable[[Inputs], None], inputs: Inputs) -> float:
    start = time.perf_counter()
    forward(inputs)
    return (time.perf_counter() - start) * 1000.0


def _wait_for(device: torch.device) -> None:
    """GPU kernels run asynchronously; wait for them so the clock measures their work, not their launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
