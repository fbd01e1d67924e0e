"""The student as a servable folder: its fp32 and int8 ONNX graphs, its config (label names) and tokenizer.

Given held-out texts, the int8 graph is built to keep the PyTorch student's predictions, in two steps. First
activation smoothing (`distill.smoothing`): dynamic int8 gives each matmul's input one scale per call, and a
few outlier channels of the layer-norm outputs stretch it for all the others. On a 2-layer BANKING77 student
(77 intents, 10 labelled texts each) the plain int8 graph agreed with it on 0.9912 of the 3,080 test texts
while 77 validation texts showed no flip; smoothed at strength 0.5 to 0.9 it agreed on 0.9968 to 0.9971
(docs/intent-on-real-data.md). The strength is measured on the held-out texts; of strengths that agree
equally there, the one that moves the margins least wins (`distill.smoothing.smoothing_strength`).
Then, if the graph still misses the floor there, the matmuls that move the logits most go back to fp32
(`distill.int8_fallback`).
"""

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.int8_fallback import agreement, margin_error, quantize_keeping_parity
from manga_distill_assets.distill.onnx_export import (
    FP32_FILE,
    INT8_CHOICE_FILE,
    INT8_FILE,
    Exporter,
    export_onnx,
    fp32_nodes,
    onnx_logits,
    open_session,
    quantize_int8,
    save_beside_graphs,
)
from manga_distill_assets.distill.smoothing import input_ranges, smoothing_strength
from manga_distill_assets.distill.truncation import SCORING_MAX_LENGTH

ACTIVATION_TEXTS = 1024
"""The most texts whose activations set the smoothing scales: an evenly spaced sample of those given. A
channel's peak is a property of the layer, seen within a few hundred texts; one text is one forward pass."""


@dataclass(frozen=True)
class Calibration:
    """Held-out texts and the PyTorch model's logits for them: int8 keeps matmuls fp32 until its predictions
    agree with these on at least `floor` of the texts (see int8_fallback). `activation_texts` (the train
    split, say) join them in setting the smoothing scales, which need no labels and more texts than a
    validation split may hold."""

    texts: list[str]
    reference: np.ndarray
    floor: float
    activation_texts: Sequence[str] = ()


def export_student(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: Path,
    *,
    exporter: Exporter = "torchscript",
    per_channel: bool = True,
    reduce_range: bool = False,
    quantize_embeddings: bool = False,
    quantize_head: bool = False,
    quantize_ffn_output: bool = False,
    calibration: Calibration | None = None,
    unpadded: bool = False,
) -> Path:
    """A servable folder: the fp32 and int8 graphs, the model config (label names) and the tokenizer.

    With `calibration`, both graphs are exported at the smoothing strength whose int8 graph agrees best
    with the model on the calibration texts, and the int8 graph then keeps the fewest matmuls fp32 that
    hold that agreement at the floor; `INT8_CHOICE_FILE` in the folder records the strength, what was kept
    and why."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    options = {
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "quantize_embeddings": quantize_embeddings,
        "quantize_head": quantize_head,
        "quantize_ffn_output": quantize_ffn_output,
    }

    def export(candidate: PreTrainedModel, path: Path) -> Path:
        return export_onnx(candidate, tokenizer, path, exporter=exporter, unpadded=unpadded)

    if calibration is None:
        quantize_int8(export(model, folder / FP32_FILE), folder / INT8_FILE, **options)
        save_beside_graphs(model, tokenizer, folder)
        return folder

    def scores(path: Path) -> np.ndarray:
        return onnx_logits(open_session(path), tokenizer, calibration.texts)

    texts = [*calibration.texts, *_evenly_spaced(calibration.activation_texts, ACTIVATION_TEXTS)]
    trials = smoothing_strength(
        model,
        input_ranges(model, _one_text_batches(tokenizer, texts)),
        export=export,
        quantize=lambda fp32, int8: quantize_int8(fp32, int8, **options),
        scores=scores,
        measure=agreement,
        reference=calibration.reference,
        folder=folder,
        error=margin_error,
    )
    choice = quantize_keeping_parity(
        folder / FP32_FILE,
        folder / INT8_FILE,
        calibration.reference,
        scores,
        lambda source, target, keep, only: quantize_int8(
            source,
            target,
            **{**options, "quantize_head": True, "quantize_ffn_output": True},
            keep_fp32=keep,
            only=only,
        ),
        floor=calibration.floor,
        always_fp32=fp32_nodes(
            folder / FP32_FILE, head=not quantize_head, ffn_output=not quantize_ffn_output
        ),
        plain=trials.measures[str(trials.alpha)],
    )
    smoothing = {
        "alpha": trials.alpha,
        "agreement_by_alpha": trials.measures,
        "margin_error_by_alpha": trials.errors,
    }
    (folder / INT8_CHOICE_FILE).write_text(
        json.dumps(asdict(choice) | {"floor": calibration.floor, "smoothing": smoothing})
    )
    save_beside_graphs(model, tokenizer, folder)
    return folder


def _evenly_spaced(texts: Sequence[str], most: int) -> list[str]:
    step = max(1, -(-len(texts) // most))
    return list(texts[::step])


def _one_text_batches(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> Iterator[dict]:
    """One text a batch, as the assistant serves them: padding would add activations no query has."""
    return (
        tokenizer(text, truncation=True, max_length=SCORING_MAX_LENGTH, return_tensors="pt") for text in texts
    )
