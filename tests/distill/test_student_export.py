"""The student as a servable folder: int8 at the smoothing that keeps its predictions, then the search."""

import numpy as np
import pytest

from manga_distill_assets.distill.evaluation import predict_logits
from manga_distill_assets.distill.int8_fallback import agreement, margin_error
from manga_distill_assets.distill.onnx_export import (
    FP32_FILE,
    INT8_FILE,
    onnx_logits,
    open_session,
    read_int8_choice,
)
from manga_distill_assets.distill.smoothing import SMOOTHING_STRENGTHS
from manga_distill_assets.distill.student_export import Calibration, export_student
from tests.distill.tiny import TINY_TEXTS, tiny_teacher, tiny_tokenizer


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("student_export")
    tokenizer = tiny_tokenizer(tmp_path / "tokenizer")
    model = tiny_teacher(layers=2)
    texts = list(TINY_TEXTS[:12])
    reference = predict_logits(model, tokenizer, texts)
    calibration = Calibration(texts, reference, 1.0, activation_texts=list(TINY_TEXTS[12:]))
    folder = export_student(model, tokenizer, tmp_path / "student", calibration=calibration)
    return model, tokenizer, texts, reference, folder


def test_an_exported_student_reaches_the_floor_on_its_calibration_texts(exported):
    _, tokenizer, texts, reference, folder = exported
    choice = read_int8_choice(folder)
    assert choice["floor"] == 1.0
    assert choice["agreement"] == 1.0
    int8 = onnx_logits(open_session(folder / INT8_FILE), tokenizer, texts)
    assert (int8.argmax(axis=1) == reference.argmax(axis=1)).all()


def test_every_smoothing_strength_is_tried_and_the_graphs_are_exported_at_the_best(exported, tmp_path):
    model, tokenizer, texts, reference, _ = exported
    # A floor of 0 leaves the search nothing to do: the int8 graph is the chosen strength's all-int8 graph.
    folder = export_student(model, tokenizer, tmp_path, calibration=Calibration(texts, reference, 0.0))
    choice = read_int8_choice(folder)
    smoothing = choice["smoothing"]
    trials, errors = smoothing["agreement_by_alpha"], smoothing["margin_error_by_alpha"]
    assert set(trials) == set(errors) == {str(strength) for strength in SMOOTHING_STRENGTHS}
    half_a_text = 0.5 / len(texts)
    tied = [strength for strength, value in trials.items() if value >= max(trials.values()) - half_a_text]
    alpha = str(smoothing["alpha"])
    assert alpha == min(tied, key=errors.get)
    assert choice["kept_fp32"] == []
    int8 = onnx_logits(open_session(folder / INT8_FILE), tokenizer, texts)
    assert agreement(reference, int8) == pytest.approx(trials[alpha])
    assert margin_error(reference, int8) == pytest.approx(errors[alpha])


def test_the_smoothed_fp32_graph_still_scores_as_the_pytorch_student(exported):
    _, tokenizer, texts, reference, folder = exported
    fp32 = onnx_logits(open_session(folder / FP32_FILE), tokenizer, texts)
    assert np.abs(fp32 - reference).max() < 1e-4
