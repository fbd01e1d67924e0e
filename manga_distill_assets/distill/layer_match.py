"""Declarative layer matches: which student layer learns from which teacher layer, and how much it counts.

A match list is data, not code, so a config file can change the layer map without touching the training loop.

Layer indices follow transformers' `hidden_states` numbering: 0 is the embedding output and i (1-based) is the
output of encoder layer i. For an attention match, layer i means `attentions[i - 1]`, the attention
probabilities inside encoder layer i.
"""

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

MatchKind = Literal["embeddings", "hidden", "attention"]
MATCH_KINDS: tuple[str, ...] = get_args(MatchKind)

_SPEC_KEYS = {"student", "teacher", "kind", "weight"}


@dataclass(frozen=True)
class LayerMatch:
    """One distillation target: `student_layer` imitates `teacher_layer` for one kind of representation."""

    student_layer: int
    teacher_layer: int
    kind: MatchKind
    weight: float = 1.0

    def describe(self) -> str:
        """How errors name this match, in the same words a config file uses."""
        return (
            f"{{student: {self.student_layer}, teacher: {self.teacher_layer}, kind: {self.kind!r}, "
            f"weight: {self.weight}}}"
        )


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[LayerMatch]:
    """TinyBERT's uniform strategy: student layer i learns from teacher layer ceil(i·Nt/Ns).

    The last student layer always meets the last teacher layer, and the others spread evenly below it: 3
    student / 6 teacher layers give 1→2, 2→4, 3→6. Each pair gets a hidden-state and an attention match,
    and the embeddings are matched 0→0.
    """
    if not 1 <= student_layers <= teacher_layers:
        raise ValueError(
            f"A uniform layer map needs 1 <= student_layers <= teacher_layers, got {student_layers} student "
            f"and {teacher_layers} teacher layers; give an explicit list of layer matches instead."
        )
    matches = [LayerMatch(0, 0, "embeddings")]
    for student_layer in range(1, student_layers + 1):
        teacher_layer = -(-student_layer * teacher_layers // student_layers)
        matches.append(LayerMatch(student_layer, teacher_layer, "hidden"))
        matches.append(LayerMatch(student_layer, teacher_layer, "attention"))
    return matches


def validate_layer_matches(matches: Sequence[LayerMatch], student_layers: int, teacher_layers: int) -> None:
    """Reject a layer map that cannot be trained, naming the first offending match.

    Within one kind the map must be one-to-one on the student side and order-preserving: if student layer a
    comes before b, its teacher layer must come strictly before b's. A crossed map asks shallow student layers
    to imitate deep teacher layers, which is almost always a typo in the config.
    """
    if not matches:
        raise ValueError("No layer matches given; stage 1 needs at least one (see uniform_layer_map).")
    for match in matches:
        _check_single_match(match, student_layers, teacher_layers)
    for kind in MATCH_KINDS:
        _check_order(sorted((m for m in matches if m.kind == kind), key=lambda m: m.student_layer))


def parse_layer_matches(spec: Iterable[Mapping[str, Any]]) -> list[LayerMatch]:
    """Layer matches from config entries like {"student": 1, "teacher": 2, "kind": "hidden", "weight": 1.0}.

    Checks each entry's keys and types; layer ranges need the model sizes, so `validate_layer_matches` checks
    them once the models are known.
    """
    return [_parse_entry(position, entry) for position, entry in enumerate(spec)]


def _parse_entry(position: int, entry: Mapping[str, Any]) -> LayerMatch:
    if not isinstance(entry, Mapping):
        raise ValueError(
            f"Layer match #{position} must be a mapping with keys student/teacher/kind, got {entry!r}."
        )
    where = f"Layer match #{position} {dict(entry)!r}"
    missing = sorted({"student", "teacher", "kind"} - entry.keys())
    unknown = sorted(entry.keys() - _SPEC_KEYS)
    if missing or unknown:
        raise ValueError(
            f"{where}: missing keys {missing}, unknown keys {unknown}; "
            f"the allowed keys are student, teacher, kind and (optional) weight."
        )
    student, teacher, kind = entry["student"], entry["teacher"], entry["kind"]
    weight = entry.get("weight", 1.0)
    if not (_is_int(student) and _is_int(teacher)):
        raise ValueError(f"{where}: student and teacher must be whole layer numbers.")
    if kind not in MATCH_KINDS:
        raise ValueError(f"{where}: kind must be one of {list(MATCH_KINDS)}.")
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise ValueError(f"{where}: weight must be a number.")
    return LayerMatch(student_layer=student, teacher_layer=teacher, kind=kind, weight=float(weight))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_single_match(match: LayerMatch, student_layers: int, teacher_layers: int) -> None:
    if match.kind not in MATCH_KINDS:
        raise ValueError(f"Layer match {match.describe()}: kind must be one of {list(MATCH_KINDS)}.")
    if not (math.isfinite(match.weight) and match.weight >= 0):
        raise ValueError(f"Layer match {match.describe()}: weight must be a finite number >= 0.")
    if match.kind == "embeddings":
        if (match.student_layer, match.teacher_layer) != (0, 0):
            raise ValueError(
                f"Layer match {match.describe()}: an embeddings match is always student 0 → teacher 0; "
                f"use kind 'hidden' to match encoder layers."
            )
        return
    if not 1 <= match.student_layer <= student_layers:
        raise ValueError(
            f"Layer match {match.describe()}: student layer must be in 1..{student_layers} "
            f"(the student has {student_layers} encoder layers; 0 is the embeddings kind)."
        )
    if not 1 <= match.teacher_layer <= teacher_layers:
        raise ValueError(
            f"Layer match {match.describe()}: teacher layer must be in 1..{teacher_layers} "
            f"(the teacher has {teacher_layers} encoder layers; 0 is the embeddings kind)."
        )


def _check_order(matches_by_student_layer: list[LayerMatch]) -> None:
    for earlier, later in itertools.pairwise(matches_by_student_layer):
        if later.student_layer == earlier.student_layer:
            raise ValueError(
                f"Layer match {later.describe()}: student layer {later.student_layer} is matched twice for "
                f"kind {later.kind!r} (also in {earlier.describe()}); keep one match per student layer."
            )
        if later.teacher_layer <= earlier.teacher_layer:
            raise ValueError(
                f"Layer match {later.describe()}: the {later.kind!r} map is not monotone; it comes after "
                f"{earlier.describe()} on the student side, so its teacher layer must be greater than "
                f"{earlier.teacher_layer}."
            )
