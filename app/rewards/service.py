"""The reward configuration of a project (read, save with conflict detection) and the reward
preview over stored verdicts: no judge is called here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import exists, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.memo import VersionedCache
from app.core.problems import from_validation_errors
from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from app.labels.models import GoldItem
from app.projects import service as project_service
from app.projects.models import Project
from app.rewards.config import RewardConfigModel, changed_paths, load_config
from app.rewards.models import RewardConfig
from app.rewards.outcomes import (
    Applicability,
    PreviewRollout,
    PreviewVerdict,
    RewardPreview,
    RolloutReward,
    applicability_of,
    component_results,
    outcome_for,
    summarise,
)
from app.rollouts.models import Rollout

CONFIG_NAME = "default"
MAX_PREVIEW_ROLLOUTS = 5_000


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


_PRIME = 2_147_483_647  # 2^31 - 1: a Lehmer (MINSTD) generator's modulus
_MULTIPLIER = 48_271


def _xor(a: Any, b: Any) -> Any:
    # Portable XOR (SQLite has no XOR operator): a ^ b == (a | b) - (a & b).
    return a.op("|")(b) - a.op("&")(b)


def sample_key(seed: int, rollout_id: Any) -> Any:
    """SQL: a seeded pseudo-random key per rollout id, the same on SQLite and PostgreSQL:
    two Lehmer steps around an xor-shift, in 64-bit integers that never overflow. Ordering by
    it and taking the first n is a reproducible random sample of n."""
    first = ((rollout_id + seed * 1_000_003) % _PRIME) * _MULTIPLIER % _PRIME
    return (_xor(first, first // 65_536) * _MULTIPLIER) % _PRIME


def _selection_query(project_id: int, selection: PreviewSelection) -> Any:
    """SQL: the run's rollouts (those it has work items for, judged or waiting), filtered."""
    in_run = exists().where(
        col(JudgeWorkItem.run_id) == selection.run_id,
        col(JudgeWorkItem.rollout_id) == col(Rollout.id),
    )
    query = sa_select(col(Rollout.id)).where(col(Rollout.project_id) == project_id, in_run)
    if selection.gold_split:
        query = query.where(
            exists().where(
                col(GoldItem.project_id) == project_id,
                col(GoldItem.split) == selection.gold_split,
                col(GoldItem.rollout_id) == col(Rollout.id),
            )
        )
    if selection.step is not None:
        query = query.where(col(Rollout.step) == selection.step)
    return query


def select_rollout_ids(session: Session, project_id: int, selection: PreviewSelection) -> list[int]:
    """The selection's rollout ids, sampled in SQL (seeded) when a sample size is given. At most
    MAX_PREVIEW_ROLLOUTS + 1 ids are ever read: one more than the limit says it is exceeded."""
    query = _selection_query(project_id, selection)
    cap = MAX_PREVIEW_ROLLOUTS + 1
    if selection.sample is not None:
        query = query.order_by(sample_key(selection.seed, col(Rollout.id)), col(Rollout.id))
        cap = min(cap, selection.sample)
    else:
        query = query.order_by(col(Rollout.id))
    ids = sorted(int(i) for i in session.execute(query.limit(cap)).scalars())
    if len(ids) > MAX_PREVIEW_ROLLOUTS:
        raise InvalidInput(
            f"The selection has more than {MAX_PREVIEW_ROLLOUTS:,} rollouts; preview at most "
            f"{MAX_PREVIEW_ROLLOUTS:,} (use a random sample)."
        )
    return ids


def preview_verdicts(session: Session, run_id: int, rollout_ids: list[int]) -> dict[int, Any]:
    """The first verdict (repeat 0, else the lowest repeat) per rollout, its needed columns
    only, in one statement (the rollout ids are at most MAX_PREVIEW_ROLLOUTS)."""
    verdicts: dict[int, Any] = {}
    if not rollout_ids:
        return verdicts
    query = (
        sa_select(
            col(Verdict.rollout_id),
            col(Verdict.parse_status),
            col(Verdict.normalized),
            col(Verdict.error),
            col(Verdict.scores),
        )
        .where(col(Verdict.run_id) == run_id, col(Verdict.rollout_id).in_(rollout_ids))
        .order_by(col(Verdict.rollout_id), col(Verdict.repeat), col(Verdict.id))
    )
    for row in session.execute(query):
        verdicts.setdefault(int(row[0]), PreviewVerdict(*row))
    return verdicts


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
    rollouts: Sequence[Rollout | PreviewRollout],
    *,
    verdicts: Callable[[Session, int, list[int]], dict[int, Any]] | None = None,
) -> tuple[list[RolloutReward], int]:
    """The studio's reward for each rollout from the run's stored verdicts, and how many
    rollouts needed a verdict the run does not have."""
    data = config.as_dict()
    location = project_service.document_location_of(project)
    read = verdicts or first_verdicts
    found = read(session, run_id, [r.id or 0 for r in rollouts])
    rows: list[RolloutReward] = []
    missing = 0
    for rollout in rollouts:
        verdict = found.get(rollout.id or 0)
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


PREVIEW_BATCH = 1_000  # rollouts read and scored at a time


def _load_rollouts(session: Session, ids: list[int]) -> list[PreviewRollout]:
    rows = session.execute(
        sa_select(
            col(Rollout.id),
            col(Rollout.external_id),
            col(Rollout.group_key),
            col(Rollout.step),
            col(Rollout.response),
            col(Rollout.input_messages),
            col(Rollout.target_document),
            col(Rollout.metadata_),
        )
        .where(col(Rollout.id).in_(ids))
        .order_by(col(Rollout.id))
    ).all()
    return [PreviewRollout(*row) for row in rows]


def compute_preview(
    session: Session,
    project: Project,
    selection: PreviewSelection,
    ids: list[int],
    progress: Callable[[int, int], None] | None = None,
) -> RewardPreview:
    """The preview of the selected rollout ids, read and scored ``PREVIEW_BATCH`` at a time
    (``progress(done, total)`` after each batch)."""
    run = get_run(session, project.id or 0, selection.run_id)
    config = current_config(session, project.id or 0).model
    rows: list[RolloutReward] = []
    missing = 0
    for start in range(0, len(ids), PREVIEW_BATCH):
        batch = _load_rollouts(session, ids[start : start + PREVIEW_BATCH])
        found, lacking = compute_rewards(
            session, project, config, run.id or 0, batch, verdicts=preview_verdicts
        )
        rows.extend(found)
        missing += lacking
        if progress is not None:
            progress(min(start + PREVIEW_BATCH, len(ids)), len(ids))
    return summarise(run, config, rows, missing)


# Previews of a selection, cached per project revision, saved configuration, selection and the
# run's latest verdict (verdicts are only added; rollouts do not change): 16 clients opening
# one preview compute it once. A gold-split selection (gold edits move items) is not cached.
_PREVIEWS: VersionedCache[RewardPreview] = VersionedCache(4)


def preview(session: Session, project: Project, selection: PreviewSelection) -> RewardPreview:
    """The reward distribution, component contributions and zero-spread groups of a selection,
    with the saved configuration and the run's stored verdicts."""
    run = get_run(session, project.id or 0, selection.run_id)
    if selection.sample is not None and selection.sample > MAX_PREVIEW_ROLLOUTS:
        raise InvalidInput(f"A sample holds at most {MAX_PREVIEW_ROLLOUTS:,} rollouts.")

    def compute() -> RewardPreview:
        ids = select_rollout_ids(session, project.id or 0, selection)
        return compute_preview(session, project, selection, ids)

    if selection.gold_split:
        return compute()
    latest = session.execute(
        sa_select(func.max(col(Verdict.id))).where(col(Verdict.run_id) == run.id)
    ).scalar()
    key = (
        str(session.get_bind().engine.url),
        project.id,
        project.revision,
        current_config(session, project.id or 0).model.model_dump_json(),
        dataclasses.astuple(selection),
        run.id,
        str(run.created_at),
        latest,
    )
    return dataclasses.replace(_PREVIEWS.get_or_compute(key, compute), run=run, version_key=key)
