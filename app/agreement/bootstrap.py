"""Cluster (item-level) bootstrap confidence intervals.

Pure: a statistic over a list of clusters (one cluster = one item with all its votes) is
recomputed on resamples of the clusters, drawn with replacement; the interval is the
percentile interval of the resampled values. Resampling whole items keeps the votes of several
experts on one item together, so the interval does not pretend those votes are independent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")

RESAMPLES = 1000
LEVEL = 0.95
METHOD = "percentile bootstrap over items (1,000 resamples, all votes on an item together)"
# Past this many items the same bootstrap draws how many items of each kind (the same judge and
# expert values) a resample holds, from a multinomial over the kinds: the same distribution as
# drawing items one by one, at a cost that depends on the number of kinds, not of items.
AGGREGATE_ABOVE = 2000
METHOD_AGGREGATED = (
    "percentile bootstrap over items (1,000 resamples, all votes on an item together), drawn as "
    "multinomial counts of item kinds"
)


@dataclass(frozen=True)
class Interval:
    """A bootstrap interval; None bounds when the statistic was undefined on most resamples."""

    low: float | None
    high: float | None
    method: str = METHOD
    level: float = LEVEL
    resamples: int = RESAMPLES

    @property
    def defined(self) -> bool:
        return self.low is not None and self.high is not None


UNDEFINED = Interval(None, None)


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """``resamples`` rows of ``n`` indices drawn with replacement (seeded: figures repeat)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_interval(
    values: Sequence[float | None], level: float = LEVEL, *, method: str = METHOD
) -> Interval:
    """The central ``level`` percentile interval of resampled values (undefined ones dropped).

    When more than half the resamples leave the statistic undefined the interval is undefined.
    """
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite or len(finite) * 2 < len(values):
        return Interval(None, None, method, resamples=len(values), level=level)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(np.asarray(finite, dtype=float), [tail, 100 - tail])
    return Interval(float(low), float(high), method, resamples=len(values), level=level)


def cluster_bootstrap(
    clusters: Sequence[T],
    statistic: Callable[[Sequence[T]], float | None],
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """Percentile interval of ``statistic`` over resamples of whole clusters."""
    n = len(clusters)
    if n < 2:
        return Interval(None, None, resamples=resamples, level=level)
    values = [statistic([clusters[i] for i in row]) for row in resample_indices(n, resamples, seed)]
    return percentile_interval(values, level)


@dataclass(frozen=True)
class AgreementIntervals:
    """Bootstrap intervals of raw agreement and Cohen's kappa, resampling whole items."""

    agreement: Interval
    kappa: Interval


def agreement_intervals(
    judge: Sequence[int],
    reference: Sequence[int],
    items: Sequence[int],
    categories: int,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> AgreementIntervals:
    """Intervals for (judge, reference) code pairs; ``items[i]`` is the item (0..n-1) of pair i.

    Each resample draws items with replacement and counts every pair of a drawn item as many
    times as the item was drawn: one bincount per resample, no Python loop over pairs.
    """
    if not judge:
        return AgreementIntervals(UNDEFINED, UNDEFINED)
    judge_codes = np.asarray(judge, dtype=int)
    reference_codes = np.asarray(reference, dtype=int)
    item_codes = np.asarray(items, dtype=int)
    n_items = int(item_codes.max()) + 1
    if n_items < 2:
        return AgreementIntervals(UNDEFINED, UNDEFINED)
    cells = reference_codes * categories + judge_codes
    if n_items > AGGREGATE_ABOVE:
        return _aggregated_intervals(cells, item_codes, n_items, categories, resamples, seed)
    # Every resample at once: how often each item was drawn (resamples x items), hence the
    # weight of each pair, hence each resample's table. Weights are whole numbers, so the tables
    # are exactly those of one bincount per resample.
    rows = resample_indices(n_items, resamples, seed)
    offsets = (np.arange(rows.shape[0]) * n_items)[:, None]
    drawn = np.bincount((rows + offsets).ravel(), minlength=rows.shape[0] * n_items).reshape(
        rows.shape[0], n_items
    )
    cell_of_pair = np.zeros((len(cells), categories**2))
    cell_of_pair[np.arange(len(cells)), cells] = 1.0
    tables = drawn[:, item_codes].astype(float) @ cell_of_pair
    agreements, kappas = _figures_of_tables(tables, categories)
    return AgreementIntervals(percentile_interval(agreements), percentile_interval(kappas))


def _figures_of_tables(tables: np.ndarray, categories: int) -> tuple[list[float | None], ...]:
    """Raw agreement and kappa of each row of ``tables`` (resamples x categories²)."""
    agreements: list[float | None] = []
    kappas: list[float | None] = []
    for flat in tables:
        table = flat.reshape(categories, categories)
        total = float(table.sum())
        if total == 0:
            agreements.append(None)
            kappas.append(None)
            continue
        observed = float(np.trace(table)) / total
        expected = float((table.sum(axis=1) * table.sum(axis=0)).sum()) / total**2
        agreements.append(observed)
        kappas.append(None if expected >= 1 - 1e-15 else (observed - expected) / (1 - expected))
    return agreements, kappas


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(rows, axis=0, return_counts=True)`` for rows of small whole counts: each row
    read as one number in base (largest count + 1), first column most significant, so the
    numbers sort as the rows do (the same kinds in the same order) and a 1-D unique is enough.
    Falls back to the row-wise unique when the numbers would not fit in 62 bits."""
    base = int(rows.max()) + 1 if rows.size else 1
    width = rows.shape[1]
    if base < 2 or width * np.log2(base) >= 62:
        return np.unique(rows, axis=0, return_counts=True)
    weights = base ** np.arange(width - 1, -1, -1, dtype=np.int64)
    numbers = rows.astype(np.int64) @ weights
    _, first, counts = np.unique(numbers, return_index=True, return_counts=True)
    return rows[first], counts


def _aggregated_intervals(
    cells: np.ndarray,
    item_codes: np.ndarray,
    n_items: int,
    categories: int,
    resamples: int,
    seed: int,
) -> AgreementIntervals:
    """The item bootstrap from aggregated counts: items with the same cells are one kind; a
    resample is a multinomial draw of n items over the kinds (their shares as probabilities)."""
    per_item = np.zeros((n_items, categories**2), dtype=float)
    np.add.at(per_item, (item_codes, cells), 1.0)
    kinds, counts = _unique_rows(per_item)
    draws = np.random.default_rng(seed).multinomial(n_items, counts / counts.sum(), size=resamples)
    tables = draws.astype(float) @ kinds
    agreements, kappas = _figures_of_tables(tables, categories)
    return AgreementIntervals(
        percentile_interval(agreements, method=METHOD_AGGREGATED),
        percentile_interval(kappas, method=METHOD_AGGREGATED),
    )
