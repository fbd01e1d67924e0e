"""Summaries of a distillation study: each variant's runs over several seeds reduced to mean ± std, and a
verdict that names the best variant and says whether it is really ahead.

One seed's accuracy moves by a point or more with data order alone, so a variant only "wins" here when its
mean is ahead of the runner-up's by more than one standard deviation (the larger of the two). Anything closer
is reported as not distinguishable: a study should not crown a temperature on noise.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

METRICS = ("accuracy", "macro_f1", "retention", "training_seconds", "final_loss")


@dataclass(frozen=True)
class MeanStd:
    """`std` is the sample standard deviation (n - 1); None for a single run, which has no spread."""

    mean: float
    std: float | None
    runs: int

    def __str__(self) -> str:
        if self.std is None:
            return f"{self.mean:.4f}"
        return f"{self.mean:.4f} ± {self.std:.4f}"


def mean_std(values: Sequence[float]) -> MeanStd:
    """NaN values (a loss that was never logged) are left out rather than poisoning the mean."""
    finite = [float(value) for value in values if not math.isnan(float(value))]
    if not finite:
        return MeanStd(mean=math.nan, std=None, runs=0)
    mean = sum(finite) / len(finite)
    if len(finite) == 1:
        return MeanStd(mean=mean, std=None, runs=1)
    variance = sum((value - mean) ** 2 for value in finite) / (len(finite) - 1)
    return MeanStd(mean=mean, std=math.sqrt(variance), runs=len(finite))


@dataclass(frozen=True)
class VariantSummary:
    variant: str
    seeds: tuple[int, ...]
    metrics: dict[str, MeanStd]


def summarise_variant(variant: str, runs: Sequence[Mapping[str, float]]) -> VariantSummary:
    """One row per seed in, one summary out; every run must carry a `seed` and every metric in METRICS."""
    if not runs:
        raise ValueError(f"Variant {variant!r} has no runs to summarise; materialise its partition first.")
    missing = sorted({name for run in runs for name in ("seed", *METRICS) if name not in run})
    if missing:
        raise ValueError(f"The runs of variant {variant!r} lack {', '.join(missing)}; re-materialise it.")
    return VariantSummary(
        variant=variant,
        seeds=tuple(int(run["seed"]) for run in runs),
        metrics={name: mean_std([run[name] for run in runs]) for name in METRICS},
    )


@dataclass(frozen=True)
class Verdict:
    """`spread` is best mean minus worst mean; `distinguishable` compares the best with the runner-up only."""

    metric: str
    best: str
    runner_up: str | None
    spread: float
    distinguishable: bool | None
    text: str


def verdict(summaries: Sequence[VariantSummary], metric: str = "accuracy") -> Verdict:
    """The best variant by mean `metric`, and whether its lead over the runner-up exceeds one std.

    `distinguishable` is None when that cannot be judged: a single variant, or single-seed runs (no std).
    """
    if not summaries:
        raise ValueError("A verdict needs at least one summarised variant.")
    ranked = sorted(summaries, key=lambda summary: summary.metrics[metric].mean, reverse=True)
    best, worst = ranked[0], ranked[-1]
    spread = best.metrics[metric].mean - worst.metrics[metric].mean
    if len(ranked) == 1:
        text = f"only {best.variant} has been run; nothing to compare it with."
        return Verdict(metric, best.variant, None, 0.0, None, text)
    runner_up = ranked[1]
    lead = best.metrics[metric].mean - runner_up.metrics[metric].mean
    stds = [summary.metrics[metric].std for summary in (best, runner_up)]
    opening = f"best {best.variant} ({metric} {best.metrics[metric]}), spread {spread:.4f} across variants"
    if any(std is None for std in stds):
        text = f"{opening}; single-seed runs, so the lead over {runner_up.variant} cannot be judged."
        return Verdict(metric, best.variant, runner_up.variant, spread, None, text)
    margin = max(std for std in stds if std is not None)
    distinguishable = lead > margin
    judgement = (
        f"ahead of {runner_up.variant} by {lead:.4f}, more than one std ({margin:.4f})"
        if distinguishable
        else f"not distinguishable from {runner_up.variant}: "
        f"the lead {lead:.4f} is within one std ({margin:.4f})"
    )
    return Verdict(
        metric, best.variant, runner_up.variant, spread, distinguishable, f"{opening}; {judgement}."
    )
