"""Whether two classifiers really differ on one test split, or only changed places by chance.

Accuracy on a few hundred texts moves in whole texts: one of the packaged demo's 302 test texts is 0.33
points, and teacher, student and baseline changed places from run to run there (docs/intent-on-real-data.md).
Only the texts the two models disagree on tell them apart. If those split nearly evenly between the two,
the order of their accuracies is what a coin would give; the exact McNemar test says how often, as a
binomial test on those texts alone (both models scored on the same texts, so the counts are paired).
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import binomtest


@dataclass(frozen=True)
class PairedComparison:
    """`first` against `second` on the same texts."""

    accuracy_difference: float
    """first's accuracy minus second's."""
    only_first_right: int
    only_second_right: int
    p_value: float
    """Exact two-sided McNemar: the chance of a split of the disagreements at least this uneven if both
    models were equally good (1.0 when they never disagree)."""

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def compare_paired(truth: Sequence[int], first: Sequence[int], second: Sequence[int]) -> PairedComparison:
    """Counts the texts only one model got right and tests whether the split could be chance."""
    truth_array, first_array, second_array = (np.asarray(labels) for labels in (truth, first, second))
    if not len(truth_array) or not (len(truth_array) == len(first_array) == len(second_array)):
        raise ValueError(
            f"Paired predictions need one label per text from each model on the same non-empty texts; got "
            f"{len(truth_array)} true labels, {len(first_array)} and {len(second_array)} predictions."
        )
    first_right, second_right = first_array == truth_array, second_array == truth_array
    only_first = int(np.sum(first_right & ~second_right))
    only_second = int(np.sum(second_right & ~first_right))
    disagreements = only_first + only_second
    p_value = binomtest(only_first, disagreements).pvalue if disagreements else 1.0
    return PairedComparison(
        accuracy_difference=(only_first - only_second) / len(truth_array),
        only_first_right=only_first,
        only_second_right=only_second,
        p_value=float(p_value),
    )
