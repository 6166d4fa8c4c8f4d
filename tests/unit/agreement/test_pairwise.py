"""Pairwise figures (pure): kappa equals scikit-learn's, inconsistent verdicts stay apart from
ties, position and length bias read the right side, intervals contain the value."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from app.agreement.pairwise import Outcome, PairItem, pairwise_figures, weighted_kappa

A, B, TIE, INC = Outcome.A, Outcome.B, Outcome.TIE, Outcome.INCONSISTENT


def test_weighted_kappa_equals_sklearn_and_repeats_rows_by_weight() -> None:
    rng = random.Random(3)
    reference = np.array([rng.randrange(3) for _ in range(200)])
    judge = np.array([r if rng.random() < 0.7 else rng.randrange(3) for r in reference])
    ones = np.ones(len(reference))
    assert weighted_kappa(reference, judge, ones) == pytest.approx(
        cohen_kappa_score(reference, judge, labels=[0, 1, 2]), abs=1e-12
    )
    weights = np.array([rng.randrange(0, 3) for _ in reference], dtype=float)
    repeated_ref = np.repeat(reference, weights.astype(int))
    repeated_judge = np.repeat(judge, weights.astype(int))
    assert weighted_kappa(reference, judge, weights) == pytest.approx(
        cohen_kappa_score(repeated_ref, repeated_judge, labels=[0, 1, 2]), abs=1e-12
    )
    assert weighted_kappa(np.array([0, 0]), np.array([0, 0]), np.ones(2)) is None


def test_ties_and_inconsistent_verdicts_are_counted_apart() -> None:
    items = [
        PairItem(1, ab=A, ba=A, experts=(A,)),
        PairItem(2, ab=TIE, ba=TIE, experts=(TIE,)),
        PairItem(3, ab=A, ba=B, experts=(B,)),  # first position won both times
        PairItem(4, ab=A, ba=TIE, experts=(A, A)),  # two experts: two labels
        PairItem(5, combined=INC, experts=(B,)),
    ]
    figures = pairwise_figures(items, resamples=200)
    f = figures.figures
    assert f["tie_rate"].value == pytest.approx(1 / 5)
    assert f["inconsistent_rate"].value == pytest.approx(3 / 5)
    assert f["positional_agreement"].value == pytest.approx(2 / 5)
    # Labels: 1 A, 2 tie, 3 B, 4 A, 4 A (item 5 has no per-order verdicts).
    assert f["accuracy_ab"].value == pytest.approx(4 / 5) and f["accuracy_ab"].n == 5
    assert f["accuracy_ba"].value == pytest.approx(3 / 5)
    assert f["both_correct"].value == pytest.approx(2 / 5)
    assert figures.first_wins_when_inconsistent.value == 1.0
    assert figures.position.biased_first.k == 1
    for estimate in f.values():
        if estimate.value is not None and estimate.ci_low is not None:
            assert estimate.ci_low - 1e-9 <= estimate.value <= estimate.ci_high + 1e-9


def test_length_bias_compares_judge_and_experts() -> None:
    items = [
        PairItem(i, ab=A, ba=A, experts=(A if i % 2 else B,), len_a=100, len_b=10)
        for i in range(10)
    ]
    figures = pairwise_figures(items, resamples=0)
    assert figures.judge_length.longer_wins.value == 1.0
    assert figures.expert_length.longer_wins.value == 0.5
