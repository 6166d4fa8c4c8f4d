"""The judge executor's database steps (synchronous; a session runs them in threads): the run
plan, leasing work items, storing verdicts with the run's counters, finishing a run, and loading
and rendering claimed items.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Text, and_, bindparam, case, cast, column, func, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError

from app.core import stored
from app.core.clock import utcnow
from app.judging import status as status_rules
from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from app.judging.status import RunStatus, WorkItemStatus
from app.judging.verdicts import (
    ACTIVE_STATUSES,
    DEFAULT_NEUTRAL_SCORE,
    ERROR_PARSE_STATUSES,
    MAX_ERROR_TEXT,
    PreparedItem,
    RunPlan,
    call_cost,
    item_count_of,
    render_subject,
    verdict_row,
)
from app.rollouts.models import Rollout, RolloutPair
from app.rubrics.definition import RubricDefinition
from app.rubrics.models import RubricVersion
from app.rubrics.output_schema import build_output_schema

log = logging.getLogger(__name__)

_PROMPT_CACHE_SIZE = 4_096

_verdicts = Verdict.__table__  # type: ignore[attr-defined]
_items = JudgeWorkItem.__table__  # type: ignore[attr-defined]
_runs = JudgeRun.__table__  # type: ignore[attr-defined]
_rollouts = Rollout.__table__  # type: ignore[attr-defined]
_pairs = RolloutPair.__table__  # type: ignore[attr-defined]
_versions = RubricVersion.__table__  # type: ignore[attr-defined]


# What a claimed work item carries to `prepare_items`, in this order.
CLAIMED_COLUMNS = (
    _items.c.id,
    _items.c.rollout_id,
    _items.c.pair_id,
    _items.c.repeat,
    _items.c.order_shown,
    _items.c.attempts,
)


def load_plan(engine: Engine, run_id: int) -> RunPlan | None:
    with engine.connect() as conn:
        run = conn.execute(select(_runs).where(_runs.c.id == run_id)).mappings().first()
        if run is None:
            return None
        version = conn.execute(
            select(_versions.c.definition, _versions.c.output_schema).where(
                _versions.c.id == run["rubric_version_id"]
            )
        ).first()
    if version is None:
        return None
    definition = RubricDefinition.model_validate(version[0])
    settings = run["settings"] or {}
    snapshot = run["judge_snapshot"] or {}
    return RunPlan(
        run_id=run_id,
        kind=run["kind"],
        status=run["status"],
        definition=definition,
        definition_dict=definition.model_dump(mode="json"),
        output_schema=version[1] or build_output_schema(definition),
        snapshot=snapshot,
        judge_name=str(snapshot.get("name") or run["external_judge_name"] or ""),
        neutral_score=float(settings.get("neutral_score", DEFAULT_NEUTRAL_SCORE)),
    )


# ---- leases, verdicts and run states ---------------------------------------------------------


def _is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def run_status(engine: Engine, run_id: int) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(_runs.c.status).where(_runs.c.id == run_id)).scalar()


def start_run(engine: Engine, run_id: int) -> None:
    """queued -> running (the first session to start does it; later ones change nothing)."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            update(_runs)
            .where(_runs.c.id == run_id, _runs.c.status == "queued")
            .values(
                status="running",
                started_at=func.coalesce(_runs.c.started_at, now),
                rate_base_at=now,
                rate_base_done=_runs.c.items_done,
            )
        )


def _claimable(now: Any) -> Any:
    return or_(
        _items.c.status == WorkItemStatus.PENDING,
        and_(_items.c.status == WorkItemStatus.LEASED, _items.c.lease_expires_at < now),
    )


def claim_items(
    engine: Engine, run_id: int, token: str, limit: int, lease_seconds: float
) -> list[tuple[int, int, int | None, int, str, int]]:
    """Lease up to `limit` pending (or expired) items of an active run to `token`.

    PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, so concurrent workers never take the same
    row. SQLite: one conditional UPDATE (SQLite runs one writer at a time, so it is atomic).
    Returns (id, rollout_id, pair_id, repeat, order_shown, attempts) tuples.
    """
    now = utcnow()
    values = {
        "status": "leased",
        "lease_owner": token,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "attempts": _items.c.attempts + 1,
    }
    returning = CLAIMED_COLUMNS
    with engine.begin() as conn:
        status = conn.execute(select(_runs.c.status).where(_runs.c.id == run_id)).scalar()
        if status not in ACTIVE_STATUSES:
            return []
        pick = (
            select(_items.c.id)
            .where(_items.c.run_id == run_id, _claimable(now))
            .order_by(_items.c.id)
            .limit(limit)
        )
        if _is_postgres(conn):
            ids = list(conn.execute(pick.with_for_update(skip_locked=True)).scalars())
            if not ids:
                return []
            stmt = update(_items).where(_items.c.id.in_(ids))
        else:
            stmt = update(_items).where(_items.c.id.in_(pick.scalar_subquery()), _claimable(now))
        rows = conn.execute(stmt.values(**values).returning(*returning)).all()
    return sorted(((r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows), key=lambda r: r[0])


def extend_leases(engine: Engine, token: str, lease_seconds: float) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            update(_items)
            .where(_items.c.lease_owner == token, _items.c.status == WorkItemStatus.LEASED)
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        )
    return int(result.rowcount or 0)


def release_leases(engine: Engine, token: str, keep: Iterable[int] = ()) -> int:
    """Put this session's unfinished items back in the queue (cancel, shutdown)."""
    kept = list(keep)
    stmt = update(_items).where(
        _items.c.lease_owner == token, _items.c.status == WorkItemStatus.LEASED
    )
    if kept:
        stmt = stmt.where(_items.c.id.not_in(kept))
    with engine.begin() as conn:
        result = conn.execute(
            stmt.values(status="pending", lease_owner=None, lease_expires_at=None)
        )
    return int(result.rowcount or 0)


def write_verdicts(
    engine: Engine, plan_snapshot: dict[str, Any], rows: list[dict[str, Any]]
) -> int:
    """Insert verdicts, mark their items done and add them to the run's counters, atomically.

    The unique work_item_id makes a second verdict for an item impossible: a row that already
    exists (another worker finished the same item after its lease expired) is skipped, and only
    rows really inserted are counted. Returns how many were inserted.
    """
    if not rows:
        return 0
    run_id = rows[0]["run_id"]
    with engine.begin() as conn:
        if _is_postgres(conn):
            # One short statement with the batch as one JSON parameter: the same SQL text every
            # time (parsed and planned once), instead of a multi-row VALUES list whose text
            # changes with the batch size and costs the worker ~0.3 ms of CPU per row to build.
            batch = orjson.dumps(rows).decode()
            inserted = set(conn.execute(_PG_INSERT_VERDICTS, {"rows": batch}).scalars())
        else:
            stmt = (
                sqlite_insert(_verdicts)
                .on_conflict_do_nothing(index_elements=["work_item_id"])
                .returning(_verdicts.c.work_item_id)
            )
            inserted = set(conn.execute(stmt, rows).scalars())
        conn.execute(
            update(_items)
            .where(_items.c.id.in_([r["work_item_id"] for r in rows]))
            .values(status="done", lease_owner=None, lease_expires_at=None)
        )
        if inserted:
            mine = [r for r in rows if r["work_item_id"] in inserted]
            tokens_in = sum(r["input_tokens"] for r in mine)
            tokens_out = sum(r["output_tokens"] for r in mine)
            conn.execute(
                update(_runs)
                .where(_runs.c.id == run_id)
                .values(
                    items_done=_runs.c.items_done + len(mine),
                    items_error=_runs.c.items_error
                    + sum(r["parse_status"] in ERROR_PARSE_STATUSES for r in mine),
                    input_tokens=_runs.c.input_tokens + tokens_in,
                    output_tokens=_runs.c.output_tokens + tokens_out,
                    cost=_runs.c.cost + call_cost(plan_snapshot, tokens_in, tokens_out),
                )
            )
    return len(inserted)


def write_verdicts_one_by_one(engine: Engine, plan: RunPlan, rows: list[dict[str, Any]]) -> int:
    """Store a batch that the database refused, row by row: a row it still refuses is stored as
    an error verdict with the neutral score, so one bad value never stalls the run."""
    inserted = 0
    for row in rows:
        try:
            inserted += write_verdicts(engine, plan.snapshot, [row])
        except DataError as exc:
            log.warning("verdict for work item %s refused: %s", row["work_item_id"], exc.orig)
            item = PreparedItem(
                row["work_item_id"],
                row["rollout_id"],
                row["pair_id"],
                row["repeat"],
                row["order_shown"],
                call=None,
            )
            problem = f"the database refused this verdict: {exc.orig}"
            replacement = verdict_row(plan, item, status="error", error=problem)
            inserted += write_verdicts(engine, plan.snapshot, [replacement])
    return inserted


def _pg_insert_verdicts() -> Any:
    """INSERT INTO verdict (...) SELECT ... FROM jsonb_to_recordset(:rows) AS r(<typed columns>)
    ON CONFLICT (work_item_id) DO NOTHING RETURNING work_item_id."""
    columns = [c for c in _verdicts.c if c.name != "id"]
    records = (
        func.jsonb_to_recordset(cast(bindparam("rows", type_=Text()), JSONB()))
        .table_valued(*(column(c.name, c.type) for c in columns))
        .render_derived(name="r", with_types=True)
    )
    return (
        pg_insert(_verdicts)
        .from_select([c.name for c in columns], select(*records.c))
        .on_conflict_do_nothing(index_elements=["work_item_id"])
        .returning(_verdicts.c.work_item_id)
    )


_PG_INSERT_VERDICTS = _pg_insert_verdicts()


def recompute_totals(conn: Connection, run_id: int, snapshot: dict[str, Any]) -> dict[str, Any]:
    """The run's counters as the verdicts say they are."""
    done, errors, tokens_in, tokens_out = conn.execute(
        select(
            func.count(),
            func.coalesce(
                func.sum(case((_verdicts.c.parse_status.in_(ERROR_PARSE_STATUSES), 1), else_=0)),
                0,
            ),
            func.coalesce(func.sum(_verdicts.c.input_tokens), 0),
            func.coalesce(func.sum(_verdicts.c.output_tokens), 0),
        ).where(_verdicts.c.run_id == run_id)
    ).one()
    return {
        "items_done": int(done),
        "items_error": int(errors),
        "input_tokens": int(tokens_in),
        "output_tokens": int(tokens_out),
        "cost": call_cost(snapshot, int(tokens_in), int(tokens_out)),
    }


def fail_run(engine: Engine, run_id: int, message: str) -> None:
    """Mark an active run failed (it cannot be judged at all, e.g. its rubric version is gone)."""
    with engine.begin() as conn:
        conn.execute(
            update(_runs)
            .where(_runs.c.id == run_id, _runs.c.status.in_(ACTIVE_STATUSES))
            .values(status=RunStatus.FAILED, finished_at=utcnow(), message=message[:MAX_ERROR_TEXT])
        )


def first_error(conn: Connection, run_id: int) -> str | None:
    """The error text of the run's first failed verdict (for the banner, the API and the CLI)."""
    return conn.execute(
        select(_verdicts.c.error)
        .where(
            _verdicts.c.run_id == run_id,
            _verdicts.c.parse_status.in_(ERROR_PARSE_STATUSES),
            _verdicts.c.error.is_not(None),
        )
        .order_by(_verdicts.c.id)
        .limit(1)
    ).scalar()


def finalize_run(engine: Engine, run_id: int) -> bool:
    """Mark an active run finished when every item is done (counters recomputed from verdicts):
    completed, completed with errors, or failed when every call failed, with the first error.

    Safe to call from any number of workers: only one conditional UPDATE wins.
    """
    with engine.begin() as conn:
        remaining = conn.execute(
            select(func.count()).where(_items.c.run_id == run_id, _items.c.status != "done")
        ).scalar()
        if remaining:
            return False
        snapshot = conn.execute(select(_runs.c.judge_snapshot).where(_runs.c.id == run_id)).scalar()
        totals = recompute_totals(conn, run_id, snapshot or {})
        done, errors = totals["items_done"], totals["items_error"]
        status = status_rules.finished_status(done, errors)
        error = first_error(conn, run_id) if errors else None
        message = status_rules.finished_message(status, done, errors, error)
        result = conn.execute(
            update(_runs)
            .where(_runs.c.id == run_id, _runs.c.status.in_(ACTIVE_STATUSES))
            .values(status=status, finished_at=utcnow(), message=message, **totals)
        )
        if result.rowcount:
            stored.request_refresh(conn, [run_id])  # its agreement figures, for the first visit
    return bool(result.rowcount)


# ---- preparing claimed items ------------------------------------------------------------------


class PromptCache:
    """Rendered prompts by (subject, order): repeats of an item reuse the first rendering."""

    def __init__(self, size: int = _PROMPT_CACHE_SIZE) -> None:
        self.size = size
        self._data: OrderedDict[tuple[Any, ...], tuple[str, str] | str] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> tuple[str, str] | str | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: tuple[Any, ...], value: tuple[str, str] | str) -> None:
        self._data[key] = value
        if len(self._data) > self.size:
            self._data.popitem(last=False)


_ROLLOUT_COLUMNS = (
    _rollouts.c.id,
    _rollouts.c.input_messages,
    _rollouts.c.target_document,
    _rollouts.c.reference_documents,
    _rollouts.c.response,
    _rollouts.c.reference_answer,
    _rollouts.c.metadata.label("metadata_"),
)


def prepare_items(
    engine: Engine,
    plan: RunPlan,
    claimed: list[tuple[int, int, int | None, int, str, int]],
    cache: PromptCache,
    *,
    max_claims: int = 5,
) -> list[PreparedItem]:
    """Load the rollouts (and pairs) of claimed items and render their judge calls."""
    cfg = plan.config()
    need_rollouts = {row[1] for row in claimed}
    pairs: dict[int, tuple[int, int]] = {}
    with engine.connect() as conn:
        pair_ids = [row[2] for row in claimed if row[2] is not None]
        if pair_ids:
            for pid, a_id, b_id in conn.execute(
                select(_pairs.c.id, _pairs.c.rollout_a_id, _pairs.c.rollout_b_id).where(
                    _pairs.c.id.in_(pair_ids)
                )
            ):
                pairs[pid] = (a_id, b_id)
                need_rollouts.update((a_id, b_id))
        rollouts = {
            row.id: row
            for row in conn.execute(
                select(*_ROLLOUT_COLUMNS).where(_rollouts.c.id.in_(need_rollouts))
            )
        }
    prepared: list[PreparedItem] = []
    for item_id, rollout_id, pair_id, repeat, order, attempts in claimed:
        item = PreparedItem(item_id, rollout_id, pair_id, repeat, order, call=None)
        prepared.append(item)
        if pair_id is None and rollout_id in rollouts:
            item.item_count = item_count_of(plan, rollouts[rollout_id].response)
        if attempts > max_claims:
            # Claimed again and again without a verdict: something kills workers on this item.
            item.problem = f"abandoned after {attempts - 1} claims that never finished"
            continue
        key = (pair_id or rollout_id, bool(pair_id), order)
        rendered = cache.get(key)
        if rendered is None:
            rendered = render_subject(plan, rollouts, pairs, rollout_id, pair_id, order)
            cache.put(key, rendered)
        if isinstance(rendered, str):
            item.problem = rendered
            continue
        item.call = cfg.new_call(
            rendered[0],
            rendered[1],
            plan.output_schema,
            metadata={"schema_name": "judge_answer", "work_item_id": item_id},
        )
    return prepared
