"""Output distillation loss, checked against numpy computations written out by hand."""

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
import torch.nn.functional as F

from manga_distill_assets.distill.losses import (
    IGNORE_INDEX,
    OutputDistillation,
    check_finite_loss,
    distillation_loss,
    distillation_terms,
    soften,
    unchecked_distillation_terms,
)

DESIGN_TEACHER_LOGITS = [5.2, 2.1, 1.8, 0.3, -1.5, -2.0, -2.4, -3.1, -3.5, -4.0]

# temperature: (top-1 probability, entropy in nats, entropy in bits) of softmax(DESIGN_TEACHER_LOGITS / T),
# derived once by hand with numpy and checked below against SciPy's softmax and entropy. The planning
# document's rounded figures mixed nats and bits; these are the exact values in both units (the maximum, for
# 10 classes, is ln 10 = 2.302585 nats = log2 10 = 3.321928 bits).
SOFTENED_DESIGN_LOGITS = {
    1.0: (0.9183891, 0.3711916, 0.5355163),
    2.0: (0.6231590, 1.295323, 1.868756),
    4.0: (0.3307452, 2.004011, 2.891177),
    8.0: (0.1957464, 2.231276, 3.219050),
    20.0: (0.1330044, 2.291973, 3.306618),
}


def numpy_log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def numpy_distillation_loss(
    student: np.ndarray, teacher: np.ndarray, labels: np.ndarray, temperature: float, alpha: float
) -> float:
    batch = student.shape[0]
    student_log_probs = numpy_log_softmax(student / temperature)
    teacher_log_probs = numpy_log_softmax(teacher / temperature)
    kl = (np.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs)).sum() / batch
    labelled = np.flatnonzero(labels != IGNORE_INDEX)
    log_probs = numpy_log_softmax(student)
    cross_entropy = -log_probs[labelled, labels[labelled]].mean() if labelled.size else 0.0
    return (1 - alpha) * cross_entropy + alpha * temperature**2 * kl


def random_batch(seed: int, batch: int = 5, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, classes, generator=generator, dtype=torch.float64) * 3
    teacher = torch.randn(batch, classes, generator=generator, dtype=torch.float64) * 3
    return student, teacher


@pytest.mark.parametrize("temperature", sorted(SOFTENED_DESIGN_LOGITS))
def test_fixture_table_is_what_scipy_computes(temperature: float) -> None:
    probs = scipy.special.softmax(np.asarray(DESIGN_TEACHER_LOGITS, dtype=np.float64) / temperature)
    expected = (probs.max(), scipy.stats.entropy(probs), scipy.stats.entropy(probs, base=2))
    assert SOFTENED_DESIGN_LOGITS[temperature] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("temperature", sorted(SOFTENED_DESIGN_LOGITS))
def test_soften_gives_the_design_logits_top1_probability_and_entropy(temperature: float) -> None:
    probs = soften(torch.tensor(DESIGN_TEACHER_LOGITS, dtype=torch.float64), temperature)
    entropy_nats = float(-(probs * probs.log()).sum())
    top1, expected_nats, expected_bits = SOFTENED_DESIGN_LOGITS[temperature]
    assert float(probs.max()) == pytest.approx(top1, rel=1e-6)
    assert entropy_nats == pytest.approx(expected_nats, rel=1e-6)
    assert entropy_nats / math.log(2) == pytest.approx(expected_bits, rel=1e-6)


def test_soften_sums_to_one_over_the_last_dimension() -> None:
    probs = soften(torch.randn(3, 7), temperature=4.0)
    assert torch.allclose(probs.sum(dim=-1), torch.ones(3))


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.nan])
def test_soften_rejects_a_non_positive_temperature(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        soften(torch.randn(2, 3), temperature)


@pytest.mark.parametrize(("temperature", "alpha"), [(1.0, 0.5), (2.0, 0.3), (4.0, 0.7), (8.0, 0.9)])
def test_loss_matches_a_numpy_computation(temperature: float, alpha: float) -> None:
    student, teacher = random_batch(seed=int(temperature * 10))
    labels = torch.tensor([3, IGNORE_INDEX, 0, 9, 4])
    expected = numpy_distillation_loss(student.numpy(), teacher.numpy(), labels.numpy(), temperature, alpha)
    loss = distillation_loss(student, teacher, labels, OutputDistillation(temperature, alpha))
    assert float(loss) == pytest.approx(expected, rel=1e-10)


def test_bf16_logits_give_fp32_terms_computed_on_their_exact_values() -> None:
    student, teacher = random_batch(seed=7)
    student, teacher = student.to(torch.bfloat16), teacher.to(torch.bfloat16)
    labels = torch.tensor([3, IGNORE_INDEX, 0, 9, 4])
    expected = numpy_distillation_loss(
        student.double().numpy(), teacher.double().numpy(), labels.numpy(), 4.0, 0.7
    )
    loss = distillation_loss(student, teacher, labels)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_default_temperature_and_alpha_are_four_and_point_seven() -> None:
    assert OutputDistillation() == OutputDistillation(temperature=4.0, alpha=0.7)
    student, teacher = random_batch(seed=1)
    labels = torch.tensor([1, 2, 3, 4, 5])
    expected = numpy_distillation_loss(student.numpy(), teacher.numpy(), labels.numpy(), 4.0, 0.7)
    assert float(distillation_loss(student, teacher, labels)) == pytest.approx(expected, rel=1e-10)


def test_alpha_zero_is_plain_cross_entropy() -> None:
    student, teacher = random_batch(seed=2)
    labels = torch.tensor([1, 0, 7, 7, 2])
    loss = distillation_loss(student, teacher, labels, OutputDistillation(4.0, 0.0))
    assert torch.allclose(loss, F.cross_entropy(student, labels))


def test_alpha_one_is_temperature_squared_kl() -> None:
    student, teacher = random_batch(seed=3)
    labels = torch.tensor([1, 0, 7, 7, 2])
    temperature = 3.0
    p_teacher = soften(teacher, temperature)
    p_student = soften(student, temperature)
    kl = float((p_teacher * (p_teacher.log() - p_student.log())).sum(dim=-1).mean())
    loss = distillation_loss(student, teacher, labels, OutputDistillation(temperature, 1.0))
    assert float(loss) == pytest.approx(temperature**2 * kl, rel=1e-10)


def test_unlabelled_rows_leave_cross_entropy_to_the_labelled_rows() -> None:
    student, teacher = random_batch(seed=4)
    labels = torch.tensor([IGNORE_INDEX, 2, IGNORE_INDEX, 5, 8])
    labelled = labels != IGNORE_INDEX
    terms = distillation_terms(student, teacher, labels)
    assert torch.allclose(terms.hard, F.cross_entropy(student[labelled], labels[labelled]))


def test_unlabelled_rows_still_count_in_the_kd_term() -> None:
    student, teacher = random_batch(seed=5)
    unlabelled = torch.full((5,), IGNORE_INDEX)
    labelled = torch.tensor([0, 1, 2, 3, 4])
    assert torch.equal(
        distillation_terms(student, teacher, unlabelled).soft,
        distillation_terms(student, teacher, labelled).soft,
    )


def test_total_is_alpha_weighted_sum_of_terms_without_renormalising() -> None:
    student, teacher = random_batch(seed=6)
    labels = torch.tensor([IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 8])
    terms = distillation_terms(student, teacher, labels, OutputDistillation(2.0, 0.25))
    assert torch.allclose(terms.total, 0.75 * terms.hard + 0.25 * terms.soft)


def test_all_unlabelled_batch_is_finite_and_still_trains_the_student() -> None:
    student, teacher = random_batch(seed=7)
    student.requires_grad_(True)
    terms = distillation_terms(student, teacher, torch.full((5,), IGNORE_INDEX))
    terms.total.backward()
    assert float(terms.hard.detach()) == 0.0
    assert torch.isfinite(terms.total)
    assert student.grad is not None and torch.isfinite(student.grad).all()
    assert student.grad.abs().sum() > 0


@pytest.mark.parametrize("temperature", [1.0, 4.0, 10.0])
def test_kd_gradient_is_temperature_times_probability_gap_over_batch(temperature: float) -> None:
    student, teacher = random_batch(seed=8)
    student.requires_grad_(True)
    labels = torch.zeros(5, dtype=torch.long)
    distillation_loss(student, teacher, labels, OutputDistillation(temperature, 1.0)).backward()
    p_student = torch.from_numpy(np.exp(numpy_log_softmax(student.detach().numpy() / temperature)))
    p_teacher = torch.from_numpy(np.exp(numpy_log_softmax(teacher.numpy() / temperature)))
    expected = temperature * (p_student - p_teacher) / student.shape[0]
    assert torch.allclose(student.grad, expected, atol=1e-6, rtol=0)


def test_no_gradient_flows_into_the_teacher() -> None:
    student, teacher = random_batch(seed=9)
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    distillation_loss(student, teacher, torch.zeros(5, dtype=torch.long)).backward()
    assert teacher.grad is None


def test_identical_logits_give_zero_kd() -> None:
    student, _ = random_batch(seed=10)
    terms = distillation_terms(student, student.clone(), torch.zeros(5, dtype=torch.long))
    assert float(terms.soft) == pytest.approx(0.0, abs=1e-12)


def test_mismatched_logit_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="teacher_logits shape"):
        distillation_loss(torch.randn(4, 10), torch.randn(4, 9), torch.zeros(4, dtype=torch.long))


def test_labels_of_the_wrong_length_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"labels must have shape \[4\]"):
        distillation_loss(torch.randn(4, 10), torch.randn(4, 10), torch.zeros(3, dtype=torch.long))


def test_logits_without_a_batch_dimension_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[batch, classes\]"):
        distillation_loss(torch.randn(10), torch.randn(10), torch.zeros(1, dtype=torch.long))


def test_float_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="integer class indices"):
        distillation_loss(torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0.0, 1.0]))


def test_labels_outside_the_label_map_are_rejected_by_row() -> None:
    with pytest.raises(ValueError, match=r"rows \[1, 2\] hold \[3, -5\]"):
        distillation_loss(torch.randn(3, 3), torch.randn(3, 3), torch.tensor([0, 3, -5]))


@pytest.mark.parametrize("temperature", [0.0, -2.0])
def test_output_distillation_rejects_a_non_positive_temperature(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        OutputDistillation(temperature=temperature)


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_output_distillation_rejects_alpha_outside_zero_one(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        OutputDistillation(alpha=alpha)


def test_nan_in_teacher_logits_is_rejected_naming_the_row() -> None:
    teacher = torch.randn(3, 4)
    teacher[2, 1] = math.nan
    with pytest.raises(ValueError, match=r"teacher_logits contain NaN or infinite values in rows \[2\]"):
        distillation_loss(torch.randn(3, 4), teacher, torch.zeros(3, dtype=torch.long))


def test_nan_in_student_logits_is_rejected() -> None:
    student = torch.randn(3, 4)
    student[0, 0] = math.nan
    with pytest.raises(ValueError, match="student_logits"):
        distillation_loss(student, torch.randn(3, 4), torch.zeros(3, dtype=torch.long))


def test_overflowing_term_is_named_by_the_nan_guard() -> None:
    student = torch.tensor([[3e38, -3e38]])
    with pytest.raises(ValueError, match=r"hard \(cross-entropy\) term .* became inf"):
        distillation_loss(student, torch.zeros(1, 2), torch.tensor([1]), OutputDistillation(alpha=0.5))


def test_the_unchecked_terms_are_the_checked_terms_without_the_checks() -> None:
    student, teacher = random_batch(seed=11)
    labels = torch.tensor([0, IGNORE_INDEX, 2, 1, IGNORE_INDEX])
    output = OutputDistillation(temperature=2.0, alpha=0.4)
    checked = distillation_terms(student, teacher, labels, output)
    unchecked = unchecked_distillation_terms(student, teacher, labels, output)
    for name in ("total", "hard", "soft"):
        assert torch.equal(getattr(checked, name), getattr(unchecked, name))


def test_the_per_step_nan_guard_names_the_step_and_the_value() -> None:
    with pytest.raises(ValueError, match=r"The stage-2 distillation loss became nan"):
        check_finite_loss(torch.tensor(math.nan), "stage-2 distillation")


def test_a_finite_loss_passes_the_per_step_nan_guard() -> None:
    check_finite_loss(torch.tensor(0.25), "stage-2 distillation")
