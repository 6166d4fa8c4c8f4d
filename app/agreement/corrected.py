"""Judge-corrected estimates for unlabelled items, from the judge's measured error rates (pure).

* Rogan–Gladen (1978): the true pass rate from the judge's pass rate on unlabelled items and its
  sensitivity (passes kept) and specificity (failures caught) measured on labelled items:
  p = (q + specificity - 1) / (sensitivity + specificity - 1), clipped to [0, 1]. Undefined
  (refused) when sensitivity + specificity <= 1: such a judge carries no information.
  Interval: bootstrap, resampling labelled items and redrawing the unlabelled pass count.
* PPI++ mean (Angelopoulos et al. 2023, "PPI++: Efficient Prediction-Powered Inference"): the
  mean reward from the judge's scores f on N unlabelled items and (f, y) on n labelled ones:
  theta = lambda * mean_N(f) + mean_n(y - lambda * f), with the power-tuned
  lambda = Cov_n(y, f) / ((1 + n / N) Var_n(f)), and a normal interval from
  Var = lambda^2 Var_N(f) / N + Var_n(y - lambda f) / n. Unlabelled data enter only through
  their count, mean and variance, which the database aggregates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from app.agreement.bootstrap import (
    AGGREGATE_ABOVE,
    METHOD,
    METHOD_AGGREGATED,
    RESAMPLES,
    percentile_interval,
)

NO_INFORMATION = (
    "refused: the judge's true-positive and true-negative rates add up to 1 or less, so its "
    "verdicts carry no information about the true rate"
)


def rogan_gladen(observed: float, sensitivity: float, specificity: float) -> float | None:
    """Corrected prevalence; None when sensitivity + specificity <= 1."""
    informative = sensitivity + specificity - 1
    if informative <= 1e-12:
        return None
    return min(1.0, max(0.0, (observed + specificity - 1) / informative))


@dataclass(frozen=True)
class CorrectedRate:
    judge_rate: float | None  # what the judge says on the unlabelled items
    corrected: float | None
    ci_low: float | None
    ci_high: float | None
    sensitivity: float | None
    specificity: float | None
    n_unlabelled: int
    n_labelled: int
    reason: str | None = None


def corrected_pass_rate(
    unlabelled_passes: int,
    n_unlabelled: int,
    labelled: Sequence[tuple[bool, bool]],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> CorrectedRate:
    """``labelled``: (judge passes, expert passes) per labelled item."""
    judge_rate = unlabelled_passes / n_unlabelled if n_unlabelled else None
    pairs = np.asarray(labelled, dtype=bool).reshape(-1, 2)
    expert_pass = pairs[:, 1]
    sens = float(pairs[expert_pass, 0].mean()) if expert_pass.any() else None
    spec = float((~pairs[~expert_pass, 0]).mean()) if (~expert_pass).any() else None
    if judge_rate is None or sens is None or spec is None:
        return CorrectedRate(
            judge_rate,
            None,
            None,
            None,
            sens,
            spec,
            n_unlabelled,
            len(pairs),
            "not defined: needs unlabelled items and labelled items of both classes",
        )
    corrected = rogan_gladen(judge_rate, sens, spec)
    if corrected is None:
        return CorrectedRate(
            judge_rate, None, None, None, sens, spec, n_unlabelled, len(pairs), NO_INFORMATION
        )
    rng = np.random.default_rng(seed)
    draws: list[float | None] = []
    if len(pairs) > AGGREGATE_ABOVE:
        draws = _aggregated_draws(pairs, n_unlabelled, judge_rate, resamples, rng)
    for _ in range(resamples if len(pairs) <= AGGREGATE_ABOVE else 0):
        sample = pairs[rng.integers(0, len(pairs), len(pairs))]
        passed = sample[:, 1]
        if not passed.any() or passed.all():
            draws.append(None)
            continue
        q = rng.binomial(n_unlabelled, judge_rate) / n_unlabelled
        draws.append(
            rogan_gladen(q, float(sample[passed, 0].mean()), float((~sample[~passed, 0]).mean()))
        )
    interval = percentile_interval(
        draws, method=METHOD_AGGREGATED if len(pairs) > AGGREGATE_ABOVE else METHOD
    )
    return CorrectedRate(
        judge_rate,
        corrected,
        interval.low,
        interval.high,
        sens,
        spec,
        n_unlabelled,
        len(pairs),
    )


@dataclass(frozen=True)
class PPIMean:
    judge_mean: float  # mean judge score on the unlabelled items
    classical: float  # mean of the expert values on the labelled items alone
    estimate: float
    ci_low: float
    ci_high: float
    lam: float
    n_labelled: int
    n_unlabelled: int


def ppi_mean(
    y: Sequence[float],
    f_labelled: Sequence[float],
    f_unlabelled_mean: float,
    f_unlabelled_var: float,
    n_unlabelled: int,
    *,
    level: float = 0.95,
) -> PPIMean | None:
    """PPI++ mean with the power-tuned lambda (clipped to [0, 1]); None with fewer than two
    labelled items or no unlabelled ones."""
    labels = np.asarray(y, dtype=float)
    scores = np.asarray(f_labelled, dtype=float)
    n = len(labels)
    if n < 2 or n_unlabelled < 1:
        return None
    var_f = float(np.var(scores, ddof=1))
    if var_f > 0:
        cov = float(np.cov(labels, scores, ddof=1)[0, 1])
        lam = min(1.0, max(0.0, cov / ((1 + n / n_unlabelled) * var_f)))
    else:
        lam = 0.0
    rectifier = labels - lam * scores
    estimate = lam * f_unlabelled_mean + float(rectifier.mean())
    variance = lam**2 * f_unlabelled_var / n_unlabelled + float(np.var(rectifier, ddof=1)) / n
    half = float(norm.ppf(0.5 + level / 2)) * math.sqrt(max(variance, 0.0))
    return PPIMean(
        judge_mean=f_unlabelled_mean,
        classical=float(labels.mean()),
        estimate=estimate,
        ci_low=estimate - half,
        ci_high=estimate + half,
        lam=lam,
        n_labelled=n,
        n_unlabelled=n_unlabelled,
    )


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def rate_headline(rate: CorrectedRate) -> str:
    """ "the judge says 84%; corrected for its error rate 72% (66–78%)", or why not."""
    said = f"the judge says {_pct(rate.judge_rate)}" if rate.judge_rate is not None else ""
    if rate.corrected is None:
        return f"{said}; {rate.reason}" if said else str(rate.reason)
    interval = (
        f" ({100 * rate.ci_low:.0f}–{_pct(rate.ci_high)})"
        if rate.ci_low is not None and rate.ci_high is not None
        else ""
    )
    return f"{said}; corrected for its error rate {_pct(rate.corrected)}{interval}"


def rate_meaning(rate: CorrectedRate) -> str:
    """One sentence on what the corrected figure says (or why there is none)."""
    if rate.corrected is None:
        if rate.sensitivity is not None and rate.specificity is not None:
            return (
                f"On the {rate.n_labelled} labelled verdicts the judge passed "
                f"{_pct(rate.sensitivity)} of the answers the experts passed and "
                f"{_pct(1 - rate.specificity)} of those they failed: it tells passes from "
                "failures no better than chance, so its pass rate cannot be corrected."
            )
        return (
            "The labelled items need answers the experts passed and answers they failed, and "
            "the selection needs judged items, before the judge's error rate can be measured."
        )
    interval = (
        f" (95% bootstrap interval {100 * rate.ci_low:.0f}–{_pct(rate.ci_high)})"
        if rate.ci_low is not None and rate.ci_high is not None
        else ""
    )
    return (
        f"The judge passes {_pct(1 - (rate.specificity or 0))} of the answers experts fail and "
        f"fails {_pct(1 - (rate.sensitivity or 0))} of those they pass (measured on "
        f"{rate.n_labelled} labelled verdicts), so had experts labelled all {rate.n_unlabelled} "
        f"selected items, about {_pct(rate.corrected)} would pass{interval}."
    )


def mean_meaning(mean: PPIMean) -> str:
    """One sentence on the PPI++ mean reward."""
    return (
        f"The judge's mean score on the {mean.n_unlabelled} selected items, "
        f"{mean.judge_mean:.3f}, shifted by how far its scores sat from the experts' on "
        f"{mean.n_labelled} labelled verdicts (λ = {mean.lam:.2f}): the mean reward experts would "
        f"give is {mean.estimate:.3f}, 95% interval {mean.ci_low:.3f}–{mean.ci_high:.3f}."
    )


def _aggregated_draws(
    pairs: np.ndarray,
    n_unlabelled: int,
    judge_rate: float,
    resamples: int,
    rng: np.random.Generator,
) -> list[float | None]:
    """The same bootstrap from the four (judge, expert) counts: a resample of the labelled
    items is a multinomial draw over the four kinds, all resamples at once."""
    judge, expert = pairs[:, 0], pairs[:, 1]
    counts = np.array(
        [
            np.sum(judge & expert),
            np.sum(~judge & expert),
            np.sum(judge & ~expert),
            np.sum(~judge & ~expert),
        ],
        dtype=float,
    )
    tables = rng.multinomial(len(pairs), counts / counts.sum(), size=resamples)
    rates = rng.binomial(n_unlabelled, judge_rate, size=resamples) / n_unlabelled
    draws: list[float | None] = []
    for (tp, fn, fp, tn), q in zip(tables, rates, strict=True):
        if tp + fn == 0 or fp + tn == 0:
            draws.append(None)
            continue
        draws.append(rogan_gladen(float(q), tp / (tp + fn), tn / (fp + tn)))
    return draws
