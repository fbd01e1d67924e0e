"""Serving a reranker: the graphs it is exported to."""

import numpy as np
import onnx
import pytest

from manga_distill_assets.distill.onnx_export import (
    FP32_FILE,
    INT8_FILE,
    ffn_output_nodes,
    head_nodes,
    open_session,
    read_int8_choice,
)
from manga_distill_assets.distill.ranking_serving import (
    RankingParity,
    export_reranker,
    onnx_query_scores,
    torch_query_scores,
)
from manga_distill_assets.distill.smoothing import SMOOTHING_STRENGTHS
from tests.distill.tiny import TINY_TEXTS, tiny_teacher, tiny_tokenizer


def fp32_weight_matmuls(graph: onnx.GraphProto) -> set[str]:
    """MatMuls that multiply by a stored weight in fp32 (attention's own products have no weight)."""
    weights = {initializer.name for initializer in graph.initializer}
    return {node.name for node in graph.node if node.op_type == "MatMul" and set(node.input) & weights}


def test_a_reranker_is_exported_with_every_encoder_matmul_int8_and_its_scoring_head_fp32(tmp_path):
    folder = export_reranker(
        tiny_teacher(num_labels=1, layers=2), tiny_tokenizer(tmp_path), tmp_path / "onnx"
    )
    fp32_graph = onnx.load(str(folder / FP32_FILE)).graph
    left_fp32 = fp32_weight_matmuls(onnx.load(str(folder / INT8_FILE)).graph)

    assert len(ffn_output_nodes(fp32_graph)) == 2  # one down-projection per layer, quantised with the rest
    assert left_fp32 and left_fp32 <= set(head_nodes(fp32_graph))


def test_ranking_parity_is_one_plus_the_smaller_margin_over_its_two_floors():
    reference = [np.array([4.0, 3.0, 2.0, 1.0])]
    swapped = [np.array([4.0, 3.0, 1.0, 2.0])]  # top 3 keeps 2 of 3; 5 of 6 pairs agree: τ = (5 - 1) / 6
    parity = RankingParity(top3=0.5, kendall=0.5)
    assert parity.reached(reference, reference) == pytest.approx(1.5)
    assert parity.reached(reference, swapped) == pytest.approx(1.0 + min(2 / 3 - 0.5, 4 / 6 - 0.5))
    assert RankingParity(top3=0.9, kendall=0.5).reached(reference, swapped) < 1.0


def test_an_int8_reranker_that_ranks_held_out_queries_unlike_pytorch_keeps_matmuls_fp32_until_it_does(
    tmp_path,
):
    tokenizer = tiny_tokenizer(tmp_path)
    model = tiny_teacher(num_labels=1, layers=2)
    words = [word for text in TINY_TEXTS for word in text.split()]
    calibration = [(text, [" ".join(words[i : i + 3]) for i in range(0, 36, 3)]) for text in TINY_TEXTS[:4]]
    exact = RankingParity(top3=1.0, kendall=0.999)  # every top 3, and the whole order, as PyTorch's

    folder = export_reranker(model, tokenizer, tmp_path / "onnx", calibration, exact)

    choice = read_int8_choice(folder)
    reference = torch_query_scores(model, tokenizer, calibration)
    int8 = onnx_query_scores(open_session(folder / INT8_FILE), tokenizer, calibration)
    assert exact.reached(reference, int8) >= 1.0
    assert choice["agreement"] >= 1.0
    assert (
        choice["plain_agreement"] < 1.0 and choice["kept_fp32"]
    )  # the plain graph did not rank like PyTorch


def test_the_search_aims_halfway_between_the_floors_and_exact_parity():
    assert RankingParity(top3=0.9, kendall=0.8).halfway_to_exact() == RankingParity(top3=0.95, kendall=0.9)


def test_the_export_tries_every_smoothing_strength_and_its_fp32_graph_still_scores_as_pytorch(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    model = tiny_teacher(num_labels=1, layers=2)
    calibration = [(text, list(TINY_TEXTS[10:22])) for text in TINY_TEXTS[:4]]

    folder = export_reranker(model, tokenizer, tmp_path / "onnx", calibration, RankingParity(0.9, 0.8))

    choice = read_int8_choice(folder)
    assert choice["unpadded"]  # a BERT cross-encoder is exported on its real tokens only
    smoothing = choice["smoothing"]
    assert set(smoothing["parity_by_alpha"]) == {str(alpha) for alpha in SMOOTHING_STRENGTHS}
    best = max(smoothing["parity_by_alpha"].values())
    assert smoothing["parity_by_alpha"][str(smoothing["alpha"])] == best
    reference = torch_query_scores(model, tokenizer, calibration)
    fp32 = onnx_query_scores(open_session(folder / FP32_FILE), tokenizer, calibration)
    assert max(np.abs(a - b).max() for a, b in zip(reference, fp32, strict=True)) < 1e-4
