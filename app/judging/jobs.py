"""The worker's judge-run handler: finish idle runs, advance Bedrock batch runs, judge items.

`run_judging_once(ctx)` does one unit of work and returns True if it did anything; the worker
loop calls it again at once, or after its poll interval when it returned False.
"""

from __future__ import annotations

import logging

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.engine import Engine

from app.core.clock import utcnow
from app.core.jobs import WorkerContext
from app.judging import engine as judge_engine
from app.judging import storage as judge_storage
from app.judging import verdicts
from app.judging.models import JudgeRun, JudgeWorkItem
from app.judging.status import WorkItemStatus
from app.llm.egress import EgressPolicy

log = logging.getLogger(__name__)

ONLINE_KINDS = ("standard", "pairwise")
# A worker hands the run back after this long so other kinds of jobs get their turn.
MAX_SESSION_S = 300.0

_runs = JudgeRun.__table__  # type: ignore[attr-defined]
_items = JudgeWorkItem.__table__  # type: ignore[attr-defined]


def next_run_with_work(engine: Engine) -> int | None:
    """The oldest active online run that has an item to claim (pending, or its lease expired)."""
    now = utcnow()
    claimable = (
        select(_items.c.id)
        .where(
            _items.c.run_id == _runs.c.id,
            or_(
                _items.c.status == WorkItemStatus.PENDING,
                and_(_items.c.status == WorkItemStatus.LEASED, _items.c.lease_expires_at < now),
            ),
        )
        .limit(1)
    )
    query = (
        select(_runs.c.id)
        .where(
            _runs.c.status.in_(verdicts.ACTIVE_STATUSES),
            _runs.c.kind.in_(ONLINE_KINDS),
            exists(claimable),
        )
        .order_by(_runs.c.id)
        .limit(1)
    )
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def finish_idle_runs(engine: Engine) -> bool:
    """Complete active online runs whose items are all done (e.g. the worker that wrote the last
    verdict was killed before it could mark the run completed)."""
    unfinished = select(_items.c.id).where(_items.c.run_id == _runs.c.id, _items.c.status != "done")
    query = select(_runs.c.id).where(
        _runs.c.status.in_(verdicts.ACTIVE_STATUSES),
        _runs.c.kind.in_(ONLINE_KINDS),
        ~exists(unfinished),
    )
    with engine.connect() as conn:
        idle = list(conn.execute(query).scalars())
    return any([judge_storage.finalize_run(engine, run_id) for run_id in idle])


def run_judging_once(ctx: WorkerContext) -> bool:
    did_work = finish_idle_runs(ctx.engine)
    from app.judging import batch

    did_work = batch.advance_batch_runs(ctx) or did_work
    run_id = next_run_with_work(ctx.engine)
    if run_id is None:
        return did_work
    options = judge_engine.EngineOptions(
        worker_id=ctx.worker_id,
        lease_seconds=float(ctx.settings.lease_seconds),
        max_session_s=MAX_SESSION_S,
        egress=EgressPolicy.from_settings(ctx.settings),
    )
    stats = judge_engine.work_on_run(ctx.engine, run_id, options, stop=ctx.stop)
    log.info(
        "judge run %s: claimed %d, stored %d verdicts%s",
        run_id,
        stats.claimed,
        stats.inserted,
        f" ({stats.halted})" if stats.halted else "",
    )
    # Nothing claimed (another worker was faster, or the run stopped): let the loop rest.
    return did_work or stats.claimed > 0 or stats.halted == "failed"
