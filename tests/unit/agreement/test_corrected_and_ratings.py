"""Corrected estimates and ratings on simulated data: Rogan–Gladen recovers a known pass rate
through known judge errors (and is refused for an uninformative judge); the PPI++ interval
covers the true mean; Bradley–Terry and Elo recover a known ordering; Kendall's tau."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from app.agreement.corrected import (
    NO_INFORMATION,
    corrected_pass_rate,
    ppi_mean,
    rogan_gladen,
)
from app.agreement.ratings import bradley_terry, rank_agreement, ratings, win_rates

TRUE_RATE, SENSITIVITY, SPECIFICITY = 0.72, 0.9, 0.7


def _judge(rng: np.random.Generator, truth: np.ndarray) -> np.ndarray:
    keep = rng.random(len(truth))
    return np.where(truth, keep < SENSITIVITY, keep >= SPECIFICITY)


def test_rogan_gladen_formula() -> None:
    observed = TRUE_RATE * SENSITIVITY + (1 - TRUE_RATE) * (1 - SPECIFICITY)
    assert rogan_gladen(observed, SENSITIVITY, SPECIFICITY) == pytest.approx(TRUE_RATE)
    assert rogan_gladen(0.5, 0.5, 0.5) is None


def test_corrected_pass_rate_recovers_the_true_rate() -> None:
    rng = np.random.default_rng(11)
    estimates, covered, naive = [], 0, []
    simulations = 60
    for seed in range(simulations):
        unlabelled = rng.random(3000) < TRUE_RATE
        labelled_truth = rng.random(300) < TRUE_RATE
        judged = _judge(rng, unlabelled)
        result = corrected_pass_rate(
            int(judged.sum()),
            len(judged),
            list(zip(_judge(rng, labelled_truth), labelled_truth, strict=True)),
            resamples=300,
            seed=seed,
        )
        assert result.corrected is not None and result.ci_low is not None
        estimates.append(result.corrected)
        naive.append(result.judge_rate)
        covered += result.ci_low <= TRUE_RATE <= result.ci_high
    assert np.mean(estimates) == pytest.approx(TRUE_RATE, abs=0.01)
    # What the judge says is biased: 0.72 * 0.9 + 0.28 * 0.3 = 0.732.
    assert np.mean(naive) == pytest.approx(0.732, abs=0.01)
    assert covered / simulations >= 0.85


def test_an_uninformative_judge_is_refused_with_a_reason() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random(200) < 0.5
    coin = rng.random(200) < 0.5  # the judge ignores the response
    result = corrected_pass_rate(50, 100, list(zip(coin, truth, strict=True)), resamples=50)
    if (result.sensitivity or 0) + (result.specificity or 0) <= 1:
        assert result.corrected is None and result.reason == NO_INFORMATION
    always = corrected_pass_rate(90, 100, [(True, True), (True, False)] * 20, resamples=50)
    assert always.corrected is None and always.reason == NO_INFORMATION


def test_ppi_interval_covers_the_true_mean() -> None:
    rng = np.random.default_rng(5)
    true_mean = 0.6
    covered, simulations = 0, 200
    for _ in range(simulations):
        y_all = np.clip(rng.normal(true_mean, 0.2, 2100), 0, 1)
        f_all = np.clip(y_all + rng.normal(0.1, 0.1, 2100), 0, 1)  # biased judge
        y_lab, f_lab, f_unl = y_all[:100], f_all[:100], f_all[100:]
        result = ppi_mean(y_lab, f_lab, float(f_unl.mean()), float(f_unl.var(ddof=1)), len(f_unl))
        assert result is not None
        mean = float(np.clip(rng.normal(true_mean, 0.2, 200000), 0, 1).mean())
        covered += result.ci_low <= mean <= result.ci_high
    assert 0.9 <= covered / simulations <= 0.99


def _tournament(rng: np.random.Generator, skill: dict[str, float], games: int):
    players = list(skill)
    outcomes = []
    for _ in range(games):
        a, b = rng.choice(players, 2, replace=False)
        p = 1 / (1 + 10 ** ((skill[b] - skill[a]) / 400))
        draw = rng.random()
        outcomes.append((str(a), str(b), 1.0 if draw < p * 0.9 else 0.5 if draw < p else 0.0))
    return outcomes


def test_bradley_terry_and_elo_recover_a_known_ordering() -> None:
    skill = {"ckpt-100": 800.0, "ckpt-200": 950.0, "ckpt-300": 1050.0, "ckpt-400": 1200.0}
    outcomes = _tournament(np.random.default_rng(1), skill, 3000)
    rows = ratings(outcomes, resamples=100)
    assert [r.player for r in rows] == ["ckpt-400", "ckpt-300", "ckpt-200", "ckpt-100"]
    assert sorted(rows, key=lambda r: -r.elo)[0].player == "ckpt-400"
    for row in rows:
        assert row.bt_low is not None and row.bt_low <= row.bradley_terry <= row.bt_high
    assert rank_agreement({r.player: r.bradley_terry for r in rows}, skill) == 1.0
    matrix = win_rates(outcomes)
    assert matrix["ckpt-400"]["ckpt-100"] > 0.8 and matrix["ckpt-100"]["ckpt-100"] is None


def test_bradley_terry_equals_a_direct_likelihood_maximisation() -> None:
    outcomes = _tournament(np.random.default_rng(2), {"a": 900.0, "b": 1000.0, "c": 1150.0}, 600)
    players = ["a", "b", "c"]
    ours = bradley_terry(outcomes, players)

    def negative_log_likelihood(theta: np.ndarray) -> float:
        strength = dict(zip(players, theta, strict=True))
        total = 0.0
        for a, b, score in outcomes:
            p = 1 / (1 + np.exp(strength[b] - strength[a]))
            total -= score * np.log(p) + (1 - score) * np.log(1 - p)
        for s in theta:  # the same prior: half a win in one game against strength 0
            p = 1 / (1 + np.exp(-s))
            total -= 0.5 * np.log(p) + 0.5 * np.log(1 - p)
        return total

    best = minimize(negative_log_likelihood, np.zeros(3), method="BFGS").x
    best -= best.mean()
    expected = {p: 1000 + 400 / np.log(10) * v for p, v in zip(players, best, strict=True)}
    for p in players:
        assert ours[p] == pytest.approx(expected[p], abs=2.0)
