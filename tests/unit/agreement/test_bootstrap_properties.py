"""The item bootstrap intervals cover the true value at about the nominal 95% rate on simulated
judges whose true agreement and kappa are known, with several labels per item."""

from __future__ import annotations

import numpy as np

from app.agreement.bootstrap import agreement_intervals
from app.agreement.pairwise import Outcome, PairItem, pairwise_figures

PREVALENCE = 0.3  # share of items the experts fail
ACCURACY = 0.8  # the judge is right with this probability, whatever the truth
JUDGE_FAILS = PREVALENCE * ACCURACY + (1 - PREVALENCE) * (1 - ACCURACY)
CHANCE = PREVALENCE * JUDGE_FAILS + (1 - PREVALENCE) * (1 - JUDGE_FAILS)
TRUE_KAPPA = (ACCURACY - CHANCE) / (1 - CHANCE)


def _simulate(rng: np.random.Generator, n_items: int):
    truth = rng.random(n_items) < PREVALENCE
    right = rng.random(n_items) < ACCURACY
    judged = np.where(right, truth, ~truth)
    labels_per_item = rng.integers(1, 4, size=n_items)  # 1-3 experts, all agreeing
    items = np.repeat(np.arange(n_items), labels_per_item)
    return judged[items].astype(int), truth[items].astype(int), items


def test_agreement_and_kappa_intervals_cover_at_about_95_percent() -> None:
    rng = np.random.default_rng(2024)
    simulations = 200
    covered_agreement = covered_kappa = 0
    for seed in range(simulations):
        judge, human, items = _simulate(rng, 120)
        ci = agreement_intervals(
            judge.tolist(), human.tolist(), items.tolist(), 2, resamples=300, seed=seed
        )
        assert ci.agreement.low is not None and ci.kappa.low is not None
        covered_agreement += ci.agreement.low <= ACCURACY <= ci.agreement.high
        covered_kappa += ci.kappa.low <= TRUE_KAPPA <= ci.kappa.high
    # 95% nominal; with 200 simulations the binomial spread is about +-3 points.
    assert 0.90 <= covered_agreement / simulations <= 0.99
    assert 0.90 <= covered_kappa / simulations <= 0.99


def test_pairwise_accuracy_interval_covers_at_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    simulations = 100
    covered = 0
    for seed in range(simulations):
        items = []
        for i in range(100):
            expert = Outcome.A if rng.random() < 0.5 else Outcome.B
            other = Outcome.B if expert == Outcome.A else Outcome.A
            ab = expert if rng.random() < ACCURACY else other
            ba = expert if rng.random() < ACCURACY else other
            items.append(PairItem(i, ab=ab, ba=ba, experts=(expert,)))
        estimate = pairwise_figures(items, resamples=200, seed=seed).figures["accuracy_ab"]
        assert estimate.ci_low is not None and estimate.ci_high is not None
        covered += estimate.ci_low <= ACCURACY <= estimate.ci_high
    assert 0.88 <= covered / simulations <= 1.0
