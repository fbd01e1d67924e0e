"""The student for serving: exported to ONNX, dynamically quantised to int8, and checked against PyTorch.

The export uses PyTorch's TorchScript exporter (``dynamo=False``) by default. For a BERT-style classifier
with eager attention it gives the graph pattern onnxruntime's BERT fusions recognise (on the demo student its
optimizer fused each layer's attention into one ``Attention`` node, and fused none in the ``torch.export``
graph); it exported in under a second where the ``torch.export`` path took 5 to 16 s on the 2-core machine;
and it needs no onnxscript. Both graphs gave the same logits, and the int8 TorchScript graph was the faster
(docs/serving.md). ``exporter="dynamo"`` keeps the ``torch.export`` path one argument away for
the day the TorchScript exporter is removed.

Quantisation is dynamic (int8 weights, activations quantised per batch at run time) and per channel: on the
demo student per-channel weights nearly halved the largest logit error at no cost in speed. ``reduce_range``
(7-bit weights) only helps CPUs without VNNI instructions, so it is off by default. The embedding table
stays fp32 unless asked: it costs no latency (a lookup, not a matmul) and doubles the file, but on a student
with close top-two logits int8 embeddings changed more predictions (docs/serving.md). So do the feed-forward
down-projections (BERT's ``output.dense``), which stay fp32 unless asked: their input is the GELU activation,
whose few outlier dimensions (Bondarenko et al., 2021, "Understanding and Overcoming the Challenges of
Efficient Transformer Quantization") stretch the one per-batch scale that dynamic quantisation gives it. On
two trained BANKING77 students (77 intents) keeping them fp32 raised test agreement from 0.9945 and 0.9961 to
0.9977 and 0.9971, for about 0.25 ms more per query (benchmarks/int8_many_classes.py, docs/serving.md).
"""

import inspect
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.truncation import SCORING_MAX_LENGTH
from manga_distill_assets.distill.unpadded import UnpaddedBertScorer

FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
INT8_CHOICE_FILE = "int8_choice.json"
OPSET = 18
OUTPUT_NAME = "logits"
Exporter = Literal["torchscript", "dynamo"]
VARIANT_FILES: dict[str, str] = {"fp32": FP32_FILE, "int8": INT8_FILE}
_REQUIRED_INPUTS = ("input_ids", "attention_mask")
_OPTIONAL_INPUTS = ("token_type_ids",)
_WEIGHT_OPS = ("MatMul", "Attention")
SLOW_FUSIONS = ("SkipLayerNormFusion",)
"""onnxruntime graph fusions `open_session` turns off because they made our graphs slower on CPU."""
HEAD_PARTS = ("classifier", "pooler")
"""Module-path parts of a classifier's head: int8 keeps them fp32, and smoothing leaves them alone."""


class OnnxExportError(RuntimeError):
    """The model could not be exported or quantised, or an exported file cannot be run."""


@dataclass(frozen=True)
class Parity:
    """How far an exported model's logits are from the PyTorch model's on the same texts."""

    agreement: float
    max_abs_diff: float
    rows: int


class _LogitsOnly(torch.nn.Module):
    """A fixed positional signature returning a bare tensor, so the graph has named inputs and one output."""

    def __init__(self, model: PreTrainedModel, input_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, inputs, strict=True))).logits


def input_names(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> tuple[str, ...]:
    """input_ids and attention_mask, plus token_type_ids when both the model and its tokenizer use them."""
    tokenizer_inputs = set(tokenizer.model_input_names)
    missing = [name for name in _REQUIRED_INPUTS if name not in tokenizer_inputs]
    if missing:
        raise OnnxExportError(
            f"The tokenizer of {type(model).__name__} does not produce {missing}; export needs a tokenizer "
            "that returns input_ids and attention_mask."
        )
    accepted = inspect.signature(model.forward).parameters
    optional = tuple(name for name in _OPTIONAL_INPUTS if name in tokenizer_inputs and name in accepted)
    return _REQUIRED_INPUTS + optional


def export_onnx(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    path: Path,
    *,
    exporter: Exporter = "torchscript",
    opset: int = OPSET,
    unpadded: bool = False,
) -> Path:
    """Write `model` as an ONNX graph with dynamic batch and sequence axes: inputs as `input_names`, output
    `logits` (batch × labels). `unpadded` exports a BERT classifier's forward on its real tokens only
    (`distill.unpadded`; check `unpadded_forward_fits` first), for graphs that score padded batches. The model
    is left in the mode it was in."""
    names = input_names(model, tokenizer)
    sample = tokenizer(
        ["an example query", "a second, longer example query"], padding=True, return_tensors="pt"
    )
    args = tuple(sample[name] for name in names)
    was_training = model.training
    module = (UnpaddedBertScorer(model.eval()) if unpadded else _LogitsOnly(model.eval(), names)).eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The exporters announce their deprecation, trace shape arithmetic they then keep symbolic, and
            # caution about indexing the model never does with negative indices; the parity check, not the
            # warnings, is what tells whether the graph is right.
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
            warnings.filterwarnings("ignore", message="Exporting aten::index", category=UserWarning)
            _export(module, args, names, path, exporter, opset)
    except Exception as error:
        raise OnnxExportError(
            f"Exporting {type(model).__name__} to {path} with the {exporter} exporter failed: {error}. "
            f"Try the other exporter ({'dynamo' if exporter == 'torchscript' else 'torchscript'})."
        ) from error
    finally:
        model.train(was_training)
    return path


def _export(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    names: tuple[str, ...],
    path: Path,
    exporter: Exporter,
    opset: int,
) -> None:
    if exporter == "torchscript":
        axes = {name: {0: "batch", 1: "sequence"} for name in names}
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(names),
            output_names=[OUTPUT_NAME],
            dynamic_axes={**axes, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
        return
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=list(names),
        output_names=[OUTPUT_NAME],
        dynamic_shapes=(tuple({0: batch, 1: sequence} for _ in names),),
        opset_version=opset,
        dynamo=True,
        external_data=False,
        verbose=False,
    )


def quantize_int8(
    source: Path,
    target: Path,
    *,
    per_channel: bool = True,
    reduce_range: bool = False,
    quantize_embeddings: bool = False,
    quantize_head: bool = False,
    quantize_ffn_output: bool = False,
    keep_fp32: Sequence[str] = (),
    only: Sequence[str] | None = None,
) -> Path:
    """Dynamic int8 quantisation (QInt8 weights) of an exported graph: the encoder's MatMul weights, the
    embedding table's Gather too when `quantize_embeddings` (a smaller file, more flipped predictions), the
    pooler and classifier only when `quantize_head` (see `head_nodes`), and the feed-forward down-projections
    only when `quantize_ffn_output` (see `ffn_output_nodes`). Nodes named in `keep_fp32` stay fp32; `only`,
    when given, limits quantisation to the nodes it names."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    excluded = fp32_nodes(source, head=not quantize_head, ffn_output=not quantize_ffn_output)
    advice = _DropRecords("pre-processing before quantization")
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(
            Path(source),
            Path(target),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
            op_types_to_quantize=None if quantize_embeddings else list(_WEIGHT_OPS),
            nodes_to_exclude=[*excluded, *keep_fp32],
            nodes_to_quantize=list(only) if only is not None else None,
        )
    except Exception as error:
        raise OnnxExportError(f"Quantising {source} to int8 failed: {error}.") from error
    finally:
        logging.getLogger().removeFilter(advice)
    return Path(target)


class _DropRecords(logging.Filter):
    """onnxruntime advises shape pre-processing on every call, for static quantisation of vision models; on
    the parity search's dozen calls that advice buried the run's own log lines."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def head_nodes(graph: onnx.GraphProto) -> list[str]:
    """The pooler's and the classifier's nodes, found by module path in the node name or by the weight they
    read.

    They hold a small share of the weights and time, but their error lands straight on the logits: dynamic
    quantisation rounds the pooled vector to 256 levels per batch, and the classifier sums that error into
    every class's logit. On a 77-class BANKING77 model, quantising them changed 5 more of 3,080 predictions
    (benchmarks/int8_many_classes.py).
    """
    names = [
        node.name
        for node in graph.node
        if any(part in text for part in HEAD_PARTS for text in (node.name, *node.input))
    ]
    # The quantiser first rewrites each Gemm as `<name>_MatMul` + `<name>_Add`, then matches these names.
    return [*names, *(f"{name}_MatMul" for name in names)]


def ffn_output_nodes(graph: onnx.GraphProto) -> list[str]:
    """The feed-forward down-projections: the MatMuls outside the head whose stored weight maps a wider input
    to a narrower output (BERT's ``output.dense``, DistilBERT's ``ffn.lin2``), found by shape, not by name.

    Their input is the GELU activation, whose outliers make the per-batch int8 scale coarse for every other
    value (see the module's docstring)."""
    shapes = {initializer.name: tuple(initializer.dims) for initializer in graph.initializer}
    head = set(head_nodes(graph))
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul"
        and node.name not in head
        and any(len(shapes.get(name, ())) == 2 and shapes[name][0] > shapes[name][1] for name in node.input)
    ]


def fp32_nodes(source: Path, *, head: bool, ffn_output: bool) -> list[str]:
    """The nodes of the graph at `source` that int8 quantisation leaves fp32: the head's and the
    down-projections', as asked. The graph is read only when one of them is asked for: the parity search
    quantises with neither, once per matmul."""
    if not (head or ffn_output):
        return []
    graph = onnx.load(str(source), load_external_data=False).graph
    return [*(head_nodes(graph) if head else ()), *(ffn_output_nodes(graph) if ffn_output else ())]


def open_session(
    path: Path, threads: int = 1, *, optimized_copy: Path | None = None
) -> onnxruntime.InferenceSession:
    """A CPU session on exactly `threads` intra-op threads, so it is timed like the PyTorch models.

    onnxruntime's `SkipLayerNormFusion` is turned off (`SLOW_FUSIONS`). In the reranker's int8 graph its
    fused residual-add + layer norm took 1.7 ms a call on one query's 20 x 47 tokens, several times the
    separate `Add` and `LayerNormalization` it replaces; without it that graph scored a query's candidates
    about 15% faster (40 to 34 ms at one thread) and an intent int8 graph a text 4% faster. The int8 scores
    move by rounding (dynamic quantisation sees slightly different activations), not in how they rank
    (docs/serving.md). `optimized_copy` writes the graph as onnxruntime runs it, after its fusions.
    """
    if not Path(path).is_file():
        raise OnnxExportError(f"{path} does not exist: export the model (export_onnx) first.")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if optimized_copy is not None:
        options.optimized_model_filepath = str(optimized_copy)
    try:
        return onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=list(SLOW_FUSIONS)
        )
    except Exception as error:
        raise OnnxExportError(f"onnxruntime cannot load {path}: {error}. Export it again.") from error


def encode_for_session(
    session: onnxruntime.InferenceSession, tokenizer: PreTrainedTokenizerBase, texts: list[str]
) -> dict[str, np.ndarray]:
    """The session's inputs, tokenised the way the PyTorch models are (padded, same cut)."""
    encoded = tokenizer(
        texts, padding=True, truncation=True, max_length=SCORING_MAX_LENGTH, return_tensors="np"
    )
    return {item.name: encoded[item.name].astype(np.int64) for item in session.get_inputs()}


def onnx_logits(
    session: onnxruntime.InferenceSession,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    batch_size: int = 1,
) -> np.ndarray:
    """Logits for `texts` (rows × labels, float32).

    One text at a time by default, as the assistant serves them: dynamic quantisation scales activations per
    batch, so an int8 graph's logits for a text shift with whatever shares its batch (on the demo student,
    batches of 64 flipped two test predictions that batch 1 kept).
    """
    batches = [
        session.run([OUTPUT_NAME], encode_for_session(session, tokenizer, texts[start : start + batch_size]))[
            0
        ]
        for start in range(0, len(texts), batch_size)
    ]
    return np.concatenate(batches).astype(np.float32)


def parity(reference: np.ndarray, candidate: np.ndarray) -> Parity:
    """Top-1 agreement and the largest absolute logit difference of `candidate` against `reference`."""
    if reference.shape != candidate.shape or reference.ndim != 2 or not len(reference):
        raise ValueError(
            f"Parity compares logits of the same texts: got shapes {reference.shape} and {candidate.shape}."
        )
    agreement = float((reference.argmax(axis=1) == candidate.argmax(axis=1)).mean())
    return Parity(agreement, float(np.abs(reference - candidate).max()), len(reference))


def save_beside_graphs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """What a servable folder holds beside its graphs: the model config (label names) and the tokenizer."""
    model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def read_int8_choice(folder: Path) -> dict:
    """What `export_student` kept fp32 in the int8 graph and the agreement it measured; {} without one."""
    path = Path(folder) / INT8_CHOICE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def parameter_count(path: Path) -> int:
    """Numbers stored in the graph's initialisers (for int8: the quantised weights and their scales)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    return sum(int(np.prod(initializer.dims)) for initializer in graph.initializer)


def file_bytes(path: Path) -> int:
    return Path(path).stat().st_size
