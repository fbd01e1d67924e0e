"""The reranker's distillation losses: Margin-MSE over score margins, and a listwise KL at a temperature.

Scores come as (queries × candidates) with column 0 the query's positive (the candidate the teacher scores
highest) and the other columns its negatives. Margin-MSE (Hofstätter et al., 2020) matches the *differences*
s(q, pos) − s(q, neg) rather than raw scores: a cross-encoder's scores have no fixed scale, and a student of
another size cannot reproduce the teacher's offset, only its ordering and spacing. The listwise term
matches the whole list's softmax at temperature T (scaled by T², so its gradient keeps its size as T grows,
as in `distill.losses.distillation_loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from manga_distill_assets.distill.losses import at_least_fp32


def margin_mse(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean squared error between student and teacher margins of column 0 over every other column."""
    _check(student, teacher)
    student_margins = student[:, :1] - student[:, 1:]
    teacher_margins = teacher[:, :1] - teacher[:, 1:]
    return F.mse_loss(student_margins, teacher_margins.detach())


def listwise_kl(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """T² · KL(softmax(teacher/T) ‖ softmax(student/T)) over each query's candidates, mean over queries."""
    _check(student, teacher)
    if temperature <= 0:
        raise ValueError(f"The listwise temperature must be positive, got {temperature}.")
    target = F.log_softmax(teacher.detach() / temperature, dim=1)
    predicted = F.log_softmax(student / temperature, dim=1)
    return F.kl_div(predicted, target, reduction="batchmean", log_target=True) * temperature**2


def ranking_distillation_loss(
    student: Tensor, teacher: Tensor, listwise_weight: float = 0.0, temperature: float = 1.0
) -> tuple[Tensor, dict[str, Tensor]]:
    """Margin-MSE plus `listwise_weight` × the listwise KL; the total and each term (for logging).

    The terms are computed in fp32 on the scores' exact values whatever precision they come in (bf16 under
    autocast), as `distillation_loss`'s are: squared errors and a softmax summed in bf16 keep 8 bits."""
    if listwise_weight < 0:
        raise ValueError(f"listwise_weight must be 0 or more, got {listwise_weight}.")
    student, teacher = at_least_fp32(student), at_least_fp32(teacher)
    terms = {"margin_mse": margin_mse(student, teacher)}
    total = terms["margin_mse"]
    if listwise_weight:
        terms["listwise_kl"] = listwise_kl(student, teacher, temperature)
        total = total + listwise_weight * terms["listwise_kl"]
    if not torch.isfinite(total):
        raise FloatingPointError(f"The ranking loss is not finite ({total.item()}): lower the learning rate.")
    return total, terms


def _check(student: Tensor, teacher: Tensor) -> None:
    if student.shape != teacher.shape or student.ndim != 2 or student.shape[1] < 2:
        raise ValueError(
            "Ranking losses take (queries × candidates) scores with at least a positive and a negative per "
            f"query, the same shape for student and teacher; got {tuple(student.shape)} and "
            f"{tuple(teacher.shape)}."
        )
