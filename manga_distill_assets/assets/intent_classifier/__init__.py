"""Target 1, the intent classifier: teacher, paraphrases, soft labels, two distillation stages, a baseline,
the ONNX export and the evaluation report, fed by the shared `queries` and `labeled` inputs."""

MODEL_ASSETS = (
    "teacher_model",
    "claude_paraphrases",
    "teacher_soft_labels",
    "student_stage1",
    "student_stage2",
    "baseline_student",
    "baseline_student_teacher_init",
    "student_onnx",
    "eval_report",
)
"""This target's assets (its Dagster group), in an order that materialises each after its inputs; tests,
benchmarks and scripts select the target by this tuple."""
