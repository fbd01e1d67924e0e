"""int8 with a parity floor: which matmuls stay fp32, in what order, and when the search stops.

The search is driven through its two seams (quantise, logits) by a toy whose answers are written by hand: each
matmul, when quantised, flips the predictions of a known set of texts. tests/distill/test_student_export.py
runs it for real on a tiny exported model.
"""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from manga_distill_assets.distill.int8_fallback import (
    MARGIN_BUDGET,
    agreement,
    expected_agreement,
    margin_error,
    quantize_keeping_parity,
    weight_matmuls,
)

TEXTS = 20
REFERENCE = np.tile([[2.0, 0.0]], (TEXTS, 1))


def _graph_file(folder: Path, matmuls: list[str], wide: tuple[str, ...] = ()) -> Path:
    """Matmuls by stored weights (2 × 2, or 2 × 8 for those named `wide`), one matmul of two activations
    (not quantisable) and a head."""
    weights = [
        helper.make_tensor(f"w_{name}", TensorProto.FLOAT, [2, 8], [1.0] * 16)
        if name in wide
        else helper.make_tensor(f"w_{name}", TensorProto.FLOAT, [2, 2], [1, 0, 0, 1])
        for name in matmuls
    ]
    nodes = [helper.make_node("MatMul", ["x", f"w_{name}"], [f"y_{name}"], name=name) for name in matmuls]
    nodes.append(helper.make_node("MatMul", ["x", "x"], ["xx"], name="activations"))
    graph = helper.make_graph(
        nodes,
        "toy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("xx", TensorProto.FLOAT, [2, 2])],
        weights,
    )
    path = folder / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


class Toy:
    """Quantising matmul `name` flips the texts in `flips[name]`, the texts in `elsewhere` flip whatever is
    quantised; a written file remembers what it holds."""

    def __init__(self, flips: dict[str, set[int]], elsewhere: frozenset[int] = frozenset()) -> None:
        self.flips = flips
        self.elsewhere = elsewhere
        self.written: dict[Path, set[str]] = {}

    def quantize(self, source: Path, target: Path, keep: list[str], only: list[str] | None) -> Path:
        chosen = set(self.flips) if only is None else set(only)
        self.written[target] = chosen - set(keep)
        target.write_bytes(b"int8")
        return target

    def logits(self, path: Path) -> np.ndarray:
        quantised = self.written.get(path, set())
        flipped = set(self.elsewhere).union(*(self.flips[name] for name in quantised))
        logits = REFERENCE.copy()
        logits[sorted(flipped), 1] = 3.0
        return logits


def _search(
    tmp_path: Path, flips: dict[str, set[int]], floor: float, always=(), elsewhere=frozenset(), **options
):
    toy = Toy(flips, elsewhere)
    fp32 = _graph_file(tmp_path, list(flips), options.pop("wide", ()))
    target = tmp_path / "model_int8.onnx"
    choice = quantize_keeping_parity(
        fp32, target, REFERENCE, toy.logits, toy.quantize, floor=floor, always_fp32=always, **options
    )
    return choice, toy.written[target]


PHI_2 = 0.9772498680518208  # the standard normal CDF at 2, from a table


def test_identical_logits_are_expected_to_agree_everywhere():
    logits = np.array([[0.3, 0.1], [0.0, 4.0]])
    assert expected_agreement(logits, logits.copy()) == 1.0


def test_expected_agreement_is_the_normal_probability_that_the_error_stays_inside_each_margin():
    reference = np.array([[1.0, 0.0], [1.0, 0.0]])
    candidate = np.array([[0.5, 0.0], [1.5, 0.0]])  # margins move by -0.5 and +0.5: spread 0.5
    assert expected_agreement(reference, candidate) == pytest.approx(PHI_2)


def test_margin_error_is_the_rms_shift_of_each_texts_margin_over_its_reference_runner_up():
    reference = np.array([[1.0, 0.0, 0.5], [2.0, 0.0, 0.0]])  # margins 0.5 and 2.0
    candidate = np.array([[0.2, 0.0, 0.9], [2.0, 0.0, 0.0]])  # the first flips: its margin is now -0.7
    assert margin_error(reference, candidate) == pytest.approx(np.sqrt((1.2**2 + 0.0**2) / 2))


def test_a_near_tie_that_did_not_flip_still_counts_as_a_risk():
    reference = np.array([[0.1, 0.0], [5.0, 0.0]])
    candidate = np.array([[0.05, 0.0], [5.05, 0.0]])  # spread 0.05; the first margin is two spreads wide
    assert agreement(reference, candidate) == pytest.approx((PHI_2 + 1.0) / 2)


def test_only_matmuls_by_a_stored_weight_are_candidates(tmp_path):
    graph = onnx.load(str(_graph_file(tmp_path, ["q", "k", "head"]))).graph
    assert weight_matmuls(graph) == ["q", "k", "head"]
    assert weight_matmuls(graph, excluded=["head"]) == ["q", "k"]


def test_a_graph_that_already_agrees_keeps_every_matmul_int8(tmp_path):
    choice, quantised = _search(tmp_path, {"a": set(), "b": set()}, floor=0.95)
    assert choice.kept_fp32 == ()
    assert choice.agreement == choice.plain_agreement == 1.0
    assert quantised == {"a", "b"}


def test_a_plain_graph_the_caller_already_measured_is_neither_quantised_nor_scored_again(tmp_path):
    toy = Toy({"calm": set(), "loud": {0, 1, 2}})
    fp32 = _graph_file(tmp_path, list(toy.flips))
    target = toy.quantize(fp32, tmp_path / "model_int8.onnx", [], None)
    calls: list[tuple[tuple[str, ...], tuple[str, ...] | None]] = []

    def quantize(source: Path, to: Path, keep: list[str], only: list[str] | None) -> Path:
        calls.append((tuple(keep), None if only is None else tuple(only)))
        return toy.quantize(source, to, keep, only)

    choice = quantize_keeping_parity(fp32, target, REFERENCE, toy.logits, quantize, floor=0.95, plain=17 / 20)
    assert ((), None) not in calls  # the plain graph: every matmul int8
    assert choice.plain_agreement == 17 / 20
    assert choice.kept_fp32 == ("loud",)
    assert toy.written[target] == {"calm"}


def test_the_matmul_that_flips_most_stays_fp32_first_and_the_search_stops_at_the_floor(tmp_path):
    flips = {"calm": set(), "loud": {0, 1, 2}, "mild": {3}}
    choice, quantised = _search(tmp_path, flips, floor=0.95)
    assert choice.kept_fp32 == ("loud",)
    assert choice.plain_agreement == 16 / 20
    assert choice.agreement == 19 / 20
    assert quantised == {"calm", "mild"}


def test_a_cost_aware_search_hands_back_the_cheaper_matmul_that_moves_the_logits_less_per_weight(tmp_path):
    flips = {"wide": {0, 1}, "narrow": {2}}  # the wide weight moves twice the logits at four times the size
    plain, _ = _search(tmp_path, flips, floor=0.9, wide=("wide",))
    cost_aware, _ = _search(tmp_path, flips, floor=0.9, wide=("wide",), cost_aware=True)
    assert plain.kept_fp32 == ("wide",)
    assert cost_aware.kept_fp32 == ("narrow",)


def test_a_search_can_judge_parity_by_its_own_measure(tmp_path):
    def first_text_only(reference: np.ndarray, candidate: np.ndarray) -> float:
        return float(reference[0].argmax() == candidate[0].argmax())

    flips = {"a": {0}, "b": set()}
    by_default, _ = _search(tmp_path, flips, floor=0.95)  # one flip in 20 texts is within the floor
    by_first_text, _ = _search(tmp_path, flips, floor=1.0, measure=first_text_only)
    assert by_default.kept_fp32 == ()
    assert by_first_text.kept_fp32 == ("a",)


def _exact(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float((reference.argmax(axis=1) == candidate.argmax(axis=1)).all())


def _within_two_flips(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float((reference.argmax(axis=1) != candidate.argmax(axis=1)).sum() <= 2)


def test_past_the_margin_budget_the_fewest_matmuls_that_meet_the_fallback_are_kept(tmp_path):
    flips = {"a": {0, 1}, "b": {2}, "c": {3}}  # all int8: four flips; "a" moves the logits most
    assert MARGIN_BUDGET < 4 / 12  # keeping any one of the three 2 x 2 weights is past the budget
    strict, _ = _search(tmp_path, flips, floor=1.0, measure=_exact)
    assert set(strict.kept_fp32) == {"a", "b", "c"} and not strict.fell_back
    choice, quantised = _search(tmp_path, flips, floor=1.0, measure=_exact, fallback=_within_two_flips)
    assert choice.kept_fp32 == ("a",)
    assert choice.fell_back
    assert quantised == {"b", "c"}


def test_an_all_int8_graph_that_meets_the_fallback_stays_all_int8_rather_than_going_back_to_fp32(tmp_path):
    choice, quantised = _search(
        tmp_path, {"a": {0}, "b": {1}}, floor=1.0, measure=_exact, fallback=_within_two_flips
    )
    assert choice.kept_fp32 == ()
    assert choice.fell_back
    assert quantised == {"a", "b"}


def test_a_fallback_is_not_taken_where_the_measure_is_met_within_the_margin_budget(tmp_path):
    flips = {"a": {0, 1, 2}, "b": set(), "c": set(), "d": set(), "e": set()}
    wide = ("b", "c", "d", "e")
    assert MARGIN_BUDGET >= 4 / (4 + 4 * 16)  # keeping "a" (2 x 2) fits the budget
    choice, quantised = _search(
        tmp_path, flips, floor=1.0, measure=_exact, fallback=_within_two_flips, wide=wide
    )
    assert choice.kept_fp32 == ("a",)
    assert not choice.fell_back
    assert quantised == set(wide)


def test_matmuls_named_always_fp32_are_never_quantised_nor_counted(tmp_path):
    choice, quantised = _search(tmp_path, {"head": {0, 1, 2, 3}, "a": {5}}, floor=1.0, always=("head",))
    assert choice.quantizable == 1
    assert choice.kept_fp32 == ("a",)
    assert "head" not in quantised


def test_an_unreachable_floor_leaves_the_best_graph_found_and_says_how_far_it_got(tmp_path):
    choice, quantised = _search(tmp_path, {"a": {0}, "b": {1, 2}}, floor=1.0, elsewhere=frozenset({9}))
    assert choice.agreement == 19 / 20
    assert set(choice.kept_fp32) == {"a", "b"}
    assert quantised == set()
