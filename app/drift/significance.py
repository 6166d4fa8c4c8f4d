"""The one-sided tests and the onset fit the drift signals use. Pure (no database, no web).

Mann-Kendall trend, two-proportion z, Welch's z for a rise in a mean, Fisher's z for the rise
of a rank correlation, and the onset of a change (best step or hinge least-squares fit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats


def trend_p(values: Sequence[float], increasing: bool = True) -> float:
    """One-sided Mann-Kendall p-value (Kendall's tau of the series against its order)."""
    if len(values) < 3 or len(set(values)) < 2:
        return 1.0
    result = stats.kendalltau(
        list(range(len(values))), list(values), alternative="greater" if increasing else "less"
    )
    p = float(result.pvalue)
    return p if math.isfinite(p) else 1.0


def two_proportion_p(x1: float, n1: float, x2: float, n2: float, larger: bool = True) -> float:
    """One-sided p that the second proportion is larger (or smaller) than the first."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se <= 0:
        return 1.0
    z = (x2 / n2 - x1 / n1) / se
    return float(stats.norm.sf(z if larger else -z))


def mean_rise_p(early: tuple[float, float, int], late: tuple[float, float, int]) -> float:
    """One-sided p that the late mean is larger (Welch's z on the pooled samples)."""
    se = math.sqrt(early[1] / early[2] + late[1] / late[2])
    if se <= 0:
        return 1.0 if late[0] <= early[0] else 0.0
    return float(stats.norm.sf((late[0] - early[0]) / se))


def correlation_rise_p(r1: float, n1: float, r2: float, n2: float) -> float:
    """One-sided p that rank correlation r2 (n2 samples) exceeds r1 (Fisher's z)."""
    if n1 <= 3 or n2 <= 3:
        return 1.0
    clip = 0.999999
    z = (math.atanh(max(-clip, min(clip, r2))) - math.atanh(max(-clip, min(clip, r1)))) / math.sqrt(
        1 / (n1 - 3) + 1 / (n2 - 3)
    )
    return float(stats.norm.sf(z))


def onset_index(values: Sequence[float]) -> int:
    """Where a change began: the index of the first changed bucket under the best of two
    least-squares models over every split — a step (flat, then flat at another level) and a
    broken line (flat, then a jump and a straight ramp)."""
    n = len(values)
    if n < 3:
        return 0
    best, best_sse = 1, math.inf
    for k in range(1, n):
        sse = min(_step_sse(values, k), _hinge_sse(values, k))
        if sse < best_sse - 1e-12:
            best, best_sse = k, sse
    return best


def _step_sse(values: Sequence[float], k: int) -> float:
    before, after = values[:k], values[k:]
    mb, ma = sum(before) / len(before), sum(after) / len(after)
    return sum((v - mb) ** 2 for v in before) + sum((v - ma) ** 2 for v in after)


def _hinge_sse(values: Sequence[float], k: int) -> float:
    """Flat before k; from k a straight line of its own (a jump and a slope)."""
    before, after = values[:k], values[k:]
    level = sum(before) / len(before)
    sse = sum((v - level) ** 2 for v in before)
    if len(after) < 2:
        return sse
    xs = list(range(len(after)))
    mx, my = sum(xs) / len(xs), sum(after) / len(after)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, after, strict=True)) / sxx
    return sse + sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, after, strict=True))
