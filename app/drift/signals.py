"""Reward-hacking and judge-drift signals over a training run's step buckets.

Pure: no database, no web. `compute_signals(buckets, thresholds, agreement)` evaluates every
kind and returns one `SignalResult` each (fired or not, with its evidence). Each kind needs a
statistically significant change (one-sided tests at `alpha`, Bonferroni-corrected when one
signal makes several tests) AND a change at least as large as its practical threshold, so a
stationary run does not raise them (tests/unit/drift/test_signals.py runs 200 seeds).

Tests used: one-sided two-proportion z-tests on pooled counts early vs late, Welch's z for a rise
in a mean (pooled from each bucket's mean and standard deviation), a one-sided binomial test
against a rate threshold, and Fisher's z for the rise of a rank correlation. "Early" is the first
quarter of the buckets (at least 2), "late" the last quarter. The onset is the bucket where a
hinge fit (flat, then a jump and a slope) of the series has its least squared error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

from app.drift.signal_types import (
    AgreementBucket,
    BucketStats,
    DriftThresholds,
    Severity,
    SignalKind,
    SignalResult,
)
from app.drift.significance import (
    correlation_rise_p,
    mean_rise_p,
    onset_index,
    two_proportion_p,
)

# ---------------------------------------------------------------------------- statistics


def pooled(
    items: Sequence[BucketStats],
    mean: Callable[[BucketStats], float | None],
    sd: Callable[[BucketStats], float | None],
) -> tuple[float, float, int] | None:
    """(mean, variance, n) of the samples of several buckets from each bucket's mean and sd."""
    parts = [(b.n, mean(b), sd(b)) for b in items if mean(b) is not None and sd(b) is not None]
    n = sum(k for k, _, _ in parts)
    if n < 2:
        return None
    grand = sum(k * float(m) for k, m, _ in parts if m is not None) / n
    within = sum((k - 1) * float(s) ** 2 for k, _, s in parts if s is not None)
    between = sum(k * (float(m) - grand) ** 2 for k, m, _ in parts if m is not None)
    return grand, (within + between) / (n - 1), n


def _severity(effect: float, threshold: float, p: float, alpha: float) -> Severity:
    ratio = abs(effect) / threshold if threshold > 0 else 2.0
    if ratio >= 2.0 and p < alpha / 10:
        return Severity.high
    if ratio >= 1.5:
        return Severity.medium
    return Severity.low


@dataclass(frozen=True)
class _Window:
    buckets: list[BucketStats]
    early: list[BucketStats]
    late: list[BucketStats]


def _window(buckets: Sequence[BucketStats], t: DriftThresholds) -> _Window | None:
    usable = [b for b in buckets if b.n >= t.min_bucket_n]
    if len(usable) < max(t.min_buckets, 4):
        return None
    k = max(2, len(usable) // 4)
    return _Window(usable, usable[:k], usable[-k:])


def _weighted(
    items: Sequence[BucketStats], value: Callable[[BucketStats], float | None]
) -> float | None:
    pairs = [(b.n, value(b)) for b in items if value(b) is not None]
    total = sum(n for n, _ in pairs)
    return sum(n * v for n, v in pairs if v is not None) / total if total else None


def _not_evaluated(kind: SignalKind, reason: str) -> SignalResult:
    return SignalResult(kind, fired=False, evaluated=False, summary=reason)


def _onset(w: _Window, series: Sequence[float]) -> tuple[int, int]:
    index = onset_index(series)
    return index, w.buckets[index].step_start


def _series_table(w: _Window, value: Callable[[BucketStats], float | None]) -> list[list[Any]]:
    return [[b.step_start, b.step_end, b.n, value(b)] for b in w.buckets]


# ---------------------------------------------------------------------------- the signals


def judge_failing(buckets: Sequence[BucketStats], t: DriftThresholds) -> SignalResult:
    kind = SignalKind.judge_failing
    usable = [b for b in buckets if b.n >= t.min_bucket_n]
    if not usable:
        return _not_evaluated(kind, f"no bucket has {t.min_bucket_n} samples yet")
    alpha = t.alpha / len(usable)
    hits: list[tuple[int, BucketStats, float, float]] = []
    for index, b in enumerate(usable):
        rate = max(b.judge_error_rate or 0.0, b.neutral_rate or 0.0)
        count = round(rate * b.n)
        p = float(stats.binomtest(count, b.n, t.judge_error_rate, alternative="greater").pvalue)
        if rate > t.judge_error_rate and p < alpha:
            hits.append((index, b, rate, p))
    table = [[b.step_start, b.step_end, b.n, b.judge_error_rate, b.neutral_rate] for b in usable]
    if not hits:
        return SignalResult(
            kind,
            False,
            True,
            summary="judge errors stay below the threshold",
            evidence={"threshold": t.judge_error_rate, "buckets": table},
        )
    index, first, rate, p = hits[0]
    worst = max(h[2] for h in hits)
    return SignalResult(
        kind,
        True,
        True,
        onset_step=first.step_start,
        onset_bucket=index,
        severity=_severity(
            worst - t.judge_error_rate, t.judge_error_rate, min(h[3] for h in hits), alpha
        ),
        p_value=min(h[3] for h in hits),
        statistic=f"binomial test against {t.judge_error_rate:.0%}, Bonferroni over "
        f"{len(usable)} buckets",
        summary=f"{len(hits)} of {len(usable)} buckets have a judge error or neutral-reward rate "
        f"above {t.judge_error_rate:.0%} (worst {worst:.1%}), from step {first.step_start}",
        evidence={"threshold": t.judge_error_rate, "buckets": table, "worst_rate": worst},
    )


def _rate_rise(
    kind: SignalKind,
    w: _Window,
    t: DriftThresholds,
    *,
    count: Callable[[BucketStats], float],
    total: Callable[[BucketStats], float],
    min_rise: float,
    floor: float | None,
    what: str,
) -> SignalResult:
    x1, n1 = sum(count(b) for b in w.early), sum(total(b) for b in w.early)
    x2, n2 = sum(count(b) for b in w.late), sum(total(b) for b in w.late)
    if n1 <= 0 or n2 <= 0:
        return _not_evaluated(kind, f"no {what} to measure early and late")
    early, late = x1 / n1, x2 / n2
    series = [count(b) / total(b) if total(b) else 0.0 for b in w.buckets]
    p = two_proportion_p(x1, n1, x2, n2)
    rise = late - early
    evidence = {
        "early": early,
        "late": late,
        "early_n": n1,
        "late_n": n2,
        "threshold": min_rise if floor is None else floor,
        "buckets": [
            [b.step_start, b.step_end, total(b), s] for b, s in zip(w.buckets, series, strict=True)
        ],
    }
    big_enough = rise >= min_rise if floor is None else late >= floor and rise > 0
    fired = big_enough and p < t.alpha
    summary = f"{what}: {early:.1%} early, {late:.1%} late"
    if not fired:
        return SignalResult(kind, False, True, p_value=p, summary=summary, evidence=evidence)
    index, step = _onset(w, series)
    return SignalResult(
        kind,
        True,
        True,
        onset_step=step,
        onset_bucket=index,
        severity=_severity(rise, min_rise if floor is None else floor, p, t.alpha),
        p_value=p,
        statistic="one-sided two-proportion z-test, early quarter of the buckets against the "
        "late quarter",
        summary=summary,
        evidence=evidence,
    )


def _rate_signal(
    kind: SignalKind,
    buckets: Sequence[BucketStats],
    t: DriftThresholds,
    *,
    needs_groups: bool = False,
    **rate: Any,
) -> SignalResult:
    """A rate rising from the early to the late buckets (see `_rate_rise`), when measurable."""
    w = _window(buckets, t)
    if w is None:
        return _not_evaluated(kind, "too few buckets with enough samples")
    if needs_groups and sum(b.groups for b in w.buckets) == 0:
        return _not_evaluated(kind, "no GRPO groups (records have no group_id)")
    return _rate_rise(kind, w, t, **rate)


def grounding_decay(buckets: Sequence[BucketStats], t: DriftThresholds) -> SignalResult:
    return _rate_signal(
        SignalKind.grounding_decay,
        buckets,
        t,
        count=lambda b: (b.ungrounded_share or 0.0) * b.quotes,
        total=lambda b: float(b.quotes),
        min_rise=t.grounding_rise,
        floor=None,
        what="quoted excerpts not found in the target document",
    )


def judge_addressed_text(buckets: Sequence[BucketStats], t: DriftThresholds) -> SignalResult:
    return _rate_signal(
        SignalKind.judge_addressed_text,
        buckets,
        t,
        count=lambda b: float(b.judge_addressed),
        total=lambda b: float(b.n),
        min_rise=t.addressed_rate,
        floor=t.addressed_rate,
        what="responses addressed to the judge",
    )


def signal_collapse(buckets: Sequence[BucketStats], t: DriftThresholds) -> SignalResult:
    return _rate_signal(
        SignalKind.signal_collapse,
        buckets,
        t,
        needs_groups=True,
        count=lambda b: (b.zero_spread_share or 0.0) * b.groups,
        total=lambda b: float(b.groups),
        min_rise=t.collapse_rise,
        floor=None,
        what="groups whose rewards are all equal",
    )


def length_hacking(buckets: Sequence[BucketStats], t: DriftThresholds) -> SignalResult:
    kind = SignalKind.length_hacking
    w = _window(buckets, t)
    if w is None:
        return _not_evaluated(kind, "too few buckets with enough samples")
    lengths = [b.length_mean or 0.0 for b in w.buckets]
    len_early = pooled(w.early, lambda b: b.length_mean, lambda b: b.length_sd)
    len_late = pooled(w.late, lambda b: b.length_mean, lambda b: b.length_sd)
    rew_early = pooled(w.early, lambda b: b.reward_mean, lambda b: b.reward_sd)
    rew_late = pooled(w.late, lambda b: b.reward_mean, lambda b: b.reward_sd)
    r_early = _weighted(w.early, lambda b: b.reward_length_spearman)
    r_late = _weighted(w.late, lambda b: b.reward_length_spearman)
    if None in (len_early, len_late, rew_early, rew_late, r_early, r_late):
        return _not_evaluated(kind, "no length, reward or correlation figures")
    assert len_early and len_late and rew_early and rew_late
    assert r_early is not None and r_late is not None
    early_len, late_len = len_early[0], len_late[0]
    if early_len <= 0:
        return _not_evaluated(kind, "responses are empty")
    ratio = late_len / early_len
    p_len = mean_rise_p(len_early, len_late)
    p_reward = mean_rise_p(rew_early, rew_late)
    p_corr = correlation_rise_p(r_early, len_early[2], r_late, len_late[2])
    p = max(p_len, p_reward, p_corr)
    evidence = {
        "length_early": early_len,
        "length_late": late_len,
        "length_ratio": ratio,
        "spearman_early": r_early,
        "spearman_late": r_late,
        "p_length_rise": p_len,
        "p_reward_rise": p_reward,
        "p_correlation_rise": p_corr,
        "threshold_ratio": t.length_ratio,
        "threshold_correlation_rise": t.correlation_rise,
        "buckets": [
            [b.step_start, b.step_end, b.n, b.length_mean, b.reward_mean, b.reward_length_spearman]
            for b in w.buckets
        ],
    }
    summary = (
        f"length {early_len:,.0f} → {late_len:,.0f} characters (×{ratio:.2f}); reward–length "
        f"Spearman {r_early:+.2f} → {r_late:+.2f}"
    )
    fired = (
        ratio >= t.length_ratio
        and late_len > early_len
        and rew_late[0] > rew_early[0]
        and r_late - r_early >= t.correlation_rise
        and p < t.alpha
    )
    if not fired:
        return SignalResult(kind, False, True, p_value=p, summary=summary, evidence=evidence)
    index, step = _onset(w, lengths)
    return SignalResult(
        kind,
        True,
        True,
        onset_step=step,
        onset_bucket=index,
        severity=_severity(ratio - 1, t.length_ratio - 1, p, t.alpha),
        p_value=p,
        statistic="Welch's z for the rise of length and of reward (early vs late quarter), "
        "Fisher's z for the rise in Spearman's rho; the largest p",
        summary=summary,
        evidence=evidence,
    )


def criterion_divergence(buckets: Sequence[BucketStats], t: DriftThresholds) -> SignalResult:
    kind = SignalKind.criterion_divergence
    w = _window(buckets, t)
    if w is None:
        return _not_evaluated(kind, "too few buckets with enough samples")
    names = sorted({name for b in w.buckets for name in b.criteria})
    if len(names) < 2:
        return _not_evaluated(kind, "fewer than two criteria or components recorded")
    alpha = t.alpha / (2 * len(names))
    rows = []
    up, down = [], []
    for name in names:
        series = [b.criteria.get(name) for b in w.buckets]
        values = [v for v in series if v is not None]
        if len(values) < len(series) * 0.75:
            continue
        binary = all(b.criteria_binary.get(name, False) for b in w.buckets if name in b.criteria)
        low, span = _scale(values, binary)
        early = _weighted(w.early, _criterion(name))
        late = _weighted(w.late, _criterion(name))
        if early is None or late is None:
            continue
        change = (late - early) / span
        # Values rescaled to 0..1 have a variance of at most m(1 - m): the proportion test on
        # the rescaled means is conservative for scores and exact for pass/fail criteria.
        n1, n2 = sum(b.n for b in w.early), sum(b.n for b in w.late)
        m1, m2 = (early - low) / span, (late - low) / span
        p_up = two_proportion_p(m1 * n1, n1, m2 * n2, n2, larger=True)
        p_down = two_proportion_p(m1 * n1, n1, m2 * n2, n2, larger=False)
        rows.append(
            {
                "name": name,
                "early": early,
                "late": late,
                "change": change,
                "p_up": p_up,
                "p_down": p_down,
            }
        )
        if change >= t.criterion_change and p_up < alpha:
            up.append((name, change, p_up, values))
        if change <= -t.criterion_change and p_down < alpha:
            down.append((name, change, p_down, values))
    evidence = {"criteria": rows, "threshold": t.criterion_change}
    if not (up and down):
        return SignalResult(
            kind,
            False,
            True,
            summary="no criteria moving in opposite directions",
            evidence=evidence,
        )
    falling = min(down, key=lambda item: item[1])
    rising = max(up, key=lambda item: item[1])
    p = max(falling[2], rising[2]) * 2 * len(names)
    # The gap between the most rising and the most falling criterion: both changes at once.
    index, step = _onset(w, [u - d for u, d in zip(rising[3], falling[3], strict=False)])
    return SignalResult(
        kind,
        True,
        True,
        onset_step=step,
        onset_bucket=index,
        severity=_severity(min(rising[1], -falling[1]), t.criterion_change, p, t.alpha),
        p_value=min(p, 1.0),
        statistic=f"two-proportion z-test per criterion on its 0..1 scale (early vs late "
        f"quarter), Bonferroni over {2 * len(names)} tests",
        summary=f"up: {', '.join(n for n, *_ in up)}; down: {', '.join(n for n, *_ in down)}",
        evidence=evidence,
    )


def _scale(values: list[float], binary: bool) -> tuple[float, float]:
    """(lowest value, span) of a criterion's scale: 0..1 for pass/fail and normalised scores,
    1..5 for scores in that range, else the observed range."""
    if binary or (min(values) >= 0.0 and max(values) <= 1.0):
        return 0.0, 1.0
    if min(values) >= 1.0 and max(values) <= 5.0:
        return 1.0, 4.0
    return min(values), (max(values) - min(values)) or 1.0


def _criterion(name: str) -> Callable[[BucketStats], float | None]:
    return lambda b: b.criteria.get(name)


def _agreement_window(
    agreement: Sequence[AgreementBucket], t: DriftThresholds
) -> list[AgreementBucket]:
    return [a for a in agreement if a.n > 0]


def agreement_drop(agreement: Sequence[AgreementBucket] | None, t: DriftThresholds) -> SignalResult:
    kind = SignalKind.agreement_drop
    usable = _agreement_window(agreement or [], t)
    if len(usable) < 3:
        return _not_evaluated(kind, "needs audit labels in at least three step buckets")
    k = max(1, len(usable) // 3)
    early, late = usable[:k], usable[-k:]
    x1, n1 = sum(a.agreements for a in early), sum(a.n for a in early)
    x2, n2 = sum(a.agreements for a in late), sum(a.n for a in late)
    p = two_proportion_p(x1, n1, x2, n2, larger=False)
    drop = x1 / n1 - x2 / n2
    evidence = {
        "early": x1 / n1,
        "late": x2 / n2,
        "early_n": n1,
        "late_n": n2,
        "threshold": t.agreement_drop,
        "buckets": [[a.step_start, a.step_end, a.n, a.agreements / a.n, a.kappa] for a in usable],
    }
    summary = f"agreement {x1 / n1:.0%} early (n={n1}), {x2 / n2:.0%} late (n={n2})"
    if not (drop >= t.agreement_drop and p < t.alpha):
        return SignalResult(kind, False, True, p_value=p, summary=summary, evidence=evidence)
    index = onset_index([-(a.agreements / a.n) for a in usable])
    return SignalResult(
        kind,
        True,
        True,
        onset_step=usable[index].step_start,
        onset_bucket=index,
        severity=_severity(drop, t.agreement_drop, p, t.alpha),
        p_value=p,
        statistic="two-proportion z-test, early third vs late third of the audited buckets",
        summary=summary,
        evidence=evidence,
    )


def reward_without_quality(
    buckets: Sequence[BucketStats], agreement: Sequence[AgreementBucket] | None, t: DriftThresholds
) -> SignalResult:
    kind = SignalKind.reward_without_quality
    usable = _agreement_window(agreement or [], t)
    w = _window(buckets, t)
    if w is None:
        return _not_evaluated(kind, "too few buckets with enough samples")
    if len(usable) < 3:
        return _not_evaluated(kind, "needs audit labels in at least three step buckets")
    rewards = [b.reward_mean or 0.0 for b in w.buckets]
    rew_early = pooled(w.early, lambda b: b.reward_mean, lambda b: b.reward_sd)
    rew_late = pooled(w.late, lambda b: b.reward_mean, lambda b: b.reward_sd)
    if rew_early is None or rew_late is None:
        return _not_evaluated(kind, "no reward figures")
    early_r, late_r = rew_early[0], rew_late[0]
    p_reward = mean_rise_p(rew_early, rew_late)
    k = max(1, len(usable) // 3)
    h1 = sum(a.human_passes for a in usable[:k]) / max(1, sum(a.n for a in usable[:k]))
    h2 = sum(a.human_passes for a in usable[-k:]) / max(1, sum(a.n for a in usable[-k:]))
    evidence = {
        "reward_early": early_r,
        "reward_late": late_r,
        "p_reward_trend": p_reward,
        "human_pass_early": h1,
        "human_pass_late": h2,
        "threshold_reward_rise": t.reward_rise,
        "quality_tolerance": t.quality_rise_tolerance,
    }
    summary = f"reward {early_r:.2f} → {late_r:.2f}; reviewers' pass rate {h1:.0%} → {h2:.0%}"
    fired = (
        late_r - early_r >= t.reward_rise
        and p_reward < t.alpha
        and h2 - h1 <= t.quality_rise_tolerance
    )
    if not fired:
        return SignalResult(kind, False, True, p_value=p_reward, summary=summary, evidence=evidence)
    index, step = _onset(w, rewards)
    return SignalResult(
        kind,
        True,
        True,
        onset_step=step,
        onset_bucket=index,
        severity=_severity(late_r - early_r, t.reward_rise, p_reward, t.alpha),
        p_value=p_reward,
        statistic="Welch's z for the rise of the reward (early vs late quarter); reviewers' "
        "pass rate early vs late third of the audited buckets",
        summary=summary,
        evidence=evidence,
    )


def compute_signals(
    buckets: Sequence[BucketStats],
    thresholds: DriftThresholds | None = None,
    agreement: Sequence[AgreementBucket] | None = None,
) -> list[SignalResult]:
    """Every signal kind, in SignalKind order."""
    t = thresholds or DriftThresholds()
    return [
        agreement_drop(agreement, t),
        reward_without_quality(buckets, agreement, t),
        length_hacking(buckets, t),
        criterion_divergence(buckets, t),
        grounding_decay(buckets, t),
        judge_addressed_text(buckets, t),
        judge_failing(buckets, t),
        signal_collapse(buckets, t),
    ]
