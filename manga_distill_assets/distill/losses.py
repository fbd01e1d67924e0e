"""Output distillation: the stage-2 loss that teaches the student the teacher's softened class distribution.

    loss = (1 - α) · CE(student, labels) + α · T² · KL(softmax(teacher / T) ‖ softmax(student / T))

The T² factor (Hinton et al., 2015) keeps the soft term's gradient on the same scale as the hard term's when T
changes, so α keeps meaning the same thing at any temperature.

Two published implementations differ from this on purpose:

- TinyBERT's reference code drops both T² and the hard-label term; its numbers are not comparable to ours.
- torchdistill's α weights the cross-entropy term; here α weights the distillation (KL) term, as DistilBERT's.

The teacher's logits are a fixed target: no gradient flows into them.

T and α travel together as one validated `OutputDistillation`, whose defaults are the only place the default
temperature and weight are written. `distillation_terms` checks its inputs for callers that have not; the
training loops validate their data once before training and call `unchecked_distillation_terms` per batch,
keeping one cheap finiteness check of the loss (`check_finite_loss`) instead of five host syncs per step.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = -100
"""Label of a row with no hard label (an unlabeled customer query): it takes part in the KL term only."""


def soften(logits: Tensor, temperature: float) -> Tensor:
    """Class probabilities at a temperature: a higher T spreads mass onto the teacher's runner-up classes."""
    _check_temperature(temperature)
    return torch.softmax(logits / temperature, dim=-1)


def _check_temperature(temperature: float) -> None:
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"temperature must be a finite number > 0, got {temperature!r}; "
            f"{OutputDistillation.temperature} is the default."
        )


def _check_alpha(alpha: float) -> None:
    if not (0.0 <= alpha <= 1.0):
        raise ValueError(
            f"alpha must be in [0, 1] (the weight of the distillation term), got {alpha!r}; "
            f"{OutputDistillation.alpha} is the default."
        )


@dataclass(frozen=True)
class OutputDistillation:
    """The two knobs of output distillation: the softening temperature T and the weight α of the T²·KL term
    (1 - α weighs the cross-entropy). Checked once, when made."""

    temperature: float = 4.0
    alpha: float = 0.7

    def __post_init__(self) -> None:
        _check_temperature(self.temperature)
        _check_alpha(self.alpha)


DEFAULT_OUTPUT_DISTILLATION = OutputDistillation()


@dataclass(frozen=True)
class DistillationTerms:
    """The loss and its two parts, so training can log each part on its own.

    `hard` is the cross-entropy over labelled rows; `soft` is T²·KL with batch-mean reduction over all rows;
    `total` = (1 - α)·hard + α·soft.
    """

    total: Tensor
    hard: Tensor
    soft: Tensor


def distillation_terms(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    output: OutputDistillation = DEFAULT_OUTPUT_DISTILLATION,
) -> DistillationTerms:
    """Hard, soft and total distillation loss for a batch of `[B, C]` logits and `[B]` labels.

    Rows labelled `IGNORE_INDEX` (-100) have no hard label. They contribute nothing to the cross-entropy,
    which is the mean over labelled rows only (and 0, still differentiable, when no row is labelled). They
    still count fully in the KL term, whose batch mean runs over all B rows, and α still scales that term for
    them. Nothing is renormalised: a batch with many unlabelled rows keeps the same α split as any other.

    Raises ValueError for mismatched shapes, labels outside `[0, C)` other than -100, non-finite logits, or
    a term that overflows to a non-finite value (T and α were checked when `output` was made).
    """
    _check_shapes(student_logits, teacher_logits, labels)
    _check_finite_logits("student_logits", student_logits)
    _check_finite_logits("teacher_logits", teacher_logits)
    _check_label_values(labels, num_classes=student_logits.shape[1])

    terms = unchecked_distillation_terms(student_logits, teacher_logits, labels, output)
    _check_finite_term("hard (cross-entropy)", terms.hard, student_logits, teacher_logits)
    _check_finite_term("soft (T²·KL)", terms.soft, student_logits, teacher_logits)
    return terms


def unchecked_distillation_terms(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    output: OutputDistillation = DEFAULT_OUTPUT_DISTILLATION,
) -> DistillationTerms:
    """`distillation_terms` without its input checks and without a host sync: for training loops that
    validated their data once before training and check the loss with `check_finite_loss`.

    The terms are computed in fp32 whatever precision the logits come in: under bf16 autocast a log-softmax
    keeps 8 bits of mantissa, too few for a KL between two nearly equal distributions."""
    student_logits, teacher_logits = at_least_fp32(student_logits), at_least_fp32(teacher_logits)
    hard = _labelled_cross_entropy(student_logits, labels)
    soft = _scaled_kl(student_logits, teacher_logits.detach(), output.temperature)
    total = (1.0 - output.alpha) * hard + output.alpha * soft
    return DistillationTerms(total=total, hard=hard, soft=soft)


def at_least_fp32(tensor: Tensor) -> Tensor:
    """bf16 and fp16 become fp32; fp32 and fp64 stay as they are."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def check_finite_loss(loss: Tensor, step: str) -> None:
    """The per-step NaN guard: one host sync, before a non-finite loss silently ruins the weights."""
    if not torch.isfinite(loss):
        raise ValueError(
            f"The {step} loss became {loss.item()}. Logits that large overflow; lower the learning rate or "
            "check the teacher's stored logits."
        )


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    output: OutputDistillation = DEFAULT_OUTPUT_DISTILLATION,
) -> Tensor:
    """(1 - α)·CE + α·T²·KL; see `distillation_terms` for how unlabelled (-100) rows are treated."""
    return distillation_terms(student_logits, teacher_logits, labels, output).total


def _labelled_cross_entropy(student_logits: Tensor, labels: Tensor) -> Tensor:
    """Sum-then-divide instead of reduction="mean", which returns NaN when every row is unlabelled."""
    labelled_rows = (labels != IGNORE_INDEX).sum().clamp_min(1)
    summed = F.cross_entropy(student_logits, labels.long(), ignore_index=IGNORE_INDEX, reduction="sum")
    return summed / labelled_rows


def _scaled_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """T²·KL(teacher ‖ student), both sides in log space so that near-zero probabilities stay exact."""
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(student_log_probs, teacher_log_probs, reduction="batchmean", log_target=True)
    return temperature**2 * kl


def _check_shapes(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor) -> None:
    if student_logits.ndim != 2:
        raise ValueError(
            f"student_logits must have shape [batch, classes], got {tuple(student_logits.shape)}."
        )
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"teacher_logits shape {tuple(teacher_logits.shape)} does not match student_logits shape "
            f"{tuple(student_logits.shape)}; both models must score the same rows over the same label map."
        )
    if labels.shape != student_logits.shape[:1]:
        raise ValueError(
            f"labels must have shape [{student_logits.shape[0]}] (one per row, -100 for unlabelled), "
            f"got {tuple(labels.shape)}."
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}.")


def _check_finite_logits(name: str, logits: Tensor) -> None:
    bad_rows = (~torch.isfinite(logits)).any(dim=-1).nonzero().flatten().tolist()
    if bad_rows:
        raise ValueError(f"{name} contain NaN or infinite values in rows {bad_rows[:10]}.")


def _check_label_values(labels: Tensor, num_classes: int) -> None:
    out_of_range = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= num_classes))
    bad_rows = out_of_range.nonzero().flatten().tolist()
    if bad_rows:
        raise ValueError(
            f"labels must be class indices in [0, {num_classes}) or {IGNORE_INDEX} for unlabelled rows; "
            f"rows {bad_rows[:10]} hold {labels[bad_rows[:10]].tolist()}."
        )


def _check_finite_term(name: str, term: Tensor, student_logits: Tensor, teacher_logits: Tensor) -> None:
    """The NaN guard: stop before a non-finite loss silently ruins the student's weights."""
    if not torch.isfinite(term):
        largest_logit = max(student_logits.abs().max().item(), teacher_logits.abs().max().item())
        raise ValueError(
            f"The {name} term of the distillation loss became {term.item()} (largest |logit| in the batch: "
            f"{largest_logit:.3g}). Logits that large overflow; lower the learning rate or check the "
            f"teacher's stored logits."
        )
