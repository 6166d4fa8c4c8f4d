"""Preparing a large judge run in a worker: selecting its subjects (sampled in SQL with a
recorded seed), creating its work items in chunks, and estimating its cost, with progress.

Starting a run over a million rollouts used to load every id into the request and sort and
sample them in Python (90 s, 420 MB). Now the request only counts the selection up to
PREPARE_IN_WORKER_ABOVE and, past it, records the runs as `preparing`; the `judge-prepare` job
(registered in app/worker.py) does the rest. Each chunk of work items is inserted in the same
transaction that moves the run's cursor forward, so a worker killed mid-way loses at most the
chunk it was writing, and the next worker carries on from the cursor without duplicates (the
work items' unique key would refuse one anyway).

Sampling: a subject is in the sample when its key `hash(seed, id)` is among the `sample`
smallest; the cut-off key is found once (one sort of the selection, in the database), then every
chunk keeps the subjects at or below it. The same seed gives the same sample on the same
database; the seed is recorded on the run.
"""

from __future__ import annotations

import logging
import math
import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Integer, String, and_, cast, func, insert, literal, or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.jobs import WorkerContext
from app.judging import configs as judge_configs
from app.judging import service as judge_service
from app.judging import verdicts as judge_verdicts
from app.judging.models import JudgeConfig, JudgeRun, JudgeWorkItem
from app.judging.schemas import RunCreate, SelectionInput
from app.judging.status import RunStatus
from app.projects.models import Project
from app.rubrics.models import RubricVersion

log = logging.getLogger(__name__)

# Selections up to this many subjects are resolved in the request (fast: tens of milliseconds);
# larger ones by the worker.
PREPARE_IN_WORKER_ABOVE = 20_000
# Subjects turned into work items per transaction.
CHUNK = 20_000
STATE_KEY = "preparation"

_runs = JudgeRun.__table__  # type: ignore[attr-defined]
_items = JudgeWorkItem.__table__  # type: ignore[attr-defined]


# ---- in the request ---------------------------------------------------------------------------


def selection_size(
    session: Session, project_id: int, selection: SelectionInput, *, pairwise: bool
) -> int:
    """How many subjects the selection names, counted up to PREPARE_IN_WORKER_ABOVE + 1 (so the
    request's cost does not grow with the project)."""
    query = judge_service.selection_query(project_id, selection, pairwise=pairwise)
    capped = query.limit(PREPARE_IN_WORKER_ABOVE + 1).subquery()
    return int(session.execute(select(func.count()).select_from(capped)).scalar_one())


def create_preparing_runs(
    session: Session,
    project: Project,
    *,
    actor: User | None,
    data: RunCreate,
    version: RubricVersion,
    configs: list[JudgeConfig],
    pairwise: bool,
    snapshot_overrides: dict[str, Any] | None = None,
) -> list[JudgeRun]:
    """Record one `preparing` run per judge configuration (flushes only; the caller commits).

    The sample seed is chosen now, so a cross-judge set's runs judge the same subjects."""
    selection = data.selection.model_dump(mode="json")
    if data.selection.sample is not None and data.selection.seed is None:
        selection["seed"] = secrets.randbelow(2**31)
    orders = ["AB", "BA"] if pairwise else [""]
    comparison_key = uuid.uuid4().hex if len(configs) > 1 else None
    kind = "batch" if data.batch else ("pairwise" if pairwise else "standard")
    runs = []
    for config in configs:
        run = JudgeRun(
            project_id=project.id or 0,
            rubric_version_id=version.id or 0,
            judge_config_id=config.id,
            judge_snapshot=judge_service._with_overrides(
                judge_configs.snapshot_of(config), snapshot_overrides
            ),
            kind=kind,
            comparison_key=comparison_key,
            selection=selection,
            repeats=data.repeats,
            status=RunStatus.PREPARING,
            items_total=0,
            settings={
                "neutral_score": data.neutral_score,
                "pairwise": pairwise,
                STATE_KEY: {
                    "done": False,
                    "phase": "selecting",
                    "cursor": None,
                    "selected": 0,
                    "expected": None,
                    "orders": orders,
                },
            },
            message="Preparing: selecting the rollouts to judge.",
            created_by_id=actor.id if actor else None,
        )
        session.add(run)
        session.flush()
        audit_service.record(
            session,
            actor=actor,
            action="judge_run.create",
            object_type="judge_run",
            object_id=run.id,
            project_id=project.id,
            summary=(
                f"started a {kind} judge run of rubric version {version.id} with {config.name}; "
                "a worker prepares its work items"
            ),
            details={"selection": selection, "repeats": data.repeats},
        )
        runs.append(run)
    return runs


# ---- in the worker ----------------------------------------------------------------------------


def _sample_key(dialect: str, subject_id: Any, seed: int) -> Any:
    """A pseudo-random, seeded, per-subject key: PostgreSQL's hashint8extended; on SQLite the
    `rs_sample_key` function app/core/db.py registers on each connection."""
    if dialect == "postgresql":
        return func.hashint8extended(subject_id, literal(seed))
    return func.rs_sample_key(literal(seed), subject_id)


def _claim(engine: Engine, worker_id: str, lease_s: float) -> int | None:
    """Lease the oldest preparing run nobody holds (or whose holder's lease ran out)."""
    now = utcnow()
    free = or_(_runs.c.lease_owner.is_(None), _runs.c.lease_expires_at < now)
    with engine.begin() as conn:
        run_id = conn.execute(
            select(_runs.c.id)
            .where(_runs.c.status == RunStatus.PREPARING, free)
            .order_by(_runs.c.id)
            .limit(1)
        ).scalar()
        if run_id is None:
            return None
        taken = conn.execute(
            update(_runs)
            .where(_runs.c.id == run_id, _runs.c.status == RunStatus.PREPARING, free)
            .values(lease_owner=worker_id, lease_expires_at=now + timedelta(seconds=lease_s))
        )
        return int(run_id) if taken.rowcount else None


def _subjects(session: Session, run: JudgeRun, state: dict[str, Any]) -> Any:
    """The run's selection as a subquery (subject_id, rollout_id), sample cut-off applied."""
    pairwise = bool((run.settings or {}).get("pairwise"))
    selection = SelectionInput.model_validate(
        {k: v for k, v in (run.selection or {}).items() if k in SelectionInput.model_fields}
    )
    query = judge_service.selection_query(run.project_id, selection, pairwise=pairwise)
    cutoff = state.get("cutoff")
    if cutoff is not None:
        dialect = session.get_bind().dialect.name
        inner = query.subquery("selected")
        key = _sample_key(dialect, inner.c.subject_id, int(selection.seed or 0))
        query = select(inner.c.subject_id, inner.c.rollout_id).where(
            or_(key < cutoff[0], and_(key == cutoff[0], inner.c.subject_id <= cutoff[1]))
        )
    return query.subquery("subject")


def _start(session: Session, run: JudgeRun, state: dict[str, Any]) -> None:
    """First step: count the selection and, for a sample, find the cut-off key."""
    pairwise = bool((run.settings or {}).get("pairwise"))
    selection = SelectionInput.model_validate(
        {k: v for k, v in (run.selection or {}).items() if k in SelectionInput.model_fields}
    )
    query = judge_service.selection_query(run.project_id, selection, pairwise=pairwise)
    matched = int(session.execute(select(func.count()).select_from(query.subquery())).scalar_one())
    state["matched"] = matched
    state["expected"] = matched
    if selection.sample is not None and selection.sample < matched:
        dialect = session.get_bind().dialect.name
        inner = query.subquery("selected")
        key = _sample_key(dialect, inner.c.subject_id, int(selection.seed or 0))
        last = session.execute(
            select(key, inner.c.subject_id)
            .order_by(key, inner.c.subject_id)
            .offset(selection.sample - 1)
            .limit(1)
        ).one()
        state["cutoff"] = [int(last[0]), int(last[1])]
        state["expected"] = selection.sample
    state["phase"] = "creating work items"


def _insert_chunk(session: Session, run: JudgeRun, state: dict[str, Any]) -> int:
    """Create the work items of the next CHUNK subjects after the cursor; how many subjects."""
    subjects = _subjects(session, run, state)
    after = state.get("cursor")
    window = select(subjects.c.subject_id, subjects.c.rollout_id)
    if after is not None:
        window = window.where(subjects.c.subject_id > after)
    window_q = window.order_by(subjects.c.subject_id).limit(CHUNK).subquery("chunk")
    bounds = session.execute(
        select(func.count(), func.max(window_q.c.subject_id)).select_from(window_q)
    ).one()
    count, upper = int(bounds[0]), bounds[1]
    if not count:
        return 0
    pairwise = bool((run.settings or {}).get("pairwise"))
    prefix = "p:" if pairwise else "r:"
    chunk = select(subjects.c.subject_id, subjects.c.rollout_id).where(
        subjects.c.subject_id <= upper
    )
    if after is not None:
        chunk = chunk.where(subjects.c.subject_id > after)
    chunk_q = chunk.subquery("rows")
    for repeat in range(run.repeats):
        for order in state.get("orders") or [""]:
            rows = select(
                literal(run.id or 0, Integer),
                chunk_q.c.rollout_id,
                chunk_q.c.subject_id if pairwise else literal(None, Integer),
                literal(prefix, String) + cast(chunk_q.c.subject_id, String),
                literal(repeat, Integer),
                literal(order, String),
                literal("pending", String),
                literal(0, Integer),
            )
            session.execute(
                insert(_items).from_select(
                    [
                        "run_id",
                        "rollout_id",
                        "pair_id",
                        "subject_key",
                        "repeat",
                        "order_shown",
                        "status",
                        "attempts",
                    ],
                    rows,
                )
            )
    state["cursor"] = int(upper)
    state["selected"] = int(state.get("selected") or 0) + count
    return count


def _finish(session: Session, run: JudgeRun, state: dict[str, Any]) -> None:
    """Last step: the run's size and estimate from a sample of its prompts; then it is queued."""
    version = session.get(RubricVersion, run.rubric_version_id)
    pairwise = bool((run.settings or {}).get("pairwise"))
    subjects = _subjects(session, run, state)
    dialect = session.get_bind().dialect.name
    key = _sample_key(dialect, subjects.c.subject_id, 7)
    picks = [
        (int(r[0]), int(r[1]))
        for r in session.execute(
            select(subjects.c.subject_id, subjects.c.rollout_id)
            .order_by(key)
            .limit(judge_service.ESTIMATE_SAMPLE)
        )
    ]
    orders = state.get("orders") or [""]
    selected = int(state.get("selected") or 0)
    calls = selected * run.repeats * len(orders)
    tokens: list[int] = []
    if version is not None and picks:
        sample = judge_service.Subjects(
            pairwise=pairwise,
            ids=[p[0] for p in picks],
            rollout_ids=[p[1] for p in picks],
            selection={},
        )
        tokens, _failures = judge_service._sample_prompts(session, version, sample)
    mean_in = sum(tokens) / len(tokens) if tokens else 0.0
    cost = None
    if version is not None:
        max_tokens = int((run.judge_snapshot.get("params") or {}).get("max_tokens") or 1024)
        calls_in = int(math.ceil(mean_in * calls))
        calls_out = judge_service._output_tokens_guess(version, max_tokens) * calls
        cost = round(judge_verdicts.call_cost(run.judge_snapshot, calls_in, calls_out), 6)
    selection = dict(run.selection or {})
    selection["matched"] = int(state.get("matched") or 0)
    selection["count"] = selected
    run.selection = selection
    run.items_total = calls
    run.estimated_cost = cost
    state["done"] = True
    state["phase"] = "done"
    run.status = RunStatus.QUEUED
    run.message = ""


def prepare_run(
    engine: Engine, run_id: int, worker_id: str, lease_s: float, stop: Any = None
) -> bool:
    """Carry the run's preparation forward, one transaction per chunk, until it is queued, the
    run stops being `preparing` (cancelled), the lease is lost or the worker is told to stop.
    True when it did anything."""
    did = False
    while stop is None or not stop.is_set():
        with Session(engine, expire_on_commit=False) as session:
            run = session.get(JudgeRun, run_id)
            if run is None or run.status != RunStatus.PREPARING or run.lease_owner != worker_id:
                return did
            # Changed below as a plain object: only the guarded UPDATE writes it.
            session.expunge(run)
            settings = dict(run.settings or {})
            state = dict(settings.get(STATE_KEY) or {})
            if state.get("matched") is None:
                _start(session, run, state)
                run.message = "Preparing: creating the work items."
            elif not _insert_chunk(session, run, state):
                _finish(session, run, state)
            settings[STATE_KEY] = state
            run.settings = settings
            finished = run.status != RunStatus.PREPARING
            run.lease_expires_at = utcnow() + timedelta(seconds=lease_s)
            if finished:
                run.lease_owner = None
                run.lease_expires_at = None
            # The cursor moves in the transaction that writes the chunk: all or nothing.
            moved = session.execute(
                update(_runs)
                .where(
                    _runs.c.id == run_id,
                    _runs.c.status == RunStatus.PREPARING,
                    _runs.c.lease_owner == worker_id,
                )
                .values(
                    settings=settings,
                    status=run.status,
                    selection=run.selection,
                    items_total=run.items_total,
                    estimated_cost=run.estimated_cost,
                    message=run.message,
                    lease_owner=run.lease_owner,
                    lease_expires_at=run.lease_expires_at,
                )
                .execution_options(synchronize_session=False)
            )
            if not moved.rowcount:  # type: ignore[attr-defined]
                session.rollback()  # cancelled or taken over meanwhile: drop this chunk
                return did
            session.commit()
            did = True
            if finished:
                log.info("judge run %s prepared: %d items", run_id, run.items_total)
                return did
    return did


def run_preparation_once(ctx: WorkerContext) -> bool:
    """The worker's `judge-prepare` handler: prepare the oldest preparing run."""
    lease_s = float(ctx.settings.lease_seconds)
    run_id = _claim(ctx.engine, ctx.worker_id, lease_s)
    if run_id is None:
        return False
    return prepare_run(ctx.engine, run_id, ctx.worker_id, lease_s, ctx.stop)
