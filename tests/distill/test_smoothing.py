"""Activation smoothing: the same function, with the input range moved into the weights as asked."""

import numpy as np
import pytest
import torch

from manga_distill_assets.distill.onnx_export import FP32_FILE, INT8_FILE
from manga_distill_assets.distill.smoothing import (
    SMOOTHING_STRENGTHS,
    SmoothedLinear,
    input_ranges,
    smoothed,
    smoothing_strength,
)
from tests.distill.tiny import TINY_TEXTS, tiny_teacher, tiny_tokenizer


@pytest.fixture
def setup(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    model = tiny_teacher(num_labels=1, layers=2)
    batches = [tokenizer(TINY_TEXTS[i : i + 4], padding=True, return_tensors="pt") for i in range(0, 12, 4)]
    return model, tokenizer, batches


def smoothed_inputs(model, batches) -> dict[str, torch.Tensor]:
    """Each smoothed layer's input after its division, peak per channel over `batches`."""
    peaks: dict[str, torch.Tensor] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, SmoothedLinear):

            def record(_module, args, name=name):
                peak = args[0].abs().reshape(-1, args[0].shape[-1]).amax(dim=0)
                peaks[name] = torch.maximum(peaks[name], peak) if name in peaks else peak

            hooks.append(module.linear.register_forward_pre_hook(record))
    with torch.inference_mode():
        for batch in batches:
            model(**batch)
    for hook in hooks:
        hook.remove()
    return peaks


def test_a_smoothed_model_computes_the_same_scores(setup, tmp_path):
    model, tokenizer, batches = setup
    copy = smoothed(model, input_ranges(model, batches), alpha=0.7)
    unseen = tokenizer(list(TINY_TEXTS[12:20]), padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert torch.allclose(copy(**unseen).logits, model(**unseen).logits, atol=1e-4)


def test_at_full_strength_every_smoothed_input_channel_peaks_at_one_on_the_calibration_batches(setup):
    model, _, batches = setup
    copy = smoothed(model, input_ranges(model, batches), alpha=1.0)
    for name, peak in smoothed_inputs(copy, batches).items():
        assert torch.allclose(peak, torch.ones_like(peak), atol=1e-4), name


def test_at_zero_strength_the_weights_input_rows_peak_at_one(setup):
    model, _, batches = setup
    copy = smoothed(model, input_ranges(model, batches), alpha=0.0)
    layer = copy.bert.encoder.layer[0]
    for linear in (layer.attention.output.dense, layer.intermediate.dense, layer.output.dense):
        peak = linear.linear.weight.abs().amax(dim=0)
        assert torch.allclose(peak, torch.ones_like(peak), atol=1e-5)
    shared = [layer.attention.self.query, layer.attention.self.key, layer.attention.self.value]
    peak = torch.stack([linear.linear.weight.abs().amax(dim=0) for linear in shared]).amax(dim=0)
    assert torch.allclose(peak, torch.ones_like(peak), atol=1e-5)  # one scale for the three


def test_query_key_and_value_share_one_division_and_the_head_is_left_alone(setup):
    model, _, batches = setup
    ranges = input_ranges(model, batches)
    copy = smoothed(model, ranges, alpha=0.5)
    attention = copy.bert.encoder.layer[0].attention.self
    prefix = "bert.encoder.layer.0.attention.self"
    assert f"{prefix}.query|{prefix}.key|{prefix}.value" in ranges
    assert attention.query.inverse is attention.key.inverse is attention.value.inverse
    assert not isinstance(copy.classifier, SmoothedLinear)
    assert not isinstance(copy.bert.pooler.dense, SmoothedLinear)
    assert not any(isinstance(module, SmoothedLinear) for module in model.modules())  # the original stays


def test_a_strength_outside_zero_to_one_is_refused(setup):
    model, _, batches = setup
    with pytest.raises(ValueError, match="alpha"):
        smoothed(model, input_ranges(model, batches), alpha=1.5)


def choose(setup, tmp_path, measures: dict, errors: dict | None):
    """`smoothing_strength` over fake graphs: each strength's files hold its name, and its measure and error
    are read from the tables given (four calibration rows, so half a row is 0.125)."""
    model, _, batches = setup
    reference = np.zeros((4, 2))
    strength_named = {str(alpha): alpha for alpha in SMOOTHING_STRENGTHS}

    def export(candidate, path):
        # The strength is in the name the search gives each export; the model must be smoothed at it.
        smoothed_model = isinstance(candidate.bert.encoder.layer[0].output.dense, SmoothedLinear)
        assert smoothed_model == (path.stem != "None")
        path.write_text(path.stem)
        return path

    def quantize(fp32, int8):
        int8.write_text(fp32.read_text())
        return int8

    scores = lambda path: strength_named[path.read_text()]  # noqa: E731
    chosen = smoothing_strength(
        model,
        input_ranges(model, batches),
        export=export,
        quantize=quantize,
        scores=scores,
        measure=lambda _reference, alpha: measures[alpha],
        reference=reference,
        folder=tmp_path / "graphs",
        error=None if errors is None else lambda _reference, alpha: errors[alpha],
    )
    written = {strength_named[(tmp_path / "graphs" / name).read_text()] for name in (FP32_FILE, INT8_FILE)}
    assert written == {chosen.alpha}
    return chosen


def test_without_an_error_the_first_of_the_best_strengths_wins(setup, tmp_path):
    measures = dict.fromkeys(SMOOTHING_STRENGTHS, 1.0) | {None: 0.9}
    assert choose(setup, tmp_path, measures, None).alpha == 0.5


def test_of_strengths_within_half_a_row_of_the_best_the_one_with_the_least_error_wins(setup, tmp_path):
    measures = {None: 1.0, 0.5: 0.75, 0.6: 0.9, 0.7: 0.8, 0.8: 0.999, 0.9: 0.95}
    errors = {None: 0.06, 0.5: 0.001, 0.6: 0.03, 0.7: 0.02, 0.8: 0.04, 0.9: 0.05}
    chosen = choose(setup, tmp_path, measures, errors)
    # 0.5 and 0.7 err least but measure more than half a row (0.125) under the best: they are not tied.
    assert chosen.alpha == 0.6
    assert chosen.measures == {str(alpha): value for alpha, value in measures.items()}
    assert chosen.errors == {str(alpha): value for alpha, value in errors.items()}
