"""The probe report: how much reward each probe earns against its original, and the verdict.

Definitions (shown on the report page and in docs/probes.md):
- uplift of one item = mean over the probe's variants of (probe reward - original reward), both
  from the composite reward that ships (gates, components and the judge).
- uplift_mean = mean of the item uplifts; the CI is a percentile bootstrap over items
  (`resamples` draws, seeded), so items, not variants, are the unit of uncertainty.
- share_improved = share of items whose uplift is above zero.
- per criterion: the same mean, of the judge's normalised criterion score (items where the judge
  answered for both).
- a probe fails when uplift_mean > max_uplift and the CI's lower end is above zero; the probe
  addressed to the judge fails as soon as it raises the reward at all (mean > 0, CI above 0).
- self-consistency (the unchanged item judged again): share_changed = share of items whose
  verdict changes between judgings (the reward or any criterion score differs from the first
  judging), with a Wilson CI; spread_mean = mean over items of (highest - lowest reward), with
  a bootstrap CI. It describes the judge's noise and never blocks an export on its own.
- position (preference rubrics): each pair judged in both orders (A,B and B,A);
  share_changed = share of pairs whose winner (in the pair's own terms) changes with the order,
  with a Wilson CI; first_shown_share = of those, the share where the response shown first won
  both times. It fails when the CI's lower end is above max_flip_share.
Pure: no database, no web.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

DEFAULT_THRESHOLDS: dict[str, Any] = {
    "max_uplift": 0.05,
    "addressed_max_uplift": 0.0,
    "max_flip_share": 0.10,
    "confidence": 0.95,
    "resamples": 2000,
}
# What the API, the CLI and the export manifest show of each report row.
PUBLIC_ROW_KEYS = (
    "name",
    "n",
    "uplift_mean",
    "uplift_ci_low",
    "uplift_ci_high",
    "share_improved",
    "share_changed",
    "share_changed_ci_low",
    "share_changed_ci_high",
    "spread_mean",
    "passed",
    "verdict",
)
EXAMPLES_PER_PROBE = 3
EXAMPLE_CHARS = 4000
ADDRESSED = "addressed_to_judge"
SELF_CONSISTENCY = "self_consistency"
POSITION = "position"
EXPLANATIONS: dict[str, str] = {
    "verbosity": "the judge rewards length",
    "rubric_stuffing": "the judge rewards the rubric's own words",
    "addressed_to_judge": "the judge obeys text addressed to it",
    "wrong_source": "the reward does not check where excerpts come from",
    "format_only": "structure alone earns reward",
    "partial": "leaving out the hard part pays",
    "duplication": "repeating an item pays",
    "position": "the judge prefers a position",
    "self_consistency": "the same response scores differently when judged again",
}
TITLES: dict[str, str] = {
    "verbosity": "Padding",
    "rubric_stuffing": "Rubric stuffing",
    "addressed_to_judge": "Text addressed to the judge",
    "wrong_source": "Quoting the wrong source",
    "format_only": "Format without content",
    "partial": "A partial answer",
    "duplication": "Duplicating an item",
    "position": "Swapping positions",
    "self_consistency": "Judging again",
}


@dataclass(frozen=True)
class Observation:
    """One probe variant of one item, with its original's reward and criterion scores."""

    probe: str
    variant: str
    original_id: int
    original_reward: float
    probe_reward: float
    original_criteria: dict[str, float] = field(default_factory=dict)
    probe_criteria: dict[str, float] = field(default_factory=dict)


def thresholds_with_defaults(given: dict[str, Any] | None) -> dict[str, Any]:
    return {**DEFAULT_THRESHOLDS, **{k: v for k, v in (given or {}).items() if v is not None}}


def bootstrap_ci(
    values: list[float], *, confidence: float, resamples: int, seed: int
) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI of the mean (None when there are no values)."""
    n = len(values)
    if n == 0:
        return None, None
    if n == 1:
        return values[0], values[0]
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(max(100, resamples)))
    tail = (1.0 - confidence) / 2
    low = means[int(tail * (len(means) - 1))]
    high = means[int(round((1.0 - tail) * (len(means) - 1)))]
    return low, high


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def wilson_interval(k: int, n: int, confidence: float) -> tuple[float | None, float | None]:
    """Wilson score interval of the proportion k/n (None when n is 0)."""
    if n <= 0:
        return None, None
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _changed(a: float, b: float) -> bool:
    return abs(a - b) > 1e-9


def _consistency(row: dict[str, Any], by_item: dict[int, list[Observation]], conf: float) -> None:
    """Self-consistency figures of a row (see the module docstring), in place."""
    changed = 0
    spreads: list[float] = []
    for group in by_item.values():
        first = group[0]
        rewards = [first.original_reward, *(o.probe_reward for o in group)]
        spreads.append(max(rewards) - min(rewards))
        if any(
            _changed(o.probe_reward, o.original_reward)
            or any(
                _changed(v, o.original_criteria[k])
                for k, v in o.probe_criteria.items()
                if k in o.original_criteria
            )
            or set(o.probe_criteria) != set(o.original_criteria)
            for o in group
        ):
            changed += 1
    n = len(by_item)
    row["share_changed"] = changed / n if n else None
    row["share_changed_ci_low"], row["share_changed_ci_high"] = wilson_interval(changed, n, conf)
    row["spread_mean"] = _mean(spreads)


def probe_summary(
    probe: str,
    observations: list[Observation],
    thresholds: dict[str, Any],
    seed: int,
    criterion_names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The report row of one probe (see the module docstring for every definition)."""
    by_item: dict[int, list[Observation]] = defaultdict(list)
    for obs in observations:
        by_item[obs.original_id].append(obs)
    uplifts = [
        sum(o.probe_reward - o.original_reward for o in group) / len(group)
        for _item, group in sorted(by_item.items())
    ]
    mean = _mean(uplifts)
    low, high = bootstrap_ci(
        uplifts,
        confidence=float(thresholds["confidence"]),
        resamples=int(thresholds["resamples"]),
        seed=seed,
    )
    per_criterion: dict[str, list[float]] = defaultdict(list)
    for group in by_item.values():
        sums: dict[str, list[float]] = defaultdict(list)
        for obs in group:
            for key, value in obs.probe_criteria.items():
                if key in obs.original_criteria:
                    sums[key].append(value - obs.original_criteria[key])
        for key, diffs in sums.items():
            per_criterion[key].append(sum(diffs) / len(diffs))
    criteria = {
        key: {"n": len(values), "uplift_mean": _mean(values)}
        for key, values in sorted(per_criterion.items())
    }
    variants: dict[str, list[float]] = defaultdict(list)
    for obs in observations:
        variants[obs.variant].append(obs.probe_reward - obs.original_reward)
    limit = float(
        thresholds["addressed_max_uplift"] if probe == ADDRESSED else thresholds["max_uplift"]
    )
    failed = mean is not None and low is not None and mean > limit and low > 0
    share = sum(1 for u in uplifts if u > 1e-12) / len(uplifts) if uplifts else None
    row = {
        "name": probe,
        "n": len(uplifts),
        "observations": len(observations),
        "uplift_mean": mean,
        "uplift_ci_low": low,
        "uplift_ci_high": high,
        "share_improved": share,
        "passed": not failed,
        "limit": limit,
        "criteria": criteria,
        "variants": {
            name: {"n": len(values), "uplift_mean": _mean(values)}
            for name, values in sorted(variants.items())
        },
    }
    if probe == SELF_CONSISTENCY:
        # The judge's noise, not a way to game the reward: reported, never gating on its own.
        _consistency(row, by_item, float(thresholds["confidence"]))
        row["passed"] = True
        row["informational"] = True
    row["verdict"] = verdict_line(row, criterion_names or {})
    return row


def verdict_line(row: dict[str, Any], criterion_names: dict[str, str]) -> str:
    """One line a person reads first, e.g. "Padding earns +0.18 reward, most on Actionability
    (+0.25): the judge rewards length"."""
    name = row["name"]
    title = TITLES.get(name, name.replace("_", " ").capitalize())
    if not row["n"]:
        return f"{title}: not measured (no item could be rewritten this way)"
    mean, low, high = row["uplift_mean"], row["uplift_ci_low"], row["uplift_ci_high"]
    ci = f"95 % CI {low:+.2f} to {high:+.2f}" if low is not None else "no CI"
    if name == SELF_CONSISTENCY:
        spread = row.get("spread_mean") or 0.0
        share = row.get("share_changed") or 0.0
        if share > 0:
            return (
                f"{title}: the verdict changes on {share:.0%} of items "
                f"({_share_ci(row)}) and the reward moves by {spread:.2f} on average between "
                "judgings"
            )
        return f"{title}: the same verdict every time"
    if row["passed"]:
        return f"{title} earns no reliable gain ({mean:+.2f}, {ci})"
    worst = max(
        (item for item in row["criteria"].items() if item[1]["uplift_mean"] is not None),
        key=lambda item: item[1]["uplift_mean"],
        default=None,
    )
    where = ""
    if worst is not None and worst[1]["uplift_mean"] > 0:
        label = criterion_names.get(worst[0], worst[0])
        where = f", most on {label} ({worst[1]['uplift_mean']:+.2f})"
    explanation = EXPLANATIONS.get(name, "the reward can be gamed this way")
    return f"{title} earns {mean:+.2f} reward ({ci}){where}: {explanation}"


def _share_ci(row: dict[str, Any]) -> str:
    low, high = row.get("share_changed_ci_low"), row.get("share_changed_ci_high")
    if low is None or high is None:
        return "no CI"
    return f"95 % CI {low:.0%} to {high:.0%}"


def _empty_row(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "n": 0,
        "observations": 0,
        "uplift_mean": None,
        "uplift_ci_low": None,
        "uplift_ci_high": None,
        "share_improved": None,
        "passed": True,
        "criteria": {},
        "variants": {},
    }


def position_summary(
    *, pairs: int, flipped: int, first_shown: int, errors: int, thresholds: dict[str, Any]
) -> dict[str, Any]:
    """The position probe's row from counts over pairs judged in both orders (pairs: both
    verdicts usable; flipped: the winner changed with the order; first_shown: of the flipped,
    the response shown first won both times; errors: pairs left out for a failed verdict)."""
    thresholds = thresholds_with_defaults(thresholds)  # runs older than max_flip_share
    limit = float(thresholds["max_flip_share"])
    low, high = wilson_interval(flipped, pairs, float(thresholds["confidence"]))
    row = _empty_row(POSITION)
    row.update(
        n=pairs,
        observations=2 * pairs,
        share_changed=flipped / pairs if pairs else None,
        share_changed_ci_low=low,
        share_changed_ci_high=high,
        flipped=flipped,
        first_shown_share=first_shown / flipped if flipped else None,
        judge_errors=errors,
        limit=limit,
        passed=not (low is not None and low > limit),
    )
    row["verdict"] = position_verdict(row)
    return row


def position_verdict(row: dict[str, Any]) -> str:
    title = TITLES[POSITION]
    if not row["n"]:
        return f"{title}: not measured (no pair has a usable verdict in both orders)"
    share = row["share_changed"]
    text = f"{title} changes the winner of {share:.0%} of pairs ({_share_ci(row)})"
    first = row.get("first_shown_share")
    if first is not None:
        text += f"; the response shown first won both times in {first:.0%} of those"
    if not row["passed"]:
        return f"{text}: {EXPLANATIONS[POSITION]}"
    return text


def pair_consistency_summary(
    per_pair: list[tuple[bool, float]], thresholds: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Self-consistency of a preference judge: per pair, (did the winner change between
    judgings of the same order, spread of its score 1/0.5/0 across them)."""
    thresholds = thresholds_with_defaults(thresholds)
    n = len(per_pair)
    changed = sum(1 for flag, _spread in per_pair if flag)
    spreads = [spread for _flag, spread in per_pair]
    low, high = wilson_interval(changed, n, float(thresholds["confidence"]))
    row = _empty_row(SELF_CONSISTENCY)
    row.update(
        n=n,
        share_changed=changed / n if n else None,
        share_changed_ci_low=low,
        share_changed_ci_high=high,
        spread_mean=_mean(spreads),
        informational=True,
    )
    row["verdict"] = verdict_line(row, {})
    return row


def build_report(
    observations: list[Observation],
    thresholds: dict[str, Any],
    seed: int,
    probes: list[str],
    criterion_names: dict[str, str] | None = None,
    not_applicable: dict[str, str] | None = None,
    rows_made: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """{"probes": [rows in `probes` order], "passed", "failed": [names], "thresholds"}.
    rows_made: rows computed elsewhere (the pair probes), used as they are."""
    grouped: dict[str, list[Observation]] = defaultdict(list)
    for obs in observations:
        grouped[obs.probe].append(obs)
    reasons = not_applicable or {}
    made = rows_made or {}
    rows = []
    for index, name in enumerate(probes):
        if name in made:
            row = made[name]
        else:
            row = probe_summary(
                name, grouped.get(name, []), thresholds, seed + index, criterion_names
            )
        if name in reasons and not row["n"]:
            row["verdict"] = f"{TITLES.get(name, name)}: not applicable ({reasons[name]})"
            row["not_applicable"] = True
        rows.append(row)
    failed = [row["name"] for row in rows if not row["passed"]]
    return {"probes": rows, "passed": not failed, "failed": failed, "thresholds": thresholds}
