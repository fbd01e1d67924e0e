"""The reranker's distillation losses, checked against hand-computed values, numpy, the gradient formula and
sentence-transformers' own MarginMSELoss."""

import numpy as np
import pytest
import torch
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.cross_encoder.losses import MarginMSELoss

from manga_distill_assets.distill.artifacts import save_model
from manga_distill_assets.distill.ranking_losses import listwise_kl, margin_mse, ranking_distillation_loss
from tests.distill.tiny import tiny_teacher, tiny_tokenizer


def numpy_listwise_kl(student: np.ndarray, teacher: np.ndarray, temperature: float) -> float:
    def log_softmax(x: np.ndarray) -> np.ndarray:
        shifted = x - x.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    target, predicted = log_softmax(teacher / temperature), log_softmax(student / temperature)
    return float((np.exp(target) * (target - predicted)).sum() / len(student) * temperature**2)


def scores(seed: int, queries: int = 4, candidates: int = 5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(queries, candidates, generator=generator, dtype=torch.float64) * 3


def test_margin_mse_matches_margins_worked_out_by_hand():
    # student margins 3-1=2, 3-0=3; teacher margins 2-1=1, 2-(-1)=3: errors 1 and 0, mean 0.5
    student = torch.tensor([[3.0, 1.0, 0.0]])
    teacher = torch.tensor([[2.0, 1.0, -1.0]])
    assert margin_mse(student, teacher).item() == pytest.approx(0.5)


def test_margin_mse_ignores_a_constant_offset_between_student_and_teacher():
    teacher = scores(0)
    assert margin_mse(teacher + 7.5, teacher).item() == pytest.approx(0.0, abs=1e-12)


def test_margin_mse_equals_sentence_transformers_margin_mse_loss(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    folder = save_model(tiny_teacher(num_labels=1), tokenizer, tmp_path / "tiny_cross_encoder")
    cross_encoder = CrossEncoder(str(folder), activation_fn=torch.nn.Identity())
    query, docs = ["where is my order"], [["my package is late"], ["any good romance series"], ["refund"]]
    teacher = torch.tensor([[1.5, -0.5, 0.25]])
    reference = MarginMSELoss(cross_encoder)([query, *docs], teacher)
    with torch.no_grad():
        student = torch.tensor(
            [[cross_encoder.predict([(query[0], doc[0])])[0] for doc in docs]], dtype=torch.float32
        )
    assert margin_mse(student, teacher).item() == pytest.approx(reference.item(), rel=1e-5)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 4.0])
def test_listwise_kl_matches_numpy(temperature):
    student, teacher = scores(1), scores(2)
    expected = numpy_listwise_kl(student.numpy(), teacher.numpy(), temperature)
    assert listwise_kl(student, teacher, temperature).item() == pytest.approx(expected, rel=1e-10)


def test_listwise_kl_gradient_is_t_times_the_softmax_difference_over_queries():
    temperature = 3.0
    student, teacher = scores(3).requires_grad_(), scores(4)
    listwise_kl(student, teacher, temperature).backward()
    expected = (
        temperature
        * (torch.softmax(student.detach() / temperature, 1) - torch.softmax(teacher / temperature, 1))
        / len(student)
    )
    torch.testing.assert_close(student.grad, expected)


def test_combined_loss_weights_the_listwise_term():
    student, teacher = scores(5), scores(6)
    total, terms = ranking_distillation_loss(student, teacher, listwise_weight=0.3, temperature=2.0)
    expected = margin_mse(student, teacher) + 0.3 * listwise_kl(student, teacher, 2.0)
    assert total.item() == pytest.approx(expected.item())
    assert set(terms) == {"margin_mse", "listwise_kl"}
    assert set(ranking_distillation_loss(student, teacher)[1]) == {"margin_mse"}


def test_bf16_scores_give_fp32_terms_computed_on_their_exact_values():
    student, teacher = scores(8).to(torch.bfloat16), scores(9).to(torch.bfloat16)
    exact_student, exact_teacher = student.double().numpy(), teacher.double().numpy()
    margins = (exact_student[:, :1] - exact_student[:, 1:]) - (exact_teacher[:, :1] - exact_teacher[:, 1:])
    expected = (margins**2).mean() + 0.5 * numpy_listwise_kl(exact_student, exact_teacher, 2.0)

    total, terms = ranking_distillation_loss(student, teacher, listwise_weight=0.5, temperature=2.0)

    assert total.dtype == torch.float32
    assert all(term.dtype == torch.float32 for term in terms.values())
    assert total.item() == pytest.approx(expected, rel=1e-6)


def test_losses_refuse_mismatched_shapes_a_single_candidate_and_a_bad_temperature():
    with pytest.raises(ValueError, match="same shape"):
        margin_mse(scores(0, candidates=3), scores(0, candidates=4))
    with pytest.raises(ValueError, match="at least a positive and a negative"):
        margin_mse(scores(0, candidates=1), scores(0, candidates=1))
    with pytest.raises(ValueError, match="temperature must be positive"):
        listwise_kl(scores(0), scores(1), 0.0)
