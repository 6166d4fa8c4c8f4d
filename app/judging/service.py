"""Judge configurations and judge runs: create, estimate, cancel, resume, progress and verdicts.

Public functions commit once; helpers only flush. The judging itself happens in workers
(app.judging.jobs / engine): creating a run only records its durable work items.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, or_, update
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import Conflict, InvalidInput, NotFound
from app.drift.models import DriftSample
from app.judging import verdicts as judge_engine  # pure: plans, prompts, costs (not the executor)
from app.judging.models import JudgeConfig, JudgeRun, JudgeWorkItem, Verdict
from app.judging.schemas import JudgeConfigInput, RunCreate, RunEstimate, SelectionInput
from app.judging.status import UNFINISHED_STATUSES, RunStatus, short_error
from app.labels.models import GoldItem
from app.llm.base import ProviderError
from app.llm.egress import EgressPolicy, key_var_problem, url_problem
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

# ---- judge configurations ---------------------------------------------------------------------


def list_configs(session: Session, project_id: int) -> list[JudgeConfig]:
    query = select(JudgeConfig).where(JudgeConfig.project_id == project_id)
    return list(session.exec(query.order_by(col(JudgeConfig.name))))


def get_config(session: Session, project_id: int, config_id: int) -> JudgeConfig:
    config = session.get(JudgeConfig, config_id)
    if config is None or config.project_id != project_id:
        raise NotFound("No such judge configuration in this project.")
    return config


def snapshot_of(config: JudgeConfig) -> dict[str, Any]:
    """The configuration as a run keeps it: later edits do not change a run already started."""
    return {
        "id": config.id,
        "name": config.name,
        "provider": config.provider,
        "model_id": config.model_id,
        "base_url": config.base_url,
        "api_key_env": config.api_key_env,
        "region": config.region,
        "params": dict(config.params or {}),
        "concurrency": config.concurrency,
        "timeout_s": config.timeout_s,
        "max_attempts": config.max_attempts,
        "price_input_per_1k": config.price_input_per_1k,
        "price_output_per_1k": config.price_output_per_1k,
        "revision": config.revision,
    }


def _apply(config: JudgeConfig, data: JudgeConfigInput) -> None:
    config.name = data.name
    config.provider = data.provider
    config.model_id = data.model_id
    config.base_url = data.base_url if data.provider == "openai_compat" else None
    config.api_key_env = data.api_key_env if data.provider == "openai_compat" else None
    config.region = data.region if data.provider == "bedrock" else None
    config.params = data.params()
    config.concurrency = data.concurrency
    config.timeout_s = data.timeout_s
    config.max_attempts = data.max_attempts
    config.price_input_per_1k = data.price_input_per_1k
    config.price_output_per_1k = data.price_output_per_1k


def _check_name_free(
    session: Session, project_id: int, name: str, except_id: int | None = None
) -> None:
    query = select(JudgeConfig.id).where(
        JudgeConfig.project_id == project_id, JudgeConfig.name == name
    )
    existing = session.exec(query).first()
    if existing is not None and existing != except_id:
        raise Conflict(f"A judge configuration named “{name}” already exists in this project.")


def check_egress(data: JudgeConfigInput, egress: EgressPolicy) -> None:
    """Refuse a base URL or API-key variable the operator's policy does not allow."""
    if data.provider != "openai_compat":
        return
    problems = []
    url = url_problem(data.base_url, egress)
    if url is not None:
        problems.append({"field": "base_url", "message": f"Base URL refused: {url}."})
    key = key_var_problem(data.api_key_env, egress)
    if key is not None:
        problems.append({"field": "api_key_env", "message": f"API key variable refused: {key}."})
    if problems:
        raise InvalidInput(
            "This server's operator does not allow this judge endpoint or key variable.",
            details=problems,
        )


def create_config(
    session: Session,
    project: Project,
    *,
    actor: User | None,
    data: JudgeConfigInput,
    egress: EgressPolicy,
) -> JudgeConfig:
    check_egress(data, egress)
    project_id = project.id or 0
    _check_name_free(session, project_id, data.name)
    config = JudgeConfig(project_id=project_id, name=data.name, provider=data.provider)
    _apply(config, data)
    session.add(config)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="judge_config.create",
        object_type="judge_config",
        object_id=config.id,
        project_id=project_id,
        summary=f"created judge configuration {config.name} ({config.provider} {config.model_id})",
        details={"after": snapshot_of(config)},
    )
    session.commit()
    return config


def update_config(
    session: Session,
    project: Project,
    config: JudgeConfig,
    *,
    actor: User | None,
    expected_revision: int,
    data: JudgeConfigInput,
    egress: EgressPolicy,
) -> JudgeConfig:
    check_egress(data, egress)
    if config.revision != expected_revision:
        raise Conflict(
            "Someone else saved this judge configuration since you opened it. Reload to see "
            "their changes; your edits were not saved."
        )
    _check_name_free(session, config.project_id, data.name, except_id=config.id)
    before = snapshot_of(config)
    _apply(config, data)
    config.revision += 1
    config.updated_at = utcnow()
    session.add(config)
    session.flush()
    after = snapshot_of(config)
    changed = sorted(k for k in after if k != "revision" and after[k] != before[k])
    audit_service.record(
        session,
        actor=actor,
        action="judge_config.update",
        object_type="judge_config",
        object_id=config.id,
        project_id=config.project_id,
        summary=f"changed judge configuration {config.name}: {', '.join(changed) or 'nothing'}",
        details={"before": before, "after": after},
    )
    session.commit()
    return config


def delete_config(
    session: Session, project: Project, config: JudgeConfig, *, actor: User | None
) -> None:
    used = session.exec(
        select(func.count()).select_from(JudgeRun).where(JudgeRun.judge_config_id == config.id)
    ).one()
    if used:
        raise Conflict(
            f"“{config.name}” was used by {used} judge run(s) and is kept so they stay "
            "explainable. Create a new configuration instead of deleting this one."
        )
    audit_service.record(
        session,
        actor=actor,
        action="judge_config.delete",
        object_type="judge_config",
        object_id=config.id,
        project_id=config.project_id,
        summary=f"deleted judge configuration {config.name}",
        details={"before": snapshot_of(config)},
    )
    session.delete(config)
    session.commit()


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


# ---- listing and progress ---------------------------------------------------------------------


@dataclass
class RunRow:
    run: JudgeRun
    rubric_name: str
    version_number: int

    @property
    def judge_name(self) -> str:
        return run_judge_name(self.run)


def run_judge_name(run: JudgeRun) -> str:
    if run.kind == "external":
        return run.external_judge_name or "external"
    snapshot = run.judge_snapshot or {}
    return str(snapshot.get("name") or "")


def list_runs(
    session: Session, project_id: int, *, comparison_key: str | None = None, limit: int = 200
) -> list[RunRow]:
    query = (
        select(JudgeRun, Rubric.name, RubricVersion.number)
        .join(RubricVersion, col(RubricVersion.id) == col(JudgeRun.rubric_version_id))
        .join(Rubric, col(Rubric.id) == col(RubricVersion.rubric_id))
        .where(JudgeRun.project_id == project_id)
    )
    if comparison_key:
        query = query.where(JudgeRun.comparison_key == comparison_key)
    query = query.order_by(col(JudgeRun.id).desc()).limit(limit)
    return [RunRow(run, name, number) for run, name, number in session.exec(query)]


def run_row(session: Session, run: JudgeRun) -> RunRow:
    version = session.get(RubricVersion, run.rubric_version_id)
    rubric = session.get(Rubric, version.rubric_id) if version else None
    return RunRow(run, rubric.name if rubric else "?", version.number if version else 0)


@dataclass
class RunProgress:
    status: RunStatus
    total: int
    done: int
    errors: int
    rate_per_s: float | None
    eta_s: float | None
    cost: float
    input_tokens: int
    output_tokens: int

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done)

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 100

    message: str = ""

    @property
    def finished(self) -> bool:
        return self.status in judge_engine.FINAL_STATUSES

    @property
    def label(self) -> str:
        return self.status.label

    @property
    def has_errors(self) -> bool:
        return self.status in (RunStatus.WITH_ERRORS, RunStatus.FAILED)


def run_progress(run: JudgeRun, now: datetime | None = None) -> RunProgress:
    """Done, errors, rate (verdicts a second since the run started or resumed) and time left.

    A preparing run counts subjects selected of those expected instead of verdicts."""
    if run.status == RunStatus.PREPARING:
        state = (run.settings or {}).get("preparation") or {}
        return RunProgress(
            status=RunStatus.PREPARING,
            total=int(state.get("expected") or 0),
            done=int(state.get("selected") or 0),
            errors=0,
            rate_per_s=None,
            eta_s=None,
            cost=0.0,
            input_tokens=0,
            output_tokens=0,
            message=run.message,
        )
    now = now or utcnow()
    rate: float | None = None
    if run.status == "running" and run.rate_base_at is not None:
        elapsed = (now - run.rate_base_at).total_seconds()
        done_since = run.items_done - run.rate_base_done
        if elapsed > 0.5 and done_since > 0:
            rate = done_since / elapsed
    elif run.status in judge_engine.FINAL_STATUSES and run.started_at and run.finished_at:
        elapsed = (run.finished_at - run.started_at).total_seconds()
        if elapsed > 0 and run.items_done:
            rate = run.items_done / elapsed
    remaining = max(0, run.items_total - run.items_done)
    eta = remaining / rate if rate and run.status == "running" else None
    return RunProgress(
        status=RunStatus(run.status),
        total=run.items_total,
        done=run.items_done,
        errors=run.items_error,
        rate_per_s=rate,
        eta_s=eta,
        cost=run.cost,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        message=run.message,
    )


def list_verdicts(
    session: Session,
    run: JudgeRun,
    *,
    after_id: int | None = None,
    parse_status: str | None = None,
    limit: int = 50,
) -> list[Verdict]:
    """The run's verdicts in id order, keyset-paginated."""
    query = select(Verdict).where(Verdict.run_id == run.id)
    if parse_status:
        query = query.where(Verdict.parse_status == parse_status)
    if after_id is not None:
        query = query.where(col(Verdict.id) > after_id)
    return list(session.exec(query.order_by(col(Verdict.id)).limit(limit)))


def rollout_labels(session: Session, rollout_ids: Sequence[int]) -> dict[int, str]:
    """External ids of rollouts, for showing verdicts."""
    if not rollout_ids:
        return {}
    query = select(Rollout.id, Rollout.external_id).where(col(Rollout.id).in_(set(rollout_ids)))
    return {rid or 0: ext for rid, ext in session.exec(query)}


# ---- test connection --------------------------------------------------------------------------

CONNECTION_SYSTEM = "You are answering a connection check from Rubric Studio."
CONNECTION_PROMPT = "Reply with the single word OK."
CONNECTION_TIMEOUT_S = 30.0
CONNECTION_MAX_TOKENS = 16


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome of one tiny request through the judge's real provider code."""

    ok: bool
    answer: str = ""
    error: str = ""
    model: str = ""
    latency_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    test_double: bool = False


def check_connection(
    config: JudgeConfig, provider_factory: judge_engine.ProviderFactory | None = None
) -> ConnectionCheck:
    """Send one short request with this configuration's provider, model and key, once (no
    retries, a short timeout), and say what came back: the answer or the error, short and on
    one line. Nothing is stored."""
    if config.provider not in ("openai_compat", "bedrock"):
        raise InvalidInput("This judge's verdicts are imported; there is no endpoint to test.")
    cfg = judge_engine.provider_config(snapshot_of(config)).model_copy(
        update={
            "max_attempts": 1,
            "max_tokens": CONNECTION_MAX_TOKENS,
            "timeout_s": min(CONNECTION_TIMEOUT_S, config.timeout_s or CONNECTION_TIMEOUT_S),
        }
    )
    factory = provider_factory or judge_engine.default_provider
    call = cfg.new_call(CONNECTION_SYSTEM, CONNECTION_PROMPT, metadata={"purpose": "connection"})

    async def send() -> Any:
        provider = factory(cfg)
        try:
            return await provider.complete(call)
        finally:
            await provider.aclose()

    try:
        reply = asyncio.run(send())
    except ProviderError as exc:
        return ConnectionCheck(ok=False, error=_connection_error(exc.code, exc.message))
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the answer shown
        return ConnectionCheck(ok=False, error=_connection_error(type(exc).__name__, str(exc)))
    return ConnectionCheck(
        ok=True,
        answer=short_error(reply.text, 200),
        model=short_error(reply.model, 100),
        latency_ms=reply.latency_ms,
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
        test_double=reply.structured_mode == "fake",
    )


def _connection_error(code: str, message: str) -> str:
    text = short_error(message, 240) or "no details were given"
    return f"{short_error(code, 40)}: {text}" if code and code != "error" else text
