"""The reward configuration of a project (read, save with conflict detection) and the reward
preview over stored verdicts: no judge is called here.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.problems import from_validation_errors
from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from app.labels.models import GoldItem
from app.projects import service as project_service
from app.projects.models import Project
from app.rewards import components, composite
from app.rewards.config import RewardConfigModel, changed_paths, load_config
from app.rewards.models import RewardConfig
from app.rollouts.models import Rollout

CONFIG_NAME = "default"
HISTOGRAM_BINS = 10
MAX_PREVIEW_ROLLOUTS = 5_000
ERROR_STATUSES = ("invalid", "error")


# ---- configuration ----------------------------------------------------------------------------


def get_config_row(session: Session, project_id: int) -> RewardConfig | None:
    return session.exec(
        select(RewardConfig).where(
            RewardConfig.project_id == project_id, RewardConfig.name == CONFIG_NAME
        )
    ).first()


@dataclass
class ConfigState:
    """The configuration in force (defaults until the first save) and its revision (0 = none)."""

    model: RewardConfigModel
    revision: int
    row: RewardConfig | None


def current_config(session: Session, project_id: int) -> ConfigState:
    row = get_config_row(session, project_id)
    if row is None:
        return ConfigState(RewardConfigModel(), 0, None)
    try:
        model = load_config(row.config)
    except ValidationError:
        # A config saved by an older release that no longer validates: start from defaults,
        # keeping the revision so the next save is still conflict-checked.
        model = RewardConfigModel()
    return ConfigState(model, row.revision, row)


def parse_config(data: Any) -> RewardConfigModel:
    """Validate submitted configuration data; InvalidInput lists every problem by field."""
    try:
        return RewardConfigModel.model_validate(data)
    except ValidationError as exc:
        problems = from_validation_errors(exc.errors(), labels={"": "Reward configuration"})
        raise InvalidInput(
            "The reward configuration is not valid; please correct:", details=problems
        ) from None


def save_config(
    session: Session,
    project: Project,
    *,
    actor: User,
    config: RewardConfigModel,
    expected_revision: int,
) -> RewardConfig:
    """Save the configuration if nobody saved another one since `expected_revision` was read
    (0 when none existed); Conflict otherwise. Audited with the changed settings."""
    project_id = project.id or 0
    data = config.as_dict()
    row = get_config_row(session, project_id)
    before = row.config if row is not None else RewardConfigModel().as_dict()
    now = utcnow()
    if row is None:
        if expected_revision != 0:
            raise Conflict("The reward configuration was removed meanwhile; reload the page.")
        row = RewardConfig(
            project_id=project_id,
            name=CONFIG_NAME,
            config=data,
            revision=1,
            updated_by_id=actor.id,
            updated_at=now,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            session.refresh(project)  # the error page still shows the project
            raise Conflict(
                "Someone else saved the reward configuration at the same moment. Reload the "
                "page to see their version, then apply your changes again."
            ) from None
    else:
        # A conditional UPDATE: of two saves from the same revision only one can succeed.
        table = RewardConfig.__table__  # type: ignore[attr-defined]
        result = session.execute(
            update(table)
            .where(table.c.id == row.id, table.c.revision == expected_revision)
            .values(
                config=data,
                revision=table.c.revision + 1,
                updated_by_id=actor.id,
                updated_at=now,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            # Nothing was written: no rollback needed (it would expire the request's objects).
            raise Conflict(
                "Someone else saved the reward configuration since you opened it. Reload the "
                "page to see their version, then apply your changes again."
            )
        session.refresh(row)
    changes = changed_paths(before, data)
    audit_service.record(
        session,
        actor=actor,
        action="reward.config.update",
        object_type="reward_config",
        object_id=row.id,
        project_id=project_id,
        summary=f"reward configuration revision {row.revision}: "
        + (", ".join(changes[:8]) or "no changes"),
        details={"revision": row.revision, "changed": changes, "config": data},
    )
    session.commit()
    return row


# ---- preview ----------------------------------------------------------------------------------


@dataclass
class PreviewSelection:
    """Which rollouts to preview: those judged in `run_id`, optionally only gold items of a
    split, a training step, or a random sample."""

    run_id: int
    gold_split: str | None = None
    step: int | None = None
    sample: int | None = None
    seed: int = 0


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


def grounding_document(rollout: Rollout, location: dict[str, Any] | None) -> str | None:
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
    rollout: Rollout,
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
    rollout: Rollout,
    verdict: Verdict | None,
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


def judge_outcome(verdict: Verdict) -> dict[str, Any]:
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


def applicability(
    config: dict[str, Any], project: Project, rollouts: list[Rollout]
) -> dict[str, Applicability]:
    """Applicability of each enabled deterministic component over rollouts (no judge)."""
    location = project_service.document_location_of(project)
    results = [
        {"components": component_results(config, r, project.output_schema, location)}
        for r in rollouts
    ]
    return applicability_of(results)


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


def _select_rollouts(
    session: Session, project_id: int, selection: PreviewSelection
) -> list[Rollout]:
    # The run's rollouts: those it has verdicts for, and those still waiting for one.
    judged = select(Verdict.rollout_id).where(Verdict.run_id == selection.run_id)
    queued = select(JudgeWorkItem.rollout_id).where(JudgeWorkItem.run_id == selection.run_id)
    query = select(Rollout).where(
        Rollout.project_id == project_id,
        or_(col(Rollout.id).in_(judged), col(Rollout.id).in_(queued)),
    )
    if selection.gold_split:
        gold = select(GoldItem.rollout_id).where(
            GoldItem.project_id == project_id, GoldItem.split == selection.gold_split
        )
        query = query.where(col(Rollout.id).in_(gold))
    if selection.step is not None:
        query = query.where(Rollout.step == selection.step)
    rollouts = list(session.exec(query.order_by(col(Rollout.id))))
    if selection.sample is not None and selection.sample < len(rollouts):
        rollouts = sorted(
            random.Random(selection.seed).sample(rollouts, selection.sample),
            key=lambda r: r.id or 0,
        )
    if len(rollouts) > MAX_PREVIEW_ROLLOUTS:
        raise InvalidInput(
            f"The selection has {len(rollouts):,} rollouts; preview at most "
            f"{MAX_PREVIEW_ROLLOUTS:,} (use a random sample)."
        )
    return rollouts


def get_run(session: Session, project_id: int, run_id: int) -> JudgeRun:
    run = session.get(JudgeRun, run_id)
    if run is None or run.project_id != project_id:
        raise NotFound("No such judge run in this project.")
    return run


def list_runs(session: Session, project_id: int, limit: int = 100) -> list[JudgeRun]:
    query = select(JudgeRun).where(JudgeRun.project_id == project_id)
    return list(session.exec(query.order_by(col(JudgeRun.id).desc()).limit(limit)))


def first_verdicts(session: Session, run_id: int, rollout_ids: list[int]) -> dict[int, Verdict]:
    """The verdict of repeat 0 (else the lowest repeat) per rollout of a run."""
    verdicts: dict[int, Verdict] = {}
    for start in range(0, len(rollout_ids), 500):
        chunk = rollout_ids[start : start + 500]
        query = (
            select(Verdict)
            .where(Verdict.run_id == run_id, col(Verdict.rollout_id).in_(chunk))
            .order_by(col(Verdict.rollout_id), col(Verdict.repeat), col(Verdict.id))
        )
        for verdict in session.exec(query):
            verdicts.setdefault(verdict.rollout_id, verdict)
    return verdicts


def compute_rewards(
    session: Session,
    project: Project,
    config: RewardConfigModel,
    run_id: int,
    rollouts: list[Rollout],
) -> tuple[list[RolloutReward], int]:
    """The studio's reward for each rollout from the run's stored verdicts, and how many
    rollouts needed a verdict the run does not have."""
    data = config.as_dict()
    location = project_service.document_location_of(project)
    verdicts = first_verdicts(session, run_id, [r.id or 0 for r in rollouts])
    rows: list[RolloutReward] = []
    missing = 0
    for rollout in rollouts:
        verdict = verdicts.get(rollout.id or 0)
        outcome = outcome_for(data, rollout, verdict, project.output_schema, location)
        if outcome is None:
            missing += 1
            continue
        rows.append(
            RolloutReward(
                rollout.id or 0, rollout.external_id, rollout.group_key, rollout.step, outcome
            )
        )
    return rows, missing


def preview(session: Session, project: Project, selection: PreviewSelection) -> RewardPreview:
    """The reward distribution, component contributions and zero-spread groups of a selection,
    with the saved configuration and the run's stored verdicts."""
    project_id = project.id or 0
    run = get_run(session, project_id, selection.run_id)
    config = current_config(session, project_id).model
    rollouts = _select_rollouts(session, project_id, selection)
    rows, missing = compute_rewards(session, project, config, run.id or 0, rollouts)
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
