"""Serving a reranker: the graphs it is exported to."""

import onnx

from manga_distill_assets.distill.onnx_export import FP32_FILE, INT8_FILE, ffn_output_nodes, head_nodes
from manga_distill_assets.distill.ranking_serving import export_reranker
from tests.distill.tiny import tiny_teacher, tiny_tokenizer


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
