"""Rewards from stored verdicts and the preview's figures: each rollout's component results and
composite outcome, component applicability, the histogram and per-component summaries. No
queries here: app.rewards.service reads the rows and hands them over."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from app.judging.models import JudgeRun, Verdict
from app.rewards import components, composite
from app.rewards.config import RewardConfigModel
from app.rollouts.models import Rollout

HISTOGRAM_BINS = 10
ERROR_STATUSES = ("invalid", "error")


@dataclass
class RolloutReward:
    rollout_id: int
    external_id: str
    group_key: str | None
    step: int | None
    outcome: dict[str, Any]

    @property
    def reward(self) -> float:
        return float(self.outcome["reward"])


@dataclass
class ComponentSummary:
    name: str
    weight: float
    gate: bool
    evaluated: int = 0
    applicable: int = 0
    passed: int = 0
    gated: int = 0
    mean_score: float | None = None
    mean_contribution: float | None = None


@dataclass
class HistogramBin:
    low: float
    high: float
    count: int
    percent: int  # bar width, 0..100, relative to the fullest bin


@dataclass
class RewardPreview:
    run: JudgeRun
    rows: list[RolloutReward]
    missing_verdicts: int
    histogram: list[HistogramBin]
    components: list[ComponentSummary]
    judge_ok: int
    judge_errors: int
    gated: int
    mean: float | None
    minimum: float | None
    maximum: float | None
    groups: int
    zero_spread_groups: list[str] = field(default_factory=list)
    single_member_groups: int = 0
    warnings: list[str] = field(default_factory=list)
    # The data version it was computed at (reward_service.preview), empty when not cached.
    version_key: tuple[Any, ...] = ()


def grounding_document(
    rollout: Rollout | PreviewRollout, location: dict[str, Any] | None
) -> str | None:
    """The rollout's grounding document, where the project says it is."""
    metadata = rollout.metadata_ if isinstance(rollout.metadata_, dict) else {}
    return components.document_text(
        location,
        target_document=rollout.target_document,
        input_messages=list(rollout.input_messages or []),
        lookup=metadata.get,
    )


def component_results(
    config: dict[str, Any],
    rollout: Rollout | PreviewRollout,
    output_schema: dict[str, Any] | None,
    document_location: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    return components.evaluate_components(
        config,
        rollout.response or "",
        input_messages=list(rollout.input_messages or []),
        target_document=grounding_document(rollout, document_location),
        output_schema=output_schema,
    )


def outcome_for(
    config: dict[str, Any],
    rollout: Rollout | PreviewRollout,
    verdict: Verdict | PreviewVerdict | None,
    output_schema: dict[str, Any] | None,
    document_location: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The composite outcome of one rollout from its stored verdict (None: a verdict is needed
    but the run has none for it). `document_location`: the project's setting (where the
    grounding document is)."""
    results = component_results(config, rollout, output_schema, document_location)
    if not composite.judge_needed(config, results):
        return composite.compute_reward(config, results, None)
    if verdict is None:
        return None
    return composite.compute_reward(config, results, judge_outcome(verdict))


def judge_outcome(verdict: Verdict | PreviewVerdict) -> dict[str, Any]:
    """A stored verdict as the judge outcome the composite reads."""
    if verdict.parse_status in ERROR_STATUSES or verdict.normalized is None:
        return {"status": "error", "error": verdict.error or verdict.parse_status}
    criteria = (verdict.scores or {}).get("criteria") or {}
    return {"status": "ok", "normalized": verdict.normalized, "criteria": dict(criteria)}


def _histogram(values: list[float]) -> list[HistogramBin]:
    low = min([0.0, *values])
    high = max([1.0, *values])
    width = (high - low) / HISTOGRAM_BINS
    counts = [0] * HISTOGRAM_BINS
    for value in values:
        index = min(HISTOGRAM_BINS - 1, int((value - low) / width)) if width > 0 else 0
        counts[index] += 1
    fullest = max(counts) or 1
    return [
        HistogramBin(
            low=low + i * width,
            high=low + (i + 1) * width,
            count=count,
            percent=round(100 * count / fullest),
        )
        for i, count in enumerate(counts)
    ]


COMPONENT_TITLES = {
    "format": "Format",
    "length": "Length",
    "language": "Language",
    "safety": "Safety",
    "grounding": "Grounding",
}


NO_DOCUMENT = "no target document"


@dataclass
class Applicability:
    """How many rollouts a component applied to, of those it was evaluated on, and the most
    common reason it did not apply."""

    applicable: int = 0
    evaluated: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, result: dict[str, Any]) -> None:
        self.evaluated += 1
        if result.get("applicable", True):
            self.applicable += 1
        else:
            detail = str(result.get("detail") or "")
            self.reasons[detail] = self.reasons.get(detail, 0) + 1

    @property
    def main_reason(self) -> str:
        return max(self.reasons, key=lambda k: self.reasons[k]) if self.reasons else ""


def inapplicable_warnings(counts: dict[str, Applicability]) -> list[str]:
    """A warning for each enabled component that applies to none of the rollouts it was
    evaluated on: it then adds nothing to the reward, silently."""
    warnings = []
    for name, seen in counts.items():
        if seen.evaluated == 0 or seen.applicable > 0:
            continue
        title = COMPONENT_TITLES.get(name, name.capitalize())
        if name == "grounding" and seen.main_reason == NO_DOCUMENT:
            hint = ": set where the document is in project settings."
        else:
            hint = f" ({seen.main_reason}): check its settings against the rollouts."
        warnings.append(f"{title} applies to 0 of {seen.evaluated:,} rollouts{hint}")
    return warnings


def applicability_of(outcomes: list[dict[str, Any]]) -> dict[str, Applicability]:
    """Applicability of each deterministic component over composite outcomes."""
    counts: dict[str, Applicability] = {}
    for outcome in outcomes:
        for name, result in (outcome.get("components") or {}).items():
            counts.setdefault(name, Applicability()).add(result)
    return counts


def _summaries(config: dict[str, Any], rows: list[RolloutReward]) -> list[ComponentSummary]:
    summaries = []
    for name in (*components.COMPONENT_ORDER, "judge"):
        settings = config.get(name) or {}
        if not settings.get("enabled", name == "judge"):
            continue
        summary = ComponentSummary(
            name=name, weight=float(settings.get("weight", 0.0)), gate=bool(settings.get("gate"))
        )
        scores: list[float] = []
        contributions: list[float] = []
        for row in rows:
            outcome = row.outcome
            if name == "judge":
                if outcome["judge_status"] in ("ok", "error"):
                    summary.evaluated += 1
                if outcome["judge_status"] == "ok":
                    summary.applicable += 1
                    scores.append(float(outcome["judge_score"]))
            else:
                result = outcome["components"].get(name)
                if result is None:
                    continue
                summary.evaluated += 1
                if result["applicable"]:
                    summary.applicable += 1
                    scores.append(float(result["score"]))
                    summary.passed += 1 if result["passed"] else 0
                if outcome["gated_by"] == name:
                    summary.gated += 1
            if outcome["gated_by"] is None and outcome["judge_status"] != "error":
                contributions.append(float(outcome["contributions"].get(name, 0.0)))
        summary.mean_score = sum(scores) / len(scores) if scores else None
        summary.mean_contribution = (
            sum(contributions) / len(contributions) if contributions else None
        )
        summaries.append(summary)
    return summaries


class PreviewRollout(NamedTuple):
    """The columns of a rollout the reward reads (its metadata only for the project's document
    location; never its provenance)."""

    id: int
    external_id: str
    group_key: str | None
    step: int | None
    response: str | None
    input_messages: Any
    target_document: str | None
    metadata_: Any


class PreviewVerdict(NamedTuple):
    """The columns of a verdict the judge outcome reads."""

    rollout_id: int
    parse_status: str
    normalized: float | None
    error: str | None
    scores: Any


def summarise(
    run: JudgeRun, config: RewardConfigModel, rows: list[RolloutReward], missing: int
) -> RewardPreview:
    rewards = [row.reward for row in rows]
    groups: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row.group_key:
            groups[row.group_key].append(row.reward)
    multi = {key: values for key, values in groups.items() if len(values) >= 2}
    zero_spread = sorted(key for key, values in multi.items() if max(values) - min(values) < 1e-9)
    summaries = _summaries(config.as_dict(), rows)
    return RewardPreview(
        run=run,
        rows=rows,
        missing_verdicts=missing,
        histogram=_histogram(rewards),
        components=summaries,
        warnings=inapplicable_warnings(applicability_of([row.outcome for row in rows])),
        judge_ok=sum(1 for row in rows if row.outcome["judge_status"] == "ok"),
        judge_errors=sum(1 for row in rows if row.outcome["judge_status"] == "error"),
        gated=sum(1 for row in rows if row.outcome["gated_by"] is not None),
        mean=sum(rewards) / len(rewards) if rewards else None,
        minimum=min(rewards) if rewards else None,
        maximum=max(rewards) if rewards else None,
        groups=len(multi),
        zero_spread_groups=zero_spread,
        single_member_groups=len(groups) - len(multi),
    )
