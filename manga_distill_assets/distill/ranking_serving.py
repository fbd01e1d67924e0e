"""Serving a reranker: an ONNX graph's scores of one query's candidates, and the latency of that call.

A query's candidates are scored as one batch, as the search service sends them, so latency is "time to
rerank one query" and the int8 graph's per-batch activation scales are those it meets in serving. Pairs are
tokenised before the clock starts (the same tokenizer serves teacher and student), and every model runs on
the same number of threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.cross_encoders import encode_pairs
from manga_distill_assets.distill.onnx_export import OUTPUT_NAME, export_student

QueryList = tuple[str, Sequence[str]]
"""One query and its candidate passages."""


def export_reranker(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> Path:
    """The fp32 and int8 graphs of a cross-encoder, every encoder matmul int8 (the feed-forward
    down-projections too, which a classifier keeps fp32): latency at 20 candidates is the reranker's binding
    budget, and its parity is judged on rankings, not on near-tied argmaxes. On a 4 × 384 student, 20
    candidates at one thread, keeping them fp32 took 69 ms a query against 47 ms (docs/reranker.md)."""
    return export_student(model, tokenizer, folder, quantize_ffn_output=True)


def onnx_query_scores(
    session: onnxruntime.InferenceSession,
    tokenizer: PreTrainedTokenizerBase,
    lists: Sequence[QueryList],
) -> list[np.ndarray]:
    """The graph's score of each candidate, one array per query, each query's candidates in one batch."""
    return [
        session.run([OUTPUT_NAME], _feed(session, tokenizer, query, docs))[0][:, 0].astype(np.float32)
        for query, docs in lists
    ]


def torch_query_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    lists: Sequence[QueryList],
) -> list[np.ndarray]:
    """The PyTorch model's score of each candidate, one array per query, each query in one batch."""
    model.eval()
    with torch.inference_mode():
        return [
            model(**encode_pairs(tokenizer, [query] * len(docs), docs)).logits[:, 0].float().numpy()
            for query, docs in lists
        ]


def query_latency(run: Callable[[Any], object], inputs: Sequence[Any], warmup: int = 5) -> dict[str, float]:
    """p50/p90/p99/mean wall milliseconds of `run` over `inputs` (one per query), after `warmup` untimed
    calls, and the p50 of the process's CPU milliseconds per call (`cpu_p50_ms`): on a machine shared with
    other work the wall clock includes waiting for a core, the CPU time does not."""
    if not inputs:
        raise ValueError("Latency needs at least one query's candidates to time.")
    for item in inputs[:warmup]:
        run(item)
    wall, cpu = [], []
    for item in inputs:
        start, start_cpu = time.perf_counter(), time.process_time()
        run(item)
        wall.append((time.perf_counter() - start) * 1000.0)
        cpu.append((time.process_time() - start_cpu) * 1000.0)
    values = np.asarray(wall)
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p90_ms": float(np.percentile(values, 90)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": float(values.mean()),
        "cpu_p50_ms": float(np.percentile(cpu, 50)),
        "queries": len(values),
    }


def torch_latency(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    lists: Sequence[QueryList],
    threads: int = 1,
) -> dict[str, float]:
    encoded = [encode_pairs(tokenizer, [query] * len(docs), docs) for query, docs in lists]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    model.eval()
    try:
        with torch.inference_mode():
            return query_latency(lambda batch: model(**batch), encoded) | {"threads": threads}
    finally:
        torch.set_num_threads(previous)


def onnx_latency(
    session: onnxruntime.InferenceSession,
    tokenizer: PreTrainedTokenizerBase,
    lists: Sequence[QueryList],
) -> dict[str, float]:
    """Time `session` (opened with the wanted thread count, see `open_session`) on each query's batch."""
    feeds = [_feed(session, tokenizer, query, docs) for query, docs in lists]
    return query_latency(lambda feed: session.run([OUTPUT_NAME], feed), feeds)


def _feed(session, tokenizer, query: str, docs: Sequence[str]) -> dict[str, np.ndarray]:
    encoded = encode_pairs(tokenizer, [query] * len(docs), docs, tensors="np")
    return {item.name: encoded[item.name].astype(np.int64) for item in session.get_inputs()}
