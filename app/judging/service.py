"""Judge configurations and judge runs: create, estimate, cancel, resume, progress and verdicts.

Public functions commit once; helpers only flush. The judging itself happens in workers
(app.judging.jobs / engine): creating a run only records its durable work items.
"""

from __future__ import annotations

import json
import math
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, or_, update
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import Conflict, NotFound
from app.drift.models import DriftSample
from app.judging import verdicts as judge_engine  # pure: plans, prompts, costs (not the executor)
from app.judging.configs import get_config, snapshot_of
from app.judging.models import JudgeConfig, JudgeRun, JudgeWorkItem
from app.judging.schemas import RunCreate, RunEstimate, SelectionInput
from app.judging.status import UNFINISHED_STATUSES, RunStatus
from app.labels.models import GoldItem
from app.llm.schema_instance import instance_for_schema
from app.projects.models import Project
from app.rollouts.models import Rollout, RolloutPair
from app.rubrics.definition import RubricDefinition
from app.rubrics.models import Rubric, RubricVersion
from app.rubrics.output_schema import build_output_schema
from app.rubrics.prompting import estimate_tokens

ESTIMATE_SAMPLE = 20
INSERT_CHUNK = 5_000
PROBE_SOURCE_PREFIX = "probe-run:"  # app.probes.service.SOURCE_PREFIX
BATCH_MIN_RECORDS = 100  # Bedrock's usual minimum records per batch job (a per-model quota)

# ---- rubric versions --------------------------------------------------------------------------


@dataclass
class VersionChoice:
    version: RubricVersion
    rubric: Rubric

    @property
    def label(self) -> str:
        return f"{self.rubric.name} v{self.version.number}"


def list_versions(session: Session, project_id: int) -> list[VersionChoice]:
    """Published rubric versions, newest first, for choosing what to run."""
    query = (
        select(RubricVersion, Rubric)
        .join(Rubric, col(Rubric.id) == col(RubricVersion.rubric_id))
        .where(RubricVersion.project_id == project_id, col(Rubric.archived).is_(False))
        .order_by(col(Rubric.name), col(RubricVersion.number).desc())
    )
    return [VersionChoice(v, r) for v, r in session.exec(query)]


def get_version(session: Session, project_id: int, version_id: int) -> RubricVersion:
    version = session.get(RubricVersion, version_id)
    if version is None or version.project_id != project_id:
        raise NotFound("No such published rubric version in this project.")
    return version


def _definition(version: RubricVersion) -> RubricDefinition:
    return RubricDefinition.model_validate(version.definition)


# ---- selections -------------------------------------------------------------------------------


@dataclass
class Subjects:
    """What a run judges: rollout ids, or pair ids with their rollout_a ids."""

    pairwise: bool
    ids: list[int]
    rollout_ids: list[int]
    selection: dict[str, Any]


def selection_query(
    project_id: int,
    selection: SelectionInput,
    *,
    pairwise: bool,
    without_drift_samples: bool = False,
) -> Any:
    """The (subject id, rollout id) rows a selection names, before any sampling: rollouts, or
    pairs with their rollout_a. Probe-run rewrites are judged by their probe run only.

    without_drift_samples: leave out rollouts recorded during training (drift samples), as
    probes do: they rewrite the policy's rollouts before training, not the samples of one run.
    """
    if pairwise:
        query: Any = (
            select(col(RolloutPair.id).label("subject_id"), col(RolloutPair.rollout_a_id))
            .join(Rollout, col(Rollout.id) == col(RolloutPair.rollout_a_id))
            .where(RolloutPair.project_id == project_id)
        )
    else:
        query = select(col(Rollout.id).label("subject_id"), col(Rollout.id).label("rollout_id"))
        query = query.where(Rollout.project_id == project_id)
    query = query.where(
        or_(
            col(Rollout.source_file).is_(None),
            ~col(Rollout.source_file).startswith(PROBE_SOURCE_PREFIX),
        )
    )
    if without_drift_samples:
        # An anti-join on drift_sample.rollout_id (indexed), not a list in Python.
        recorded = select(DriftSample.id).where(col(DriftSample.rollout_id) == col(Rollout.id))
        query = query.where(~recorded.exists())
    if selection.steps:
        query = query.where(col(Rollout.step).in_(selection.steps))
    if selection.models:
        query = query.where(col(Rollout.model).in_(selection.models))
    if selection.groups:
        query = query.where(col(Rollout.group_key).in_(selection.groups))
    if selection.source == "gold":
        gold = select(GoldItem.rollout_id).where(GoldItem.project_id == project_id)
        if selection.gold_split:
            gold = gold.where(GoldItem.split == selection.gold_split)
        if pairwise:
            query = query.where(
                or_(
                    col(RolloutPair.rollout_a_id).in_(gold),
                    col(RolloutPair.rollout_b_id).in_(gold),
                )
            )
        else:
            query = query.where(col(Rollout.id).in_(gold))
    return query


def resolve_selection(
    session: Session,
    project_id: int,
    selection: SelectionInput,
    *,
    pairwise: bool,
    without_drift_samples: bool = False,
) -> Subjects:
    """The rollouts (or pairs) a selection names, sampled reproducibly with a recorded seed."""
    query = selection_query(
        project_id, selection, pairwise=pairwise, without_drift_samples=without_drift_samples
    )
    rows: list[tuple[int, int]] = sorted((r[0], r[1]) for r in session.execute(query))
    resolved = selection.model_dump(mode="json")
    resolved["matched"] = len(rows)
    if selection.sample is not None and selection.sample < len(rows):
        seed = selection.seed if selection.seed is not None else secrets.randbelow(2**31)
        rows = sorted(random.Random(seed).sample(rows, selection.sample))
        resolved["seed"] = seed
    resolved["count"] = len(rows)
    return Subjects(
        pairwise=pairwise,
        ids=[r[0] for r in rows],
        rollout_ids=[r[1] for r in rows],
        selection=resolved,
    )


# ---- estimates --------------------------------------------------------------------------------


def _configs(session: Session, project_id: int, ids: Sequence[int]) -> list[JudgeConfig]:
    seen: list[int] = []
    for config_id in ids:
        if config_id not in seen:
            seen.append(config_id)
    return [get_config(session, project_id, config_id) for config_id in seen]


def _sample_prompts(
    session: Session, version: RubricVersion, subjects: Subjects
) -> tuple[list[int], int]:
    """Estimated input tokens of prompts rendered for an evenly spread sample of the subjects."""
    defn = _definition(version)
    count = len(subjects.ids)
    step = max(1, count // ESTIMATE_SAMPLE)
    picks = list(range(0, count, step))[:ESTIMATE_SAMPLE]
    tokens: list[int] = []
    failures = 0
    plan = judge_engine.RunPlan(
        run_id=0,
        kind="estimate",
        status=RunStatus.QUEUED,
        definition=defn,
        definition_dict=defn.model_dump(mode="json"),
        output_schema=version.output_schema or build_output_schema(defn),
        snapshot={},
        judge_name="",
        neutral_score=0.5,
    )
    rollouts, pairs = _load_subjects(session, subjects, picks)
    for index in picks:
        subject_id, rollout_id = subjects.ids[index], subjects.rollout_ids[index]
        rendered = judge_engine.render_subject(
            plan,
            rollouts,
            pairs,
            rollout_id,
            subject_id if subjects.pairwise else None,
            "AB" if subjects.pairwise else "",
        )
        if isinstance(rendered, str):
            failures += 1
            continue
        tokens.append(estimate_tokens(rendered[0]) + estimate_tokens(rendered[1]))
    return tokens, failures


def _load_subjects(
    session: Session, subjects: Subjects, picks: list[int]
) -> tuple[dict[int, Any], dict[int, tuple[int, int]]]:
    pairs: dict[int, tuple[int, int]] = {}
    wanted: set[int] = set()
    if subjects.pairwise:
        pair_ids = [subjects.ids[i] for i in picks]
        for pair in session.exec(select(RolloutPair).where(col(RolloutPair.id).in_(pair_ids))):
            pairs[pair.id or 0] = (pair.rollout_a_id, pair.rollout_b_id)
            wanted.update((pair.rollout_a_id, pair.rollout_b_id))
    else:
        wanted = {subjects.rollout_ids[i] for i in picks}
    rollouts = {
        r.id or 0: r for r in session.exec(select(Rollout).where(col(Rollout.id).in_(wanted)))
    }
    return rollouts, pairs


def _output_tokens_guess(version: RubricVersion, max_tokens: int) -> int:
    defn = _definition(version)
    schema = version.output_schema or build_output_schema(defn)
    example = json.dumps(instance_for_schema(schema, 0))
    return min(max_tokens, estimate_tokens(example))


def estimate_runs(session: Session, project: Project, data: RunCreate) -> RunEstimate:
    """Tokens and cost of the runs `data` describes, from prompts rendered for a sample."""
    project_id = project.id or 0
    version = get_version(session, project_id, data.rubric_version_id)
    configs = _configs(session, project_id, data.judge_config_ids)
    pairwise = _definition(version).mode == "preference"
    subjects = resolve_selection(session, project_id, data.selection, pairwise=pairwise)
    calls = len(subjects.ids) * data.repeats * (2 if pairwise else 1)
    warnings: list[str] = []
    tokens, failures = _sample_prompts(session, version, subjects) if subjects.ids else ([], 0)
    if failures:
        warnings.append(
            f"{failures} of the sampled prompts could not be rendered; those items will be "
            "stored as errors with the neutral score."
        )
    mean_in = sum(tokens) / len(tokens) if tokens else 0.0
    total_in = total_out = 0
    cost = 0.0
    for config in configs:
        max_tokens = int((config.params or {}).get("max_tokens") or 1024)
        calls_in = int(math.ceil(mean_in * calls))
        calls_out = _output_tokens_guess(version, max_tokens) * calls
        total_in += calls_in
        total_out += calls_out
        cost += judge_engine.call_cost(snapshot_of(config), calls_in, calls_out)
        if data.batch:
            warnings.extend(_batch_problems(config, calls))
    if not subjects.ids:
        warnings.append("The selection matches no rollouts.")
    return RunEstimate(
        subjects=len(subjects.ids),
        calls_per_judge=calls,
        judges=len(configs),
        input_tokens=total_in,
        output_tokens=total_out,
        cost=round(cost, 6),
        sampled_prompts=len(tokens),
        warnings=warnings,
    )


def _batch_problems(config: JudgeConfig, calls: int) -> list[str]:
    problems = []
    params = config.params or {}
    if config.provider != "bedrock":
        problems.append(f"“{config.name}” is not a Bedrock judge: batch inference needs Bedrock.")
    if not params.get("batch_s3_uri") or not params.get("batch_role_arn"):
        problems.append(
            f"“{config.name}” needs a batch S3 location and an IAM role ARN for batch inference."
        )
    if calls < BATCH_MIN_RECORDS:
        problems.append(
            f"Bedrock batch jobs usually need at least {BATCH_MIN_RECORDS} records; this run "
            f"has {calls}."
        )
    return problems


# ---- runs -------------------------------------------------------------------------------------


def queue_run_for_rollouts(
    session: Session,
    project: Project,
    *,
    actor: User | None,
    version: RubricVersion,
    config: JudgeConfig,
    rollout_ids: Sequence[int],
    selection: dict[str, Any],
    neutral_score: float = 0.5,
) -> JudgeRun:
    """Queue a standard judge run over these rollouts (other domains' checks, e.g. probes,
    judge through the same engine). Flushes only: the caller commits."""
    subjects = Subjects(
        pairwise=False,
        ids=list(rollout_ids),
        rollout_ids=list(rollout_ids),
        selection={**selection, "count": len(rollout_ids)},
    )
    return _queue_subjects(session, project, actor, version, config, subjects, 1, neutral_score)


def queue_run_for_pairs(
    session: Session,
    project: Project,
    *,
    actor: User | None,
    version: RubricVersion,
    config: JudgeConfig,
    pair_ids: Sequence[int],
    selection: dict[str, Any],
    repeats: int = 1,
) -> JudgeRun:
    """Queue a pairwise judge run over these pairs of a preference rubric, each in both orders
    (A,B and B,A) `repeats` times (the probes' position and self-consistency checks). Flushes
    only: the caller commits."""
    rows = session.exec(
        select(RolloutPair.id, RolloutPair.rollout_a_id).where(
            RolloutPair.project_id == (project.id or 0), col(RolloutPair.id).in_(list(pair_ids))
        )
    ).all()
    ordered = sorted((int(pair_id or 0), int(a)) for pair_id, a in rows)
    subjects = Subjects(
        pairwise=True,
        ids=[pair_id for pair_id, _a in ordered],
        rollout_ids=[a for _pair_id, a in ordered],
        selection={**selection, "count": len(ordered)},
    )
    return _queue_subjects(session, project, actor, version, config, subjects, repeats, 0.5)


def _queue_subjects(
    session: Session,
    project: Project,
    actor: User | None,
    version: RubricVersion,
    config: JudgeConfig,
    subjects: Subjects,
    repeats: int,
    neutral_score: float,
) -> JudgeRun:
    orders = ("AB", "BA") if subjects.pairwise else ("",)
    run = JudgeRun(
        project_id=project.id or 0,
        rubric_version_id=version.id or 0,
        judge_config_id=config.id,
        judge_snapshot=snapshot_of(config),
        kind="pairwise" if subjects.pairwise else "standard",
        selection=subjects.selection,
        repeats=repeats,
        status="queued",
        items_total=len(subjects.ids) * repeats * len(orders),
        settings={"neutral_score": neutral_score, "pairwise": subjects.pairwise},
        created_by_id=actor.id if actor else None,
    )
    session.add(run)
    session.flush()
    _insert_items(session, run.id or 0, subjects, repeats, orders)
    return run


def _with_overrides(snapshot: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    if not overrides:
        return snapshot
    params = dict(snapshot.get("params") or {}) | dict(overrides.get("params") or {})
    return snapshot | {k: v for k, v in overrides.items() if k != "params"} | {"params": params}


def _insert_items(
    session: Session, run_id: int, subjects: Subjects, repeats: int, orders: Sequence[str]
) -> None:
    prefix = "p:" if subjects.pairwise else "r:"
    rows: list[dict[str, Any]] = []
    for subject_id, rollout_id in zip(subjects.ids, subjects.rollout_ids, strict=True):
        for repeat in range(repeats):
            for order in orders:
                rows.append(
                    {
                        "run_id": run_id,
                        "rollout_id": rollout_id,
                        "pair_id": subject_id if subjects.pairwise else None,
                        "subject_key": f"{prefix}{subject_id}",
                        "repeat": repeat,
                        "order_shown": order,
                        "status": "pending",
                        "attempts": 0,
                    }
                )
                if len(rows) >= INSERT_CHUNK:
                    session.execute(insert(JudgeWorkItem), rows)
                    rows = []
    if rows:
        session.execute(insert(JudgeWorkItem), rows)


def get_run(session: Session, project_id: int, run_id: int) -> JudgeRun:
    run = session.get(JudgeRun, run_id)
    if run is None or run.project_id != project_id:
        raise NotFound("No such judge run in this project.")
    return run


def cancel_run(
    session: Session, project: Project, run: JudgeRun, *, actor: User | None
) -> JudgeRun:
    """Stop a run: workers notice within seconds, stop calling the judge and re-queue the items
    they held. Verdicts already stored are kept."""
    result = session.execute(
        update(JudgeRun)
        .where(col(JudgeRun.id) == run.id, col(JudgeRun.status).in_(UNFINISHED_STATUSES))
        .values(status=RunStatus.CANCELLED, finished_at=utcnow(), message="Cancelled.")
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        session.refresh(run)
        raise Conflict(
            f"This run is {run.status}; only a queued or running run (or one being prepared) "
            "can be cancelled."
        )
    audit_service.record(
        session,
        actor=actor,
        action="judge_run.cancel",
        object_type="judge_run",
        object_id=run.id,
        project_id=run.project_id,
        summary=f"cancelled judge run {run.id} at {run.items_done}/{run.items_total}",
    )
    session.commit()
    session.refresh(run)
    return run


def resume_run(
    session: Session, project: Project, run: JudgeRun, *, actor: User | None
) -> JudgeRun:
    """Queue a cancelled or failed run again: every unfinished item goes back to the queue."""
    if run.status not in (RunStatus.CANCELLED, RunStatus.FAILED):
        raise Conflict(f"This run is {run.status}; only a cancelled or failed run can be resumed.")
    if run.kind == "external":
        raise Conflict("An imported (external) run has nothing to resume.")
    session.execute(
        update(JudgeWorkItem)
        .where(col(JudgeWorkItem.run_id) == run.id, col(JudgeWorkItem.status) == "leased")
        .values(status="pending", lease_owner=None, lease_expires_at=None)
    )
    requeued = session.exec(
        select(func.count())
        .select_from(JudgeWorkItem)
        .where(JudgeWorkItem.run_id == run.id, JudgeWorkItem.status != "done")
    ).one()
    settings = dict(run.settings or {})
    if run.kind == "batch":
        # Unfinished items go into a new batch job.
        settings.pop("batch_state", None)
        run.batch_job_arn = None
    run.settings = settings
    run.status = RunStatus.QUEUED
    run.message = f"Resumed: {requeued} item(s) to judge."
    if not (settings.get("preparation") or {}).get("done", True):
        # Its work items were not all created: the worker's preparation carries on first.
        run.status = RunStatus.PREPARING
        run.message = "Resumed: preparing its work items."
    run.finished_at = None
    run.lease_owner = None
    run.lease_expires_at = None
    run.next_poll_at = None
    session.add(run)
    audit_service.record(
        session,
        actor=actor,
        action="judge_run.resume",
        object_type="judge_run",
        object_id=run.id,
        project_id=run.project_id,
        summary=f"resumed judge run {run.id} with {requeued} unfinished item(s)",
    )
    session.commit()
    return run
