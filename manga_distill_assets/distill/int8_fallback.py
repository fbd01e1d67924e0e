"""int8 that keeps the student's predictions: quantise every weight matmul, then hand the ones that move the
logits most back to fp32 until the graph agrees with the PyTorch model on held-out texts.

Dynamic quantisation rounds each matmul's input to 256 levels per batch. Where a student's top two logits
are close (many classes, a student that learnt from soft labels) a few of those roundings flip predictions,
and which matmuls matter depends on the model and the data, not on a rule fixed in advance. So the choice is
measured, as accuracy-driven tuning in Intel's Neural Compressor does it: each matmul is quantised alone
and ranked by how far it moves the logits, and the most sensitive ones stay fp32, fewest first, until the
agreement on the calibration texts reaches the floor. A model whose plain int8 graph already agrees keeps
every matmul int8, and costs one quantisation and one pass over the texts.

A few hundred validation texts cannot show a 0.5% flip rate by counting flips: on the packaged set the plain
int8 graph flipped none of 302 validation texts and two of 302 test texts. So agreement is judged twice, and
the lower figure counts: the flips counted, and the agreement expected on new texts (`expected_agreement`),
which uses every text's margin rather than only the ones that happened to flip.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from scipy.special import ndtr

Quantize = Callable[[Path, Path, list[str], list[str] | None], Path]
"""(fp32 graph, int8 target, nodes kept fp32, nodes to quantise or None for all) -> the int8 graph."""
Logits = Callable[[Path], np.ndarray]
"""A graph's logits for the calibration texts, in the reference's order."""
Measure = Callable[[np.ndarray, np.ndarray], float]
"""How well a graph's logits (second) keep the reference's (first): 1.0 is perfect parity."""
MARGIN_BUDGET = 0.1
"""The most of the candidates' weight a search with a `fallback` keeps fp32 for its stricter `measure`.
On the AMX Xeon, keeping 21% of a 4 x 384 reranker's matmul weight fp32 (two feed-forward matmuls and two
attention projections) took its int8 graph from 4.0x to 3.0x the teacher's speed, the reranker's speed
floor (docs/reranker.md); the budget is half that."""


@dataclass(frozen=True)
class Int8Choice:
    """What was kept fp32, and the agreement with the reference it bought on the calibration texts."""

    kept_fp32: tuple[str, ...]
    agreement: float
    plain_agreement: float
    quantizable: int
    fell_back: bool = False
    """The graph reached only the search's `fallback` measure: reaching `measure` would have kept more than
    `MARGIN_BUDGET` of the weight fp32, or was out of reach."""


def weight_matmuls(graph: onnx.GraphProto, excluded: Sequence[str] = ()) -> list[str]:
    """Names of the MatMul nodes that multiply by a stored weight: the ones dynamic quantisation rewrites."""
    skip = set(excluded)
    return [name for name in weight_sizes(graph) if name not in skip]


def weight_sizes(graph: onnx.GraphProto) -> dict[str, int]:
    """Each weight matmul's stored weight size, in graph order: what keeping it fp32 costs, in proportion,
    per token."""
    sizes = {initializer.name: int(np.prod(initializer.dims)) for initializer in graph.initializer}
    return {
        node.name: max(sizes.get(name, 0) for name in node.input)
        for node in graph.node
        if node.op_type == "MatMul" and any(name in sizes for name in node.input)
    }


def counted_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float((reference.argmax(axis=1) == candidate.argmax(axis=1)).mean())


def expected_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The share of texts like these whose top class int8 is expected to keep.

    Each text's margin is its top logit minus the runner-up in the reference; int8 moves it by an error
    whose spread σ is measured over all the texts (`margin_error`). A text keeps its class unless the
    error eats its whole margin, with probability Φ(margin / σ) for a centred normal error. Texts with
    small margins thus count as the risk they are, whether or not they flipped this time.
    """
    spread = margin_error(reference, candidate)
    if spread == 0.0:
        return counted_agreement(reference, candidate)
    return float(np.mean(ndtr(_margins(reference, reference) / spread)))


def margin_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """σ: the root mean square of how far the candidate moves each text's margin (the reference's top class
    minus its runner-up, both read in the candidate). Where every text's margin is far wider than σ, two
    graphs agree on all of them alike, and the one with the smaller σ is still the one less likely to
    flip a new text."""
    return float(np.sqrt(np.mean((_margins(reference, reference) - _margins(reference, candidate)) ** 2)))


def _margins(reference: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Each row's logit of the reference's top class minus its largest other logit."""
    rows = np.arange(len(reference))
    top = reference.argmax(axis=1)
    others = logits.astype(np.float64).copy()
    others[rows, top] = -np.inf
    return logits[rows, top] - others.max(axis=1)


def agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The lower of the counted and the expected agreement (see the module's docstring)."""
    return min(counted_agreement(reference, candidate), expected_agreement(reference, candidate))


def quantize_keeping_parity(
    fp32: Path,
    target: Path,
    reference: np.ndarray,
    logits: Logits,
    quantize: Quantize,
    *,
    floor: float,
    always_fp32: Sequence[str] = (),
    measure: Measure = agreement,
    cost_aware: bool = False,
    plain: float | None = None,
    fallback: Measure | None = None,
) -> Int8Choice:
    """Write to `target` the int8 graph with the fewest matmuls kept fp32 whose top-1 predictions agree with
    `reference` (the PyTorch model's logits for the calibration texts) on at least `floor` of the texts, or
    whose `measure` against the reference reaches `floor` (a reranker's is judged on rankings). With
    `cost_aware`, matmuls are handed back in order of logit shift per weight (a feed-forward matmul costs four
    times an attention projection), for a graph whose latency budget binds.

    `always_fp32` are kept fp32 whatever happens (the head, by default). When even every matmul in fp32 is
    not enough (the gap lies elsewhere), `target` keeps the graph with the best agreement found and the
    returned choice says so; the caller's parity check decides what that means.

    `plain` is the `measure` of the all-int8 graph (only `always_fp32` kept) when the caller has already
    written it to `target` and measured it, as the reranker's smoothing trials do; it is then not
    quantised and scored a second time.

    `fallback` is a looser measure for when `measure` asks for a margin above the real floors: the margin
    is bought with at most `MARGIN_BUDGET` of the candidates' weight kept fp32; where reaching `floor` by
    `measure` would keep more (or is out of reach), the graph written is the one with the fewest matmuls
    fp32 that reaches `floor` by `fallback`, and the choice says it `fell_back`. A reranker student whose
    all-int8 graph missed a 0.95 margin target on the validation queries' top 3 (the floor is 0.9) had
    gone back to 22 of its 24 matmuls fp32, nearly as slow as the PyTorch teacher; served all int8 under
    the budget, it keeps 0.949 of the test queries' top 3 and 0.994 of the student's NDCG@3
    (docs/reranker.md).
    """
    always = list(always_fp32)
    graph = onnx.load(str(fp32), load_external_data=False).graph
    candidates = weight_matmuls(graph, always)
    plain_scores = None
    if plain is None:
        plain_scores = logits(quantize(fp32, target, always, None))
        plain = measure(reference, plain_scores)
    if plain >= floor or not candidates:
        return Int8Choice((), plain, plain, len(candidates))
    loose = None
    if fallback is not None:
        scores = logits(target) if plain_scores is None else plain_scores
        if fallback(reference, scores) >= floor:
            loose = Int8Choice((), plain, plain, len(candidates), fell_back=True)
    scratch = target.with_name(f".{target.stem}.probe{target.suffix}")
    try:
        shift = {
            # Against the PyTorch logits: the fp32 graph reproduces them (fp32_max_abs_logit_diff ~1e-5).
            name: float(np.abs(logits(quantize(fp32, scratch, always, [name])) - reference).mean())
            for name in candidates
        }
    finally:
        scratch.unlink(missing_ok=True)
    sizes = weight_sizes(graph)
    cost = sizes if cost_aware else {}
    ranked = sorted(candidates, key=lambda name: shift[name] / cost.get(name, 1), reverse=True)
    weight = sum(sizes[name] for name in candidates)
    best = Int8Choice((), plain, plain, len(candidates))
    for count in range(1, len(ranked) + 1):
        kept = ranked[:count]
        scores = logits(quantize(fp32, target, always + kept, None))
        reached = measure(reference, scores)
        if reached > best.agreement:
            best = Int8Choice(tuple(kept), reached, plain, len(candidates))
        if loose is None and fallback is not None and fallback(reference, scores) >= floor:
            loose = Int8Choice(tuple(kept), reached, plain, len(candidates), fell_back=reached < floor)
        within_budget = sum(sizes[name] for name in kept) <= MARGIN_BUDGET * weight
        if reached >= floor and (loose is None or within_budget):
            return best
        if loose is not None and not within_budget:
            break
    chosen = best if loose is None else loose
    quantize(fp32, target, always + list(chosen.kept_fp32), None)
    return chosen
