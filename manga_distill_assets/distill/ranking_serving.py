"""Serving a reranker: an ONNX graph's scores of one query's candidates, and the latency of that call.

A query's candidates are scored as one batch, as the search service sends them, so latency is "time to
rerank one query" and the int8 graph's per-batch activation scales are those it meets in serving. Pairs are
tokenised before the clock starts (the same tokenizer serves teacher and student), and every model runs on
the same number of threads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.cross_encoders import encode_pairs
from manga_distill_assets.distill.int8_fallback import quantize_keeping_parity
from manga_distill_assets.distill.latency import torch_threads
from manga_distill_assets.distill.onnx_export import (
    FP32_FILE,
    INT8_CHOICE_FILE,
    INT8_FILE,
    OUTPUT_NAME,
    export_onnx,
    fp32_nodes,
    open_session,
    quantize_int8,
    save_beside_graphs,
)
from manga_distill_assets.distill.ranking_metrics import kendall_tau, top_k_agreement
from manga_distill_assets.distill.smoothing import input_ranges, smoothing_strength
from manga_distill_assets.distill.student_export import export_student
from manga_distill_assets.distill.unpadded import unpadded_forward_fits

QueryList = tuple[str, Sequence[str]]
"""One query and its candidate passages."""


@dataclass(frozen=True)
class RankingParity:
    """Floors an int8 reranker must reach against the PyTorch model, per query and averaged: the share of its
    top 3 kept, and Kendall τ between the two score lists."""

    top3: float
    kendall: float

    def halfway_to_exact(self) -> RankingParity:
        """Floors halfway between these and exact parity: the target on a few dozen held-out queries, so that
        the test's queries, ranked by the same graph, still clear the floors themselves."""
        return RankingParity((1.0 + self.top3) / 2, (1.0 + self.kendall) / 2)

    def met_by(self, top3_agreement: float, kendall_tau: float) -> bool:
        return top3_agreement >= self.top3 and kendall_tau >= self.kendall

    def reached(self, reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> float:
        """1.0 plus `candidate`'s smaller margin over the two floors: 1.0 or more passes both."""
        top3 = top_k_agreement(reference, candidate, 3) - self.top3
        return 1.0 + min(top3, kendall_tau(reference, candidate) - self.kendall)


def export_reranker(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: Path,
    calibration: Sequence[QueryList] = (),
    parity: RankingParity | None = None,
) -> Path:
    """The fp32 and int8 graphs of a cross-encoder, every encoder matmul int8 (the feed-forward
    down-projections too, which a classifier keeps fp32): latency at 20 candidates is the reranker's binding
    budget. On a 4 × 384 student, 20 candidates at one thread, keeping them fp32 took 69 ms a query against
    47 ms (docs/reranker.md). A BERT cross-encoder is exported on its real tokens only, its last layer on each
    pair's first token only (`distill.unpadded`): a query's candidates differ in length, the padding would
    cost every token-wise operation, and the scoring head reads the first token alone.

    With `calibration` queries (held out from training and from the test) and `parity`, the graph is
    exported at the activation smoothing (`distill.smoothing`, one of `SMOOTHING_STRENGTHS`) whose int8
    graph ranks them most like the PyTorch model; if that graph still misses floors halfway between
    `parity` and exact, its most sensitive matmuls go back to fp32, fewest first, until it reaches them
    (`quantize_keeping_parity`), or, where that margin would keep more than `MARGIN_BUDGET` of the weight
    fp32, until it reaches `parity` itself. `INT8_CHOICE_FILE` records both choices. The margin is
    measured: a graph searched to `parity` itself on the packaged 60 validation queries kept 0.899 of the
    test queries' top 3, under the 0.9 floor."""
    unpadded = unpadded_forward_fits(model, tokenizer)
    if not calibration or parity is None:
        return export_student(model, tokenizer, folder, quantize_ffn_output=True, unpadded=unpadded)
    reference = torch_query_scores(model, tokenizer, calibration)
    target = parity.halfway_to_exact()
    sizes = np.cumsum([len(scores) for scores in reference])[:-1]

    def scores(path: Path) -> np.ndarray:
        # The search's time, not serving's latency: on every thread torch has (the per-matmul search on a
        # 4 x 384 student took 96 s at two threads where it took 149 s at one, with the same choice).
        return np.concatenate(
            onnx_query_scores(open_session(path, threads=torch.get_num_threads()), tokenizer, calibration)
        )

    def against(floors: RankingParity) -> Callable[[np.ndarray, np.ndarray], float]:
        return lambda first, second: floors.reached(np.split(first, sizes), np.split(second, sizes))

    measure = against(target)

    ranges = input_ranges(model, _batches(tokenizer, calibration))
    trials = smoothing_strength(
        model,
        ranges,
        export=lambda candidate, path: export_onnx(candidate, tokenizer, path, unpadded=unpadded),
        quantize=lambda fp32, int8: quantize_int8(fp32, int8, quantize_ffn_output=True),
        scores=scores,
        measure=measure,
        reference=np.concatenate(reference),
        folder=folder,
    )
    choice = quantize_keeping_parity(
        folder / FP32_FILE,
        folder / INT8_FILE,
        np.concatenate(reference),
        scores,
        lambda source, target, keep, only: quantize_int8(
            source, target, quantize_ffn_output=True, keep_fp32=keep, only=only
        ),
        floor=1.0,
        always_fp32=fp32_nodes(folder / FP32_FILE, head=True, ffn_output=False),
        measure=measure,
        cost_aware=True,
        plain=trials.measures[str(trials.alpha)],
        fallback=against(parity),
    )
    smoothing = {"alpha": trials.alpha, "parity_by_alpha": trials.measures}
    (folder / INT8_CHOICE_FILE).write_text(
        json.dumps(asdict(choice) | {"target": asdict(target), "smoothing": smoothing, "unpadded": unpadded})
    )
    save_beside_graphs(model, tokenizer, folder)
    return folder


def _batches(tokenizer: PreTrainedTokenizerBase, lists: Sequence[QueryList]) -> Iterator[Any]:
    return (encode_pairs(tokenizer, [query] * len(docs), docs) for query, docs in lists)


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
    model.eval()
    with torch_threads(threads), torch.inference_mode():
        return query_latency(lambda batch: model(**batch), encoded) | {"threads": threads}


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
