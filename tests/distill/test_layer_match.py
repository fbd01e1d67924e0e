"""Declarative layer maps: the uniform strategy, validation errors, and parsing from config entries."""

import pytest

from manga_distill_assets.distill.layer_match import (
    LayerMatch,
    parse_layer_matches,
    uniform_layer_map,
    validate_layer_matches,
)


def pairs(matches: list[LayerMatch], kind: str) -> list[tuple[int, int]]:
    return [(m.student_layer, m.teacher_layer) for m in matches if m.kind == kind]


def test_uniform_map_for_three_student_and_six_teacher_layers_is_the_design_example() -> None:
    matches = uniform_layer_map(3, 6)
    assert pairs(matches, "embeddings") == [(0, 0)]
    assert pairs(matches, "hidden") == [(1, 2), (2, 4), (3, 6)]
    assert pairs(matches, "attention") == [(1, 2), (2, 4), (3, 6)]


def test_uniform_map_for_four_student_and_six_teacher_layers_rounds_up() -> None:
    assert pairs(uniform_layer_map(4, 6), "hidden") == [(1, 2), (2, 3), (3, 5), (4, 6)]


def test_uniform_map_gives_every_match_weight_one() -> None:
    assert {m.weight for m in uniform_layer_map(2, 4)} == {1.0}


def test_uniform_map_passes_validation() -> None:
    validate_layer_matches(uniform_layer_map(4, 6), student_layers=4, teacher_layers=6)


@pytest.mark.parametrize(("student_layers", "teacher_layers"), [(0, 6), (7, 6)])
def test_uniform_map_needs_a_student_no_deeper_than_the_teacher(
    student_layers: int, teacher_layers: int
) -> None:
    with pytest.raises(ValueError, match="student_layers <= teacher_layers"):
        uniform_layer_map(student_layers, teacher_layers)


def test_empty_match_list_is_rejected() -> None:
    with pytest.raises(ValueError, match="No layer matches"):
        validate_layer_matches([], student_layers=2, teacher_layers=4)


@pytest.mark.parametrize(
    ("match", "message"),
    [
        (LayerMatch(3, 4, "hidden"), r"student layer must be in 1\.\.2"),
        (LayerMatch(0, 4, "hidden"), r"student layer must be in 1\.\.2"),
        (LayerMatch(1, 5, "attention"), r"teacher layer must be in 1\.\.4"),
        (LayerMatch(1, 0, "attention"), r"teacher layer must be in 1\.\.4"),
        (LayerMatch(0, 1, "embeddings"), "embeddings match is always student 0 → teacher 0"),
    ],
)
def test_out_of_range_layer_is_rejected_naming_the_match(match: LayerMatch, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        validate_layer_matches([match], student_layers=2, teacher_layers=4)
    assert f"student: {match.student_layer}, teacher: {match.teacher_layer}" in str(error.value)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"kind: 'value'.*kind must be one of"):
        validate_layer_matches([LayerMatch(1, 2, "value")], student_layers=2, teacher_layers=4)  # type: ignore[arg-type]


@pytest.mark.parametrize("weight", [-0.5, float("nan")])
def test_negative_or_nan_weight_is_rejected(weight: float) -> None:
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        validate_layer_matches([LayerMatch(1, 2, "hidden", weight)], student_layers=2, teacher_layers=4)


def test_zero_weight_is_allowed() -> None:
    validate_layer_matches([LayerMatch(1, 2, "hidden", 0.0)], student_layers=2, teacher_layers=4)


def test_crossed_map_within_a_kind_is_rejected() -> None:
    crossed = [LayerMatch(1, 4, "hidden"), LayerMatch(2, 2, "hidden")]
    with pytest.raises(ValueError, match=r"student: 2, teacher: 2.*'hidden' map is not monotone"):
        validate_layer_matches(crossed, student_layers=2, teacher_layers=4)


def test_two_student_layers_on_one_teacher_layer_are_rejected() -> None:
    shared_teacher = [LayerMatch(1, 3, "attention"), LayerMatch(2, 3, "attention")]
    with pytest.raises(ValueError, match="not monotone"):
        validate_layer_matches(shared_teacher, student_layers=2, teacher_layers=4)


def test_monotonicity_is_checked_per_kind_not_across_kinds() -> None:
    matches = [LayerMatch(1, 4, "hidden"), LayerMatch(2, 2, "attention")]
    validate_layer_matches(matches, student_layers=2, teacher_layers=4)


def test_order_of_the_list_does_not_matter() -> None:
    validate_layer_matches(list(reversed(uniform_layer_map(2, 4))), student_layers=2, teacher_layers=4)


def test_student_layer_matched_twice_within_a_kind_is_rejected() -> None:
    duplicated = [LayerMatch(1, 2, "hidden"), LayerMatch(1, 4, "hidden")]
    with pytest.raises(ValueError, match="student layer 1 is matched twice for kind 'hidden'"):
        validate_layer_matches(duplicated, student_layers=2, teacher_layers=4)


def test_parse_reads_config_entries_with_default_weight() -> None:
    spec = [
        {"student": 0, "teacher": 0, "kind": "embeddings"},
        {"student": 1, "teacher": 2, "kind": "hidden", "weight": 0.5},
        {"student": 1, "teacher": 2, "kind": "attention", "weight": 2},
    ]
    assert parse_layer_matches(spec) == [
        LayerMatch(0, 0, "embeddings", 1.0),
        LayerMatch(1, 2, "hidden", 0.5),
        LayerMatch(1, 2, "attention", 2.0),
    ]


def test_parse_rejects_missing_and_misspelt_keys_naming_the_entry() -> None:
    spec = [{"student": 0, "teacher": 0, "kind": "embeddings"}, {"student": 1, "kind": "hidden", "wieght": 1}]
    with pytest.raises(ValueError, match=r"#1 .*missing keys \['teacher'\], unknown keys \['wieght'\]"):
        parse_layer_matches(spec)


def test_parse_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match=r"#0 .*kind must be one of"):
        parse_layer_matches([{"student": 1, "teacher": 2, "kind": "hiden"}])


@pytest.mark.parametrize("layer", ["1", 1.0, True])
def test_parse_rejects_non_integer_layers(layer: object) -> None:
    with pytest.raises(ValueError, match="whole layer numbers"):
        parse_layer_matches([{"student": layer, "teacher": 2, "kind": "hidden"}])


def test_parse_rejects_a_non_numeric_weight() -> None:
    with pytest.raises(ValueError, match="weight must be a number"):
        parse_layer_matches([{"student": 1, "teacher": 2, "kind": "hidden", "weight": "high"}])


def test_parse_rejects_an_entry_that_is_not_a_mapping() -> None:
    with pytest.raises(ValueError, match="#0 must be a mapping"):
        parse_layer_matches([[1, 2, "hidden"]])  # type: ignore[list-item]
