"""Target 1, the intent classifier: a teacher (supervised, then refined on its own soft labels), paraphrases,
soft labels, two distillation stages, two baselines, the ONNX export and the evaluation report, fed by the
shared `queries` and `labeled` inputs."""

MODEL_ASSETS = (
    "teacher_model",
    "claude_paraphrases",
    "teacher_soft_labels",
    "teacher_refined",
    "refined_soft_labels",
    "student_stage1",
    "student_stage2",
    "baseline_student",
    "baseline_student_teacher_init",
    "student_onnx",
    "eval_report",
)
"""This target's assets (its Dagster group), in an order that materialises each after its inputs; tests,
benchmarks and scripts select the target by this tuple."""
