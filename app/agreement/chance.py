"""Chance-corrected agreement among several raters: Krippendorff's alpha and Gwet's AC1.

Pure numpy, written for this project (Apache-2.0) from the published definitions:
Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011), and Gwet, "Computing
inter-rater reliability and its variance in the presence of high agreement" (2008).
Both work on a value-count matrix: one row per unit (item), one column per value of the
domain, each cell the number of raters who gave that value to that unit. Units with fewer than
two values are not pairable and are left out. The tests cross-check alpha against the
``krippendorff`` package (GPL, a test-only dependency) and AC1 against its two-rater form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

Level = Literal["nominal", "ordinal", "interval", "ratio"]


def value_counts(units: Sequence[Sequence[Any]], domain: Sequence[Any]) -> np.ndarray:
    """Units x domain counts of the values each unit received (values outside are an error)."""
    index = {value: i for i, value in enumerate(domain)}
    counts = np.zeros((len(units), len(domain)), dtype=float)
    for row, values in enumerate(units):
        for value in values:
            counts[row, index[value]] += 1
    return counts


def _distance(domain: np.ndarray, marginals: np.ndarray, level: Level) -> np.ndarray:
    """Squared difference delta^2(c, k) between domain values for the level of measurement."""
    size = len(domain)
    if level == "nominal":
        return 1.0 - np.eye(size)
    if level == "interval":
        return np.subtract.outer(domain, domain) ** 2
    if level == "ratio":
        total = np.add.outer(domain, domain)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(total == 0, 0.0, np.subtract.outer(domain, domain) / total)
        return ratio**2
    # ordinal: the marginal frequencies between the two ranks, minus half of each end
    cumulative = np.concatenate([[0.0], np.cumsum(marginals)])
    low = np.minimum.outer(np.arange(size), np.arange(size))
    high = np.maximum.outer(np.arange(size), np.arange(size))
    between = cumulative[high + 1] - cumulative[low]
    ends = (marginals[low] + marginals[high]) / 2
    return (between - ends) ** 2


def krippendorff_alpha(
    counts: np.ndarray, domain: Sequence[float] | None = None, level: Level = "nominal"
) -> float | None:
    """alpha = 1 - D_o / D_e from the coincidence matrix of pairable values.

    ``domain`` gives the numeric value of each column (needed for interval and ratio; ordinal
    uses only the column order). None when undefined: no pairable values, or one value only.
    """
    counts = np.asarray(counts, dtype=float)
    pairable = counts[counts.sum(axis=1) >= 2]
    if pairable.size == 0:
        return None
    per_unit = pairable.sum(axis=1)
    # o_ck = sum over units of n_uc * (n_uk - [c == k]) / (m_u - 1)
    weighted = pairable / (per_unit - 1)[:, None]
    coincidence = weighted.T @ pairable - np.diag(weighted.sum(axis=0))
    marginals = coincidence.sum(axis=1)
    n = marginals.sum()
    if n <= 1 or np.count_nonzero(marginals) < 2:
        return None
    values = np.asarray(domain if domain is not None else range(counts.shape[1]), dtype=float)
    delta = _distance(values, marginals, level)
    expected = float((np.outer(marginals, marginals) * delta).sum())
    if expected == 0:
        return None
    observed = float((coincidence * delta).sum())
    return 1.0 - (n - 1) * observed / expected


def gwet_ac1(counts: np.ndarray) -> float | None:
    """Gwet's AC1 for any number of raters per unit, over the categories of the columns.

    p_a = mean over units of sum_c n_uc (n_uc - 1) / (m_u (m_u - 1));
    p_e = sum_c pi_c (1 - pi_c) / (Q - 1), pi_c = mean over units of n_uc / m_u, Q categories.
    """
    counts = np.asarray(counts, dtype=float)
    pairable = counts[counts.sum(axis=1) >= 2]
    categories = counts.shape[1]
    if pairable.size == 0 or categories < 2:
        return None
    per_unit = pairable.sum(axis=1)
    agree = float(((pairable * (pairable - 1)).sum(axis=1) / (per_unit * (per_unit - 1))).mean())
    shares = (pairable / per_unit[:, None]).mean(axis=0)
    chance = float((shares * (1 - shares)).sum()) / (categories - 1)
    if chance >= 1:
        return None
    return (agree - chance) / (1 - chance)
