"""The confusion tables and kappas counted without scikit-learn's per-call checks are exactly
scikit-learn's (same counts; the same float64 arithmetic, so equal values, not just close)."""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from app.agreement import stats


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("weights", [None, "quadratic", "linear"])
def test_kappa_and_table_equal_sklearn(seed: int, weights: str | None) -> None:
    rng = random.Random(seed)
    labels = list(range(1, rng.choice([2, 3, 5]) + 1))
    n = rng.choice([1, 2, 5, 50, 3000])
    skew = rng.random()
    reference = [rng.choice(labels) if rng.random() < skew else labels[0] for _ in range(n)]
    judge = [r if rng.random() < 0.7 else rng.choice(labels) for r in reference]
    table = stats._table(reference, judge, labels)
    assert np.array_equal(table, confusion_matrix(reference, judge, labels=labels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = cohen_kappa_score(
            reference, judge, labels=labels, weights=weights, replace_undefined_by=np.nan
        )
    got = stats._kappa_of_table(table, "undefined", weights).value
    if math.isnan(expected):
        assert got is None
    else:
        assert got == expected


def test_binary_figures_on_one_class_and_empty() -> None:
    assert stats.binary_agreement([True, True], [True, True]).kappa.value is None
    empty = stats.binary_agreement([], [])
    assert empty.kappa.reason == stats.NO_ITEMS
    assert empty.confusion == {"fail": {"fail": 0, "pass": 0}, "pass": {"fail": 0, "pass": 0}}


@pytest.mark.parametrize("seed", range(20))
def test_unique_rows_equal_numpy_unique_over_rows(seed: int) -> None:
    from app.agreement.bootstrap import _unique_rows

    rng = np.random.default_rng(seed)
    width = int(rng.choice([4, 9, 25]))
    rows = rng.integers(0, int(rng.choice([1, 2, 5])) + 1, size=(500, width)).astype(float)
    kinds, counts = np.unique(rows, axis=0, return_counts=True)
    got_kinds, got_counts = _unique_rows(rows)
    assert np.array_equal(kinds, got_kinds)
    assert np.array_equal(counts, got_counts)
