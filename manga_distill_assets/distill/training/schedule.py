"""How long a supervised run may train, how often it is judged on validation and how long it warms up, all
scaled from the data instead of constants tuned to one set.

A user's labelled set may hold 5 or 150 intents and 20 or 2,000 texts per intent, so one epoch may be 3
optimiser steps or 10,000. Early stopping on validation decides when training ends; this module only makes
sure that (a) the cap leaves a fresh classification head enough updates per class to converge, (b) validation
runs often enough to stop near the best point on a large set and seldom enough to be more than noise on a
tiny one, and (c) warm-up is a short fraction of the run, not of a cap that is rarely reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_STEPS_PER_LABEL = 20
"""Optimiser steps the cap guarantees per class by default: a head over 150 classes needs more steps than
one over 5 (`TrainingConfig.min_steps_per_label`)."""
MIN_EVALUATION_INTERVAL = 20
"""Steps between validations on a tiny set, where one epoch is a few steps and its accuracy mostly noise."""
MAX_EVALUATION_INTERVAL = 500
"""Steps between validations on a large set, where one epoch would overshoot the best point by hours."""
WARMUP_FRACTION = 0.1


@dataclass(frozen=True)
class SupervisedSchedule:
    """`max_steps` is the cap (early stopping usually ends sooner); validation and checkpoints for picking the
    best model come every `evaluation_interval` steps; the learning rate warms up over `warmup_steps`."""

    steps_per_epoch: int
    max_steps: int
    evaluation_interval: int
    warmup_steps: int

    @property
    def max_epochs(self) -> float:
        return self.max_steps / self.steps_per_epoch


def supervised_schedule(
    num_texts: int,
    num_labels: int,
    batch_size: int,
    epochs_cap: float,
    min_steps_per_label: int = MIN_STEPS_PER_LABEL,
) -> SupervisedSchedule:
    """The schedule for `num_texts` training texts over `num_labels` classes at `batch_size` texts per
    optimiser step, with at least `epochs_cap` epochs and `min_steps_per_label` steps per class allowed."""
    if num_texts < 1 or num_labels < 1 or batch_size < 1 or epochs_cap <= 0:
        raise ValueError(
            f"supervised_schedule needs positive sizes, got {num_texts} texts, {num_labels} labels, "
            f"batch size {batch_size} and an epoch cap of {epochs_cap}."
        )
    steps_per_epoch = math.ceil(num_texts / batch_size)
    max_steps = max(math.ceil(epochs_cap * steps_per_epoch), min_steps_per_label * num_labels)
    interval = min(max(steps_per_epoch, MIN_EVALUATION_INTERVAL), MAX_EVALUATION_INTERVAL, max_steps)
    warmup = min(interval, math.ceil(WARMUP_FRACTION * max_steps))
    return SupervisedSchedule(
        steps_per_epoch=steps_per_epoch,
        max_steps=max_steps,
        evaluation_interval=interval,
        warmup_steps=warmup,
    )
