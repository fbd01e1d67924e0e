"""The quality gate's verdicts, on hand-written reports: each reason to refuse a run, and what it says."""

from manga_distill_assets.assets.intent_classifier.evaluation import (
    TEACHER_NOT_BEST,
    gate_problems,
    teacher_is_best,
)


def report(teacher=0.90, baseline=0.85, retention=0.99, int8_agreement=0.999) -> dict:
    return {
        "validation_accuracy": {"teacher": teacher, "baseline": baseline},
        "validation_loss": {"teacher": 0.30, "baseline": 0.40},
        "teacher_is_best": teacher > baseline,
        "retention": retention,
        "test_rows": 280,
        "student_onnx_fp32": {"parity": {"agreement": 1.0, "floor": 0.995, "passed": True}},
        "student_onnx_int8": {
            "parity": {"agreement": int8_agreement, "floor": 0.995, "passed": int8_agreement >= 0.995}
        },
    }


def test_a_teacher_more_accurate_on_validation_is_the_best_whatever_its_loss():
    assert teacher_is_best({"teacher": 0.91, "baseline": 0.90}, {"teacher": 0.5, "baseline": 0.1})


def test_a_teacher_less_accurate_but_with_lower_cross_entropy_is_not_dominated():
    assert teacher_is_best({"teacher": 0.79, "baseline": 0.81}, {"teacher": 0.65, "baseline": 0.85})


def test_a_baseline_at_least_as_good_on_accuracy_and_cross_entropy_beats_the_teacher():
    assert not teacher_is_best({"teacher": 0.89, "baseline": 0.90}, {"teacher": 0.5, "baseline": 0.4})
    assert not teacher_is_best({"teacher": 0.555, "baseline": 0.867}, {"teacher": 1.6, "baseline": 0.5})
    assert not teacher_is_best({"teacher": 0.90, "baseline": 0.90}, {"teacher": 0.25, "baseline": 0.25})


def test_at_equal_accuracy_the_lower_cross_entropy_wins():
    assert teacher_is_best({"teacher": 0.90, "baseline": 0.90}, {"teacher": 0.20, "baseline": 0.25})
    assert not teacher_is_best({"teacher": 0.90, "baseline": 0.90}, {"teacher": 0.25, "baseline": 0.20})


def test_a_teacher_not_ahead_with_no_recorded_loss_is_not_the_best():
    assert not teacher_is_best({"teacher": 0.90, "baseline": 0.90}, {})
    assert not teacher_is_best({"teacher": 0.89, "baseline": 0.90}, {"baseline": 0.5})


def test_a_good_run_passes_with_no_problem():
    assert gate_problems(report(), retention_floor=0.95) == []


def test_a_weaker_teacher_fails_the_gate_saying_distillation_cannot_help_and_what_to_change():
    (problem,) = gate_problems(report(teacher=0.555, baseline=0.867), retention_floor=0.95)
    assert problem.startswith(
        "The teacher is weaker than a 2-layer model trained on the labels; distillation cannot help."
    )
    assert "head_learning_rate" in problem
    assert "teacher 0.5550, baseline 0.8670; cross-entropy: teacher 0.3000, baseline 0.4000" in problem
    assert TEACHER_NOT_BEST in problem


def test_the_weak_teacher_check_can_be_left_out():
    assert gate_problems(report(teacher=0.5, baseline=0.8), 0.95, require_best_teacher=False) == []


def test_low_retention_fails_the_gate_naming_the_floor():
    (problem,) = gate_problems(report(retention=0.90), retention_floor=0.95)
    assert "keeps 0.900 of the teacher's accuracy, under the floor 0.95" in problem


def test_a_failed_int8_parity_says_that_graph_must_not_be_served_and_how_many_texts_changed():
    (problem,) = gate_problems(report(int8_agreement=278 / 280), retention_floor=0.95)
    assert problem.startswith("student_onnx_int8 must not be served")
    assert "0.9929" in problem
    assert "2 of 280 test texts changed class, the floor allows 1" in problem
