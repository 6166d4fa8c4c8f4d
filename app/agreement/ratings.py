"""Ratings of models or checkpoints from pairwise outcomes: Bradley–Terry and Elo (pure).

An outcome is (first player, second player, score of the first): 1 win, 0 loss, 0.5 tie.
* Bradley–Terry: strengths by Hunter's (2004) MM algorithm, ties counted as half a win each,
  with a small prior (one tie against a virtual average player) so undefeated players stay
  finite; reported on the Elo scale (400 / ln 10 per unit of log-strength, centred at 1000).
* Elo: sequential updates (K = 4, as Chatbot Arena's offline Elo), averaged over shuffled orders.
Intervals: percentile bootstrap over outcomes. Kendall's tau compares two rankings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau

from app.agreement.bootstrap import percentile_interval

Outcome = tuple[str, str, float]
SCALE = 400 / math.log(10)
BASE = 1000.0


def bradley_terry(outcomes: Sequence[Outcome], players: Sequence[str]) -> dict[str, float]:
    """Elo-scale Bradley–Terry ratings of ``players`` (mean 1000)."""
    index = {p: i for i, p in enumerate(players)}
    k = len(players)
    wins = np.full(k, 0.5)  # prior: half a win ...
    games = np.full((k, k), 0.0)
    prior_games = np.full(k, 1.0)  # ... in one game against a virtual player of strength 1
    for a, b, score in outcomes:
        i, j = index[a], index[b]
        wins[i] += score
        wins[j] += 1 - score
        games[i, j] += 1
        games[j, i] += 1
    strength = np.ones(k)
    for _ in range(500):
        pair_sum = strength[:, None] + strength[None, :]
        denominator = (games / pair_sum).sum(axis=1) + prior_games / (strength + 1)
        updated = wins / denominator
        updated /= np.exp(np.mean(np.log(updated)))
        if np.max(np.abs(updated - strength)) < 1e-10:
            strength = updated
            break
        strength = updated
    logs = np.log(strength)
    logs -= logs.mean()
    return {p: BASE + SCALE * float(logs[index[p]]) for p in players}


def elo(
    outcomes: Sequence[Outcome],
    players: Sequence[str],
    k: float = 4.0,
    rounds: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """Elo ratings averaged over ``rounds`` shuffled orders of the outcomes (mean 1000)."""
    rng = np.random.default_rng(seed)
    totals = dict.fromkeys(players, 0.0)
    for _ in range(rounds):
        rating = dict.fromkeys(players, BASE)
        for position in rng.permutation(len(outcomes)):
            a, b, score = outcomes[position]
            expected = 1 / (1 + 10 ** ((rating[b] - rating[a]) / 400))
            rating[a] += k * (score - expected)
            rating[b] -= k * (score - expected)
        for p in players:
            totals[p] += rating[p] / rounds
    return totals


@dataclass(frozen=True)
class Rating:
    player: str
    bradley_terry: float
    bt_low: float | None
    bt_high: float | None
    elo: float
    games: int


def ratings(outcomes: Sequence[Outcome], *, resamples: int = 200, seed: int = 0) -> list[Rating]:
    """Bradley–Terry (with bootstrap interval) and Elo per player, best first."""
    players = sorted({p for a, b, _ in outcomes for p in (a, b)})
    if not players:
        return []
    point = bradley_terry(outcomes, players)
    elos = elo(outcomes, players, seed=seed)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float | None]] = {p: [] for p in players}
    for _ in range(resamples):
        sample = [outcomes[i] for i in rng.integers(0, len(outcomes), len(outcomes))]
        values = bradley_terry(sample, players)
        for p in players:
            draws[p].append(values[p])
    games = {p: sum(p in (a, b) for a, b, _ in outcomes) for p in players}
    rows = []
    for p in players:
        interval = percentile_interval(draws[p]) if resamples else None
        rows.append(
            Rating(
                p,
                point[p],
                interval.low if interval else None,
                interval.high if interval else None,
                elos[p],
                games[p],
            )
        )
    return sorted(rows, key=lambda r: -r.bradley_terry)


def win_rates(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float | None]]:
    """matrix[a][b]: a's share of points against b (ties count half); None when they never met."""
    players = sorted({p for a, b, _ in outcomes for p in (a, b)})
    points = {a: dict.fromkeys(players, 0.0) for a in players}
    games = {a: dict.fromkeys(players, 0) for a in players}
    for a, b, score in outcomes:
        points[a][b] += score
        points[b][a] += 1 - score
        games[a][b] += 1
        games[b][a] += 1
    return {
        a: {b: points[a][b] / games[a][b] if games[a][b] else None for b in players}
        for a in players
    }


def rank_agreement(first: dict[str, float], second: dict[str, float]) -> float | None:
    """Kendall's tau-b between two ratings of the same players (None with fewer than two)."""
    common = sorted(set(first) & set(second))
    if len(common) < 2:
        return None
    tau = kendalltau([first[p] for p in common], [second[p] for p in common]).statistic
    return None if tau is None or math.isnan(tau) else float(tau)
