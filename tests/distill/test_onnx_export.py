import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from transformers import DistilBertConfig, DistilBertForSequenceClassification, PreTrainedTokenizerFast

from manga_distill_assets.distill.evaluation import predict_logits
from manga_distill_assets.distill.onnx_export import (
    FP32_FILE,
    INT8_FILE,
    OnnxExportError,
    export_onnx,
    ffn_output_nodes,
    onnx_logits,
    open_session,
    parity,
    quantize_int8,
)
from manga_distill_assets.distill.student_export import export_student
from tests.distill.tiny import TINY_TEXTS, TINY_VOCAB, tiny_teacher, tiny_tokenizer

TEXTS = list(TINY_TEXTS)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerFast:
    return tiny_tokenizer(tmp_path_factory.mktemp("onnx_tokenizer"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tokenizer) -> tuple[Path, object]:
    model = tiny_teacher(layers=2)
    return export_student(model, tokenizer, tmp_path_factory.mktemp("onnx") / "student"), model


def _graph_inputs(path: Path) -> dict[str, list[str | int]]:
    graph = onnx.load(str(path)).graph
    return {
        item.name: [dim.dim_param or dim.dim_value for dim in item.type.tensor_type.shape.dim]
        for item in graph.input
    }


def test_the_graph_takes_bert_inputs_with_dynamic_batch_and_sequence_axes(exported) -> None:
    folder, _ = exported
    inputs = _graph_inputs(folder / FP32_FILE)
    assert list(inputs) == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(isinstance(size, str) for dims in inputs.values() for size in dims)
    (output,) = onnx.load(str(folder / FP32_FILE)).graph.output
    assert output.name == "logits"


def test_a_model_without_token_type_ids_gets_a_graph_without_them(tmp_path, tokenizer) -> None:
    config = DistilBertConfig(
        vocab_size=len(TINY_VOCAB), dim=16, n_layers=1, n_heads=2, hidden_dim=32, max_position_embeddings=64
    )
    model = DistilBertForSequenceClassification(config).eval()
    path = export_onnx(model, tokenizer, tmp_path / "distilbert.onnx")
    assert list(_graph_inputs(path)) == ["input_ids", "attention_mask"]


@pytest.mark.parametrize("batch_size", [1, 7, 30])
def test_fp32_logits_match_pytorch_at_any_batch_size(exported, tokenizer, batch_size) -> None:
    folder, model = exported
    session = open_session(folder / FP32_FILE)
    expected = predict_logits(model, tokenizer, TEXTS)
    np.testing.assert_allclose(
        onnx_logits(session, tokenizer, TEXTS, batch_size=batch_size), expected, atol=1e-4
    )


def test_int8_graph_quantises_the_matmuls_and_stays_close_to_pytorch(exported, tokenizer) -> None:
    folder, model = exported
    op_types = {node.op_type for node in onnx.load(str(folder / INT8_FILE)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= op_types
    result = parity(
        predict_logits(model, tokenizer, TEXTS),
        onnx_logits(open_session(folder / INT8_FILE), tokenizer, TEXTS),
    )
    assert 0 < result.max_abs_diff < 0.25
    assert result.agreement >= 0.9


def _embedding_table_type(path: Path, vocabulary: int) -> int:
    """The element type of the initialiser shaped like the word embedding table (vocabulary rows)."""
    graph = onnx.load(str(path)).graph
    (table,) = [item for item in graph.initializer if len(item.dims) == 2 and item.dims[0] == vocabulary]
    return table.data_type


def test_int8_keeps_the_embedding_table_fp32_unless_asked(exported, tmp_path) -> None:
    folder, _ = exported
    assert _embedding_table_type(folder / INT8_FILE, len(TINY_VOCAB)) == onnx.TensorProto.FLOAT
    smaller = quantize_int8(folder / FP32_FILE, tmp_path / "all.onnx", quantize_embeddings=True)
    assert _embedding_table_type(smaller, len(TINY_VOCAB)) in {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    assert smaller.stat().st_size < (folder / INT8_FILE).stat().st_size


def _integer_matmul_weights(path: Path) -> set[str]:
    """Names of the weights that int8 MatMulInteger nodes read (their quantised initialiser's name)."""
    graph = onnx.load(str(path)).graph
    return {name for node in graph.node if node.op_type == "MatMulInteger" for name in node.input}


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_int8_keeps_the_pooler_and_classifier_fp32_unless_asked(tmp_path, tokenizer, exporter) -> None:
    folder = export_student(tiny_teacher(layers=1), tokenizer, tmp_path / "student", exporter=exporter)
    kept = _integer_matmul_weights(folder / INT8_FILE)
    assert kept  # the encoder's matmuls are int8
    assert not any("classifier" in name or "pooler" in name for name in kept)
    everything = quantize_int8(folder / FP32_FILE, tmp_path / "all.onnx", quantize_head=True)
    quantised = _integer_matmul_weights(everything)
    assert any("classifier" in name for name in quantised)
    assert any("pooler" in name for name in quantised)


def _fp32_matmuls(path: Path) -> set[str]:
    return {node.name for node in onnx.load(str(path)).graph.node if node.op_type == "MatMul"}


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_int8_keeps_the_ffn_down_projections_fp32_unless_asked(tmp_path, tokenizer, exporter) -> None:
    folder = export_student(tiny_teacher(layers=2), tokenizer, tmp_path / "student", exporter=exporter)
    down = ffn_output_nodes(onnx.load(str(folder / FP32_FILE)).graph)
    assert len(down) == 2  # one per layer: intermediate (2 × hidden) -> hidden
    assert set(down) <= _fp32_matmuls(folder / INT8_FILE)
    everything = quantize_int8(folder / FP32_FILE, tmp_path / "all.onnx", quantize_ffn_output=True)
    assert not set(down) & _fp32_matmuls(everything)


def test_the_folder_holds_both_graphs_the_config_and_the_tokenizer(exported) -> None:
    folder, _ = exported
    names = {path.name for path in folder.iterdir()}
    assert {FP32_FILE, INT8_FILE, "config.json", "tokenizer.json", "tokenizer_config.json"} <= names


def test_exporting_the_same_model_twice_gives_the_same_bytes(tmp_path, tokenizer) -> None:
    """The model store addresses folders by content, so a re-export must not look like a new model."""
    model = tiny_teacher(layers=1)

    def digests(folder: Path) -> list[str]:
        return [hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in (FP32_FILE, INT8_FILE)]

    first = export_student(model, tokenizer, tmp_path / "first")
    second = export_student(model, tokenizer, tmp_path / "second")
    assert digests(first) == digests(second)


def test_export_leaves_the_model_in_training_mode_when_it_was(tmp_path, tokenizer) -> None:
    model = tiny_teacher(layers=1).train()
    export_onnx(model, tokenizer, tmp_path / "model.onnx")
    assert model.training


def test_parity_counts_top1_agreement_and_the_largest_logit_difference() -> None:
    reference = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]], dtype=np.float32)
    candidate = np.array([[0.5, 0.8], [0.0, 1.0], [2.0, 1.5]], dtype=np.float32)
    result = parity(reference, candidate)
    assert result.agreement == pytest.approx(2 / 3)
    assert result.max_abs_diff == pytest.approx(0.8)
    assert result.rows == 3


def test_parity_rejects_logits_of_different_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(3, 3\)"):
        parity(np.zeros((2, 3)), np.zeros((3, 3)))


def test_a_missing_graph_file_is_named(tmp_path) -> None:
    with pytest.raises(OnnxExportError, match=r"nowhere\.onnx does not exist"):
        open_session(tmp_path / "nowhere.onnx")


@pytest.mark.slow
def test_the_dynamo_exporter_gives_the_same_logits(tmp_path, tokenizer) -> None:
    model = tiny_teacher(layers=1)
    path = export_onnx(model, tokenizer, tmp_path / "dynamo.onnx", exporter="dynamo")
    np.testing.assert_allclose(
        onnx_logits(open_session(path), tokenizer, TEXTS), predict_logits(model, tokenizer, TEXTS), atol=1e-4
    )


def _op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_sessions_run_the_residual_add_and_layer_norm_unfused(exported, tmp_path) -> None:
    folder, _ = exported
    fused = tmp_path / "fused.onnx"
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(fused)
    onnxruntime.InferenceSession(str(folder / INT8_FILE), options, providers=["CPUExecutionProvider"])
    assert "SkipLayerNormalization" in _op_types(fused)
    served = tmp_path / "served.onnx"
    open_session(folder / INT8_FILE, optimized_copy=served)
    assert "SkipLayerNormalization" not in _op_types(served)
    assert "LayerNormalization" in _op_types(served)
