"""Configuration mistakes fail before any work, naming the field; a missing upstream is reported first.

Dagster loads an asset's stored inputs, then builds its config (running the validators), then runs its body:
so a never-materialised upstream is named before a config mistake, and a config mistake before any model is
loaded or trained. The bounds that need the teacher are checked as soon as it is known: its depth (for
`teacher_layers`) from its config.json before its weights load, and its test accuracy (a retention floor
above 1 / accuracy can never pass) before any other model of the report is scored or timed.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from pydantic import ValidationError

from manga_distill_assets.assets.intent_classifier.config import (
    EvalConfig,
    StudentShape,
    TrainingKnobs,
)
from tests.assets.harness import Graph
from tests.assets.test_production_graph import failure_message, labels_of, registered_teacher, run


@pytest.mark.parametrize(
    ("config_class", "values", "field"),
    [
        (StudentShape, {"num_layers": 0}, "num_layers"),
        (StudentShape, {"teacher_layers": []}, "teacher_layers"),
        (StudentShape, {"teacher_layers": [-1, 2]}, "teacher_layers"),
        (StudentShape, {"teacher_layers": [5, 2]}, "teacher_layers"),
        (StudentShape, {"hidden_size": 100, "num_heads": 6}, "multiple of num_heads"),
        (EvalConfig, {"retention_floor": -0.5}, "retention_floor"),
        (TrainingKnobs, {"learning_rate": 1e9}, "learning_rate"),
    ],
)
def test_an_impossible_value_is_refused_naming_the_field(config_class, values, field) -> None:
    with pytest.raises(ValidationError, match=field):
        config_class(**values)


def test_a_retention_floor_no_student_can_reach_is_refused_naming_the_ceiling() -> None:
    with pytest.raises(dg.Failure) as raised:
        EvalConfig(retention_floor=5).check_floor_reachable(teacher_accuracy=0.8)

    assert raised.value.description.startswith(
        "retention_floor=5 cannot be met: the teacher scores 0.800 on the test split, so even a perfect "
        "student retains 1.250."
    )


def test_a_retention_floor_above_1_is_kept_where_a_perfect_student_reaches_it() -> None:
    EvalConfig(retention_floor=1.2).check_floor_reachable(teacher_accuracy=0.8)


def materialize(graph: Graph, key: str, config: dict) -> dg.ExecuteInProcessResult:
    """Run config as a user writes it in the launchpad or a YAML file, not as a validated object."""
    return dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets(key),
        instance=graph.instance,
        resources=graph.resources,
        run_config={"ops": {key: {"config": config}}},
        raise_on_error=False,
    )


def test_a_learning_rate_of_1e9_fails_the_teacher_before_it_trains(tmp_path: Path) -> None:
    graph = Graph(tmp_path)
    assert run(graph, "labeled_intents").success
    config = {"max_train_examples": 20, "training": {"learning_rate": 1e9, "epochs": 0.1, "max_length": 16}}

    result = materialize(graph, "teacher_model", config)

    assert "learning_rate" in failure_message(result)
    assert not any(event.is_step_success for event in result.all_events)
    assert graph.data_version("teacher_model") is None


def test_teacher_layers_beyond_the_teacher_fail_naming_the_field_and_the_depth(tmp_path: Path) -> None:
    graph = Graph(tmp_path)
    teacher = registered_teacher(tmp_path, labels_of(graph), seed=0)
    assert run(graph, "teacher_model", config=teacher).success

    config = {"base_model": teacher.registered_checkpoint, "student": {"teacher_layers": [0, 99]}}

    message = failure_message(materialize(graph, "baseline_student", config))

    assert "student.teacher_layers=[0, 99]: layers [99] do not exist, the teacher has 4 layers" in message
    assert graph.data_version("baseline_student") is None


def test_a_missing_upstream_is_named_before_the_assets_own_config_mistake(tmp_path: Path) -> None:
    graph = Graph(tmp_path)
    config = {"student": {"teacher_layers": [99]}, "training": {"learning_rate": 1e9}}

    message = failure_message(materialize(graph, "student_stage1", config))

    assert "Nothing is stored for" in message and "first." in message
    assert "learning_rate" not in message and "teacher_layers" not in message
