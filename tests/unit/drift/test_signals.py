"""Drift signals: each fires on a planted pattern at the right bucket; none fires on stationary
runs (200 seeds) with the default thresholds."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from app.drift.signal_types import AgreementBucket, BucketStats, DriftThresholds, SignalKind
from app.drift.signals import compute_signals

WIDTH = 50
BUCKETS = 13  # steps 0..649
PER_BUCKET = 160
CHANGE_BUCKET = 7  # the planted change begins at step 350

Planted = Callable[[int], dict[str, float]]


def _stationary(_index: int) -> dict[str, float]:
    return {}


def simulate(seed: int, planted: Planted = _stationary) -> list[BucketStats]:
    """Per-sample draws reduced to the bucket figures the series gives."""
    rng = np.random.default_rng(seed)
    out = []
    for index in range(BUCKETS):
        p = planted(index)
        n = PER_BUCKET
        quality = rng.normal(0, 1, n)
        length = rng.lognormal(np.log(1500 * p.get("length_factor", 1.0)), 0.3, n)
        reward = np.clip(
            0.6
            + p.get("reward_shift", 0.0)
            + 0.1 * quality
            + p.get("length_reward", 0.0) * (np.log(length) - np.log(1500)),
            0,
            1,
        )
        errors = rng.random(n) < p.get("error_rate", 0.01)
        addressed = rng.random(n) < p.get("addressed_rate", 0.002)
        quotes = rng.integers(3, 7, n)
        ungrounded = rng.binomial(quotes, p.get("ungrounded", 0.05))
        groups = n // 4
        zero = rng.random(groups) < p.get("zero_spread", 0.10)
        grounding = rng.random(n) < 0.6 + p.get("grounding_shift", 0.0)
        actionable = rng.random(n) < 0.6 + p.get("actionable_shift", 0.0)
        consistency = rng.random(n) < 0.6
        out.append(
            BucketStats(
                step_start=index * WIDTH,
                step_end=index * WIDTH + WIDTH - 1,
                n=n,
                reward_mean=float(reward.mean()),
                reward_sd=float(reward.std(ddof=1)),
                length_mean=float(length.mean()),
                length_sd=float(length.std(ddof=1)),
                reward_length_spearman=float(stats.spearmanr(reward, length).statistic),
                judge_error_rate=float(errors.mean()),
                neutral_rate=float(errors.mean()),
                judge_addressed=int(addressed.sum()),
                quotes=int(quotes.sum()),
                ungrounded_share=float(ungrounded.sum() / quotes.sum()),
                groups=groups,
                zero_spread_share=float(zero.mean()),
                criteria={
                    "grounding": float(grounding.mean()),
                    "actionability": float(actionable.mean()),
                    "consistency": float(consistency.mean()),
                },
                criteria_binary={"grounding": True, "actionability": True, "consistency": True},
            )
        )
    return out


def after(change: dict[str, float], ramp: bool = True) -> Planted:
    """The change from CHANGE_BUCKET on, growing over the late buckets when ramp."""

    def planted(index: int) -> dict[str, float]:
        if index < CHANGE_BUCKET:
            return {}
        # Gaming starts clearly at the change and keeps growing.
        scale = 0.5 + 0.5 * (index - CHANGE_BUCKET) / (BUCKETS - CHANGE_BUCKET - 1) if ramp else 1.0
        return {
            key: (1 + (value - 1) * scale if key == "length_factor" else value * scale)
            for key, value in change.items()
        }

    return planted


def agreement_series(drop: bool, seed: int) -> list[AgreementBucket]:
    rng = np.random.default_rng(seed + 10_000)
    out = []
    for index in range(BUCKETS):
        late = drop and index >= CHANGE_BUCKET
        n = 20
        agree = int(rng.binomial(n, 0.55 if late else 0.9))
        passes = int(rng.binomial(n, 0.5 if late else 0.6))
        out.append(AgreementBucket(index * WIDTH, index * WIDTH + WIDTH - 1, n, agree, passes))
    return out


def fired(results: list, kind: SignalKind):  # type: ignore[no-untyped-def]
    return next(r for r in results if r.kind == kind)


PLANTS: dict[SignalKind, Planted] = {
    SignalKind.length_hacking: after({"length_factor": 2.0, "length_reward": 0.25}),
    SignalKind.grounding_decay: after({"ungrounded": 0.35}),
    SignalKind.judge_addressed_text: after({"addressed_rate": 0.12}, ramp=False),
    SignalKind.judge_failing: after({"error_rate": 0.2}, ramp=False),
    SignalKind.signal_collapse: after({"zero_spread": 0.6}),
    SignalKind.criterion_divergence: after({"grounding_shift": -0.35, "actionable_shift": 0.3}),
}


@pytest.mark.parametrize("kind", list(PLANTS), ids=str)
def test_each_signal_fires_on_its_planted_pattern_at_the_change(kind: SignalKind) -> None:
    for seed in range(5):
        results = compute_signals(simulate(seed, PLANTS[kind]))
        result = fired(results, kind)
        assert result.fired, (seed, result.summary, result.p_value)
        assert result.onset_step == CHANGE_BUCKET * WIDTH, (seed, result.onset_step)
        assert result.severity is not None and result.evidence
        public = result.public()
        assert public["kind"] == kind.value and public["onset_step"] == 350


def test_agreement_drop_and_reward_without_quality_fire_with_an_audit() -> None:
    buckets = simulate(1, after({"reward_shift": 0.2}))
    results = compute_signals(buckets, agreement=agreement_series(True, 1))
    drop = fired(results, SignalKind.agreement_drop)
    assert drop.fired and drop.onset_step == 350, drop.summary
    rwq = fired(results, SignalKind.reward_without_quality)
    assert rwq.fired and rwq.onset_step == 350, rwq.summary


def test_signals_needing_an_audit_are_not_evaluated_without_one() -> None:
    results = compute_signals(simulate(0))
    for kind in (SignalKind.agreement_drop, SignalKind.reward_without_quality):
        result = fired(results, kind)
        assert not result.fired and not result.evaluated and "audit" in result.summary


def test_no_signal_fires_on_stationary_runs_over_200_seeds() -> None:
    raised = []
    for seed in range(200):
        results = compute_signals(
            simulate(seed), DriftThresholds(), agreement=agreement_series(False, seed)
        )
        raised.extend((seed, r.kind.value, r.summary) for r in results if r.fired)
    assert raised == []


def test_thresholds_from_project_settings_keep_defaults_for_bad_values() -> None:
    t = DriftThresholds.from_settings({"alpha": 0.01, "length_ratio": "x", "min_bucket_n": 5.0})
    assert t.alpha == 0.01 and t.length_ratio == 1.2 and t.min_bucket_n == 5
