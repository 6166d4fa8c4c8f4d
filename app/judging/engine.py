"""The asynchronous judge executor: leases work items, calls the judge concurrently, and stores
each verdict together with its item's completion and the run's counters in one transaction.

A session works on one run: it keeps about `concurrency` calls in flight, claims more items as
they finish, extends its leases while it works, flushes verdicts in small batches, and stops
starting calls within `status_check_s` of the run being cancelled. Items it leased but did not
finish go back to the queue, and a crashed session's leases simply expire and are claimed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Text, and_, bindparam, case, cast, column, func, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError

from app.core.clock import utcnow
from app.judging import status as status_rules
from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from app.judging.status import RunStatus, WorkItemStatus
from app.llm.base import JudgeCall, JudgeProvider, ProviderError
from app.llm.config import ProviderConfig, make_provider
from app.llm.egress import EgressPolicy
from app.llm.json_extract import extract_json
from app.llm.retry import RetryPolicy, call_with_retries
from app.rollouts.models import Rollout, RolloutPair
from app.rubrics.definition import RubricDefinition, RubricMode
from app.rubrics.models import RubricVersion
from app.rubrics.output_schema import answer_checker, build_output_schema, validate_answer
from app.rubrics.prompting import (
    PreparedRubric,
    PromptContext,
    TemplateError,
    prepare_rubric,
    render_prompt,
)
from app.rubrics.scoring import (
    ScoringError,
    preference_winner,
    response_item_count,
    score_answer,
)

log = logging.getLogger(__name__)

ACTIVE_STATUSES = status_rules.ACTIVE_STATUSES
FINAL_STATUSES = status_rules.FINAL_STATUSES
ERROR_PARSE_STATUSES = ("invalid", "error")
DEFAULT_NEUTRAL_SCORE = 0.5
MAX_RAW_TEXT = 100_000
MAX_ERROR_TEXT = 2_000
_MAX_COUNTER = 2**31 - 1  # the verdict's integer columns are 32-bit on PostgreSQL
_PROMPT_CACHE_SIZE = 4_096
_CANONICAL = {"A": "A", "B": "B", "tie": "tie"}
_FLIP = {"A": "B", "B": "A", "tie": "tie"}
_PAIR_SCORE = {"A": 1.0, "B": 0.0, "tie": 0.5}

ProviderFactory = Callable[[ProviderConfig], JudgeProvider]

_verdicts = Verdict.__table__  # type: ignore[attr-defined]
_items = JudgeWorkItem.__table__  # type: ignore[attr-defined]
_runs = JudgeRun.__table__  # type: ignore[attr-defined]
_rollouts = Rollout.__table__  # type: ignore[attr-defined]
_pairs = RolloutPair.__table__  # type: ignore[attr-defined]
_versions = RubricVersion.__table__  # type: ignore[attr-defined]


# ---- judge configuration snapshots ------------------------------------------------------------


def provider_config(snapshot: dict[str, Any]) -> ProviderConfig:
    """The provider settings a run's judge snapshot (a JudgeConfig as a dict) describes."""
    params = snapshot.get("params") or {}
    provider = snapshot["provider"]
    return ProviderConfig(
        provider=provider,
        model_id=snapshot["model_id"],
        base_url=snapshot.get("base_url") if provider == "openai_compat" else None,
        api_key_env=snapshot.get("api_key_env") if provider == "openai_compat" else None,
        region=snapshot.get("region") if provider == "bedrock" else None,
        temperature=params.get("temperature", 0.0),
        top_p=params.get("top_p"),
        max_tokens=int(params.get("max_tokens") or 1024),
        concurrency=int(snapshot.get("concurrency") or 8),
        timeout_s=float(snapshot.get("timeout_s") or 60.0),
        max_attempts=int(snapshot.get("max_attempts") or 5),
        base_delay_s=float(params.get("base_delay_s", 1.0)),
        max_delay_s=float(params.get("max_delay_s", 30.0)),
        structured_output=params.get("structured_output") or "auto",
    )


def call_cost(snapshot: dict[str, Any], input_tokens: int, output_tokens: int) -> float:
    """Money spent on these tokens at the snapshot's prices per 1,000 tokens."""
    return input_tokens / 1000.0 * float(
        snapshot.get("price_input_per_1k") or 0.0
    ) + output_tokens / 1000.0 * float(snapshot.get("price_output_per_1k") or 0.0)


# ---- prompts ----------------------------------------------------------------------------------


def rollout_context(rollout: Any) -> PromptContext:
    """The prompt variables of one rollout (a Rollout row or a row with the same columns)."""
    return PromptContext(
        input_messages=list(rollout.input_messages or []),
        target_document=rollout.target_document,
        references=[_reference(i, r) for i, r in enumerate(rollout.reference_documents or [])],
        response=rollout.response or "",
        reference_answer=rollout.reference_answer,
        metadata=dict(rollout.metadata_ or {}),
    )


def pair_context(first: Any, second: Any) -> PromptContext:
    """Prompt variables for a pair shown as (first, second): response_a is what the judge sees
    first. The input and documents are the first rollout's (both answer the same input)."""
    ctx = rollout_context(first)
    ctx.response = ""
    ctx.response_a = first.response or ""
    ctx.response_b = second.response or ""
    return ctx


def _reference(index: int, ref: Any) -> dict[str, Any]:
    if isinstance(ref, dict):
        return {"title": str(ref.get("title") or f"Reference {index + 1}"), "text": ref.get("text")}
    return {"title": f"Reference {index + 1}", "text": str(ref)}


# ---- what a session needs to know about its run -----------------------------------------------


@dataclass
class RunPlan:
    """Everything needed to judge the items of one run, loaded once per session."""

    run_id: int
    kind: str
    status: str
    definition: RubricDefinition
    definition_dict: dict[str, Any]
    output_schema: dict[str, Any]
    snapshot: dict[str, Any]
    judge_name: str
    neutral_score: float
    _is_valid: Callable[[Any], bool] | None = field(default=None, repr=False)
    _prepared: PreparedRubric | None = field(default=None, repr=False)

    @property
    def prepared(self) -> PreparedRubric:
        # The rollout-independent prompt parts, built once per session rather than per item.
        if self._prepared is None:
            self._prepared = prepare_rubric(self.definition)
        return self._prepared

    @property
    def pairwise(self) -> bool:
        return self.definition.mode == RubricMode.preference

    def is_valid(self, answer: Any) -> bool:
        # Compiled once: checking hundreds of answers a second must not rebuild it each time.
        if self._is_valid is None:
            self._is_valid = answer_checker(self.output_schema)
        return self._is_valid(answer)

    def config(self) -> ProviderConfig:
        return provider_config(self.snapshot)


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


# ---- interpreting a reply ---------------------------------------------------------------------


@dataclass
class Interpretation:
    answer: Any
    scores: dict[str, Any]
    aggregate: float | None
    normalized: float | None
    winner: str | None


def interpret(
    plan: RunPlan, text: str, order: str = "", item_count: int | None = None
) -> Interpretation:
    """Parse, validate and score a judge reply. Raises ValueError with the reason it is unusable.
    `item_count`: the judged response's number of items (per-item rubrics must cover each)."""
    answer = extract_json(text)
    return score_parsed(plan, answer, order, item_count)


def score_parsed(
    plan: RunPlan, answer: Any, order: str = "", item_count: int | None = None
) -> Interpretation:
    """Validate and score an already parsed answer (ValueError when it does not fit the schema)."""
    if not plan.is_valid(answer):
        problems = validate_answer(plan.definition, answer)
        raise ValueError("does not match the answer schema: " + "; ".join(problems[:5]))
    if plan.pairwise:
        return pair_interpretation(answer, order)
    return rubric_interpretation(plan, answer, item_count)


def item_count_of(plan: RunPlan, response: str | None) -> int | None:
    """How many items the judge must score in `response` (None: the rubric is not per item)."""
    if plan.definition.aggregation != "per_item_mean":
        return None
    return response_item_count(response or "", plan.definition.item_field)


def rubric_interpretation(
    plan: RunPlan, answer: Any, item_count: int | None = None
) -> Interpretation:
    """Scores recomputed from the per-criterion answer (ValueError when it cannot be scored)."""
    try:
        scored = score_answer(plan.definition_dict, answer, item_count)
    except ScoringError as exc:
        raise ValueError(str(exc)) from None
    return Interpretation(
        answer=answer,
        scores={
            "criteria": scored["criteria"],
            "raw": scored["raw"],
            "hard_failed": scored["hard_failed"],
            "items": scored.get("items") or [],
        },
        aggregate=scored["aggregate"],
        normalized=scored["normalized"],
        winner=None,
    )


def pair_interpretation(answer: Any, order: str) -> Interpretation:
    """A preference answer (positional: about the order shown) in the pair's own A/B terms."""
    try:
        shown = preference_winner(answer)
    except ScoringError as exc:
        raise ValueError(str(exc)) from None
    winner = _FLIP[shown] if order == "BA" else _CANONICAL[shown]
    per_criterion = {}
    for key, entry in (answer.get("criteria") or {}).items():
        value = entry.get("winner") if isinstance(entry, dict) else None
        if value in _CANONICAL:
            per_criterion[key] = _FLIP[value] if order == "BA" else value
    return Interpretation(
        answer=answer,
        scores={"criteria": per_criterion, "shown_winner": shown},
        aggregate=_PAIR_SCORE[winner],
        normalized=_PAIR_SCORE[winner],
        winner=winner,
    )


# ---- one item ---------------------------------------------------------------------------------


@dataclass
class PreparedItem:
    """A claimed work item with its judge call rendered (or the reason it could not be)."""

    item_id: int
    rollout_id: int
    pair_id: int | None
    repeat: int
    order: str
    call: JudgeCall | None
    problem: str | None = None
    item_count: int | None = None  # items the judge must score (per-item rubrics)


def verdict_row(
    plan: RunPlan,
    item: PreparedItem,
    *,
    status: str,
    result: Interpretation | None = None,
    raw_text: str = "",
    error: str | None = None,
    latency_ms: int = 0,
    input_tokens: int = 0,
    output_tokens: int = 0,
    attempts: int = 0,
) -> dict[str, Any]:
    answer = None if result is None else result.answer
    scores = {} if result is None else result.scores
    if "\x00" in raw_text or "\\u0000" in raw_text:
        # A judge's reply is untrusted text, and PostgreSQL stores no NUL character: replace it
        # rather than let one verdict fail its whole batch again and again.
        raw_text, answer, scores = _without_nul((raw_text, answer, scores))
    return {
        "run_id": plan.run_id,
        "work_item_id": item.item_id,
        "rollout_id": item.rollout_id,
        "pair_id": item.pair_id,
        "repeat": item.repeat,
        "order_shown": item.order,
        "answer": answer,
        "scores": scores,
        "aggregate": None if result is None else result.aggregate,
        # A failed judgement still yields a score: the neutral one, so downstream sums work.
        "normalized": plan.neutral_score if result is None else result.normalized,
        "winner": None if result is None else result.winner,
        "raw_text": raw_text[:MAX_RAW_TEXT],
        "parse_status": status,
        "error": _without_nul(error[:MAX_ERROR_TEXT]) if error else None,
        # Counts reported by a judge server are untrusted: keep them within the columns' range.
        "latency_ms": _counter(latency_ms),
        "input_tokens": _counter(input_tokens),
        "output_tokens": _counter(output_tokens),
        "attempts": _counter(attempts),
        "judge_name": plan.judge_name[:200],
        "created_at": utcnow(),
    }


def _counter(value: int) -> int:
    return min(max(int(value), 0), _MAX_COUNTER)


def _without_nul(value: Any) -> Any:
    """`value` with every NUL character in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_without_nul(v) for v in value)
    return value


async def judge_item(
    provider: JudgeProvider, plan: RunPlan, item: PreparedItem, policy: RetryPolicy
) -> dict[str, Any]:
    """Call the judge for one item (retries inside), with one repair request for an unusable
    answer. Always returns a verdict row: failures carry the neutral score."""
    if item.call is None:
        return verdict_row(plan, item, status="error", error=item.problem or "no prompt")
    try:
        reply = await call_with_retries(provider, item.call, policy)
    except ProviderError as exc:
        return verdict_row(
            plan, item, status="error", error=f"{exc.code}: {exc.message}", attempts=exc.attempts
        )
    tokens_in, tokens_out = reply.input_tokens, reply.output_tokens
    latency, attempts = reply.latency_ms, reply.attempts
    try:
        return verdict_row(
            plan,
            item,
            status="ok",
            result=interpret(plan, reply.text, item.order, item.item_count),
            raw_text=reply.text,
            latency_ms=latency,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            attempts=attempts,
        )
    except ValueError as exc:
        first_problem = str(exc)

    repair = item.call.repair(reply.text, first_problem)
    try:
        second = await call_with_retries(provider, repair, policy)
    except ProviderError as exc:
        return verdict_row(
            plan,
            item,
            status="invalid",
            raw_text=reply.text,
            error=f"{first_problem}; the repair request failed: {exc.code}: {exc.message}",
            latency_ms=latency,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            attempts=attempts + exc.attempts,
        )
    tokens_in += second.input_tokens
    tokens_out += second.output_tokens
    latency += second.latency_ms
    attempts += second.attempts
    try:
        result = interpret(plan, second.text, item.order, item.item_count)
    except ValueError as exc:
        return verdict_row(
            plan,
            item,
            status="invalid",
            raw_text=second.text,
            error=f"{first_problem}; after one repair request: {exc}",
            latency_ms=latency,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            attempts=attempts,
        )
    return verdict_row(
        plan,
        item,
        status="repaired",
        result=result,
        raw_text=second.text,
        error=f"first reply unusable: {first_problem}",
        latency_ms=latency,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        attempts=attempts,
    )


# ---- database steps (synchronous; the session runs them in threads) ---------------------------


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
    returning = (
        _items.c.id,
        _items.c.rollout_id,
        _items.c.pair_id,
        _items.c.repeat,
        _items.c.order_shown,
        _items.c.attempts,
    )
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
            rendered = _render(plan, rollouts, pairs, rollout_id, pair_id, order)
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


def _render(
    plan: RunPlan,
    rollouts: dict[int, Any],
    pairs: dict[int, tuple[int, int]],
    rollout_id: int,
    pair_id: int | None,
    order: str,
) -> tuple[str, str] | str:
    try:
        if pair_id is not None:
            if pair_id not in pairs:
                return f"pair {pair_id} no longer exists"
            a_id, b_id = pairs[pair_id]
            a, b = rollouts.get(a_id), rollouts.get(b_id)
            if a is None or b is None:
                return f"a rollout of pair {pair_id} no longer exists"
            ctx = pair_context(b, a) if order == "BA" else pair_context(a, b)
        else:
            rollout = rollouts.get(rollout_id)
            if rollout is None:
                return f"rollout {rollout_id} no longer exists"
            ctx = rollout_context(rollout)
        prompt = render_prompt(plan.definition, ctx, plan.prepared)
    except TemplateError as exc:
        return f"the rubric's prompt template failed: {exc}"
    return prompt.system, prompt.user


# ---- the session ------------------------------------------------------------------------------


@dataclass
class EngineOptions:
    worker_id: str
    lease_seconds: float = 120.0
    # Items claimed per round trip; default: the judge configuration's concurrency.
    claim_size: int | None = None
    status_check_s: float = 0.5
    flush_interval_s: float = 0.1
    max_session_s: float | None = None
    max_claims: int = 5
    # The operator's outbound-URL and key-variable policy; None: this process's settings.
    egress: EgressPolicy | None = None


@dataclass
class SessionStats:
    run_id: int
    claimed: int = 0
    finished: int = 0
    inserted: int = 0
    released: int = 0
    halted: str | None = None  # "cancelled", "stopped" or None
    completed_run: bool = False


def work_on_run(
    engine: Engine,
    run_id: int,
    options: EngineOptions,
    *,
    stop: threading.Event | None = None,
    provider_factory: ProviderFactory | None = None,
) -> SessionStats:
    """Judge items of `run_id` until none is left to claim, the run stops being active or
    `stop` is set. Synchronous: runs its own event loop (call it from a worker thread)."""
    session = _Session(engine, run_id, options, stop or threading.Event(), provider_factory)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(session.run())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    # uvloop (installed with uvicorn[standard]) roughly halves the event loop's own overhead,
    # which matters at hundreds of calls a second on a small machine.
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the standard loop works, only slower
        return None
    return uvloop.new_event_loop


def default_provider(cfg: ProviderConfig, egress: EgressPolicy | None = None) -> JudgeProvider:
    """The provider for a judge configuration (tests inject others through provider_factory)."""
    return make_provider(cfg, egress=egress)


class _Session:
    def __init__(
        self,
        engine: Engine,
        run_id: int,
        options: EngineOptions,
        stop: threading.Event,
        provider_factory: ProviderFactory | None,
    ) -> None:
        self.engine = engine
        self.options = options
        self.stop = stop
        self.provider_factory = provider_factory or functools.partial(
            default_provider, egress=options.egress
        )
        self.stats = SessionStats(run_id=run_id)
        self.token = f"{options.worker_id[:80]}/{uuid.uuid4().hex[:12]}"
        self.cache = PromptCache()
        self.results: list[dict[str, Any]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.halt: str | None = None
        self.wake = asyncio.Event()
        self.closing = asyncio.Event()
        self.write_lock = asyncio.Lock()

    async def run(self) -> SessionStats:
        try:
            plan = await asyncio.to_thread(load_plan, self.engine, self.stats.run_id)
            if plan is None:
                raise ValueError("its rubric version no longer exists")
            cfg = plan.config()
            provider = self.provider_factory(cfg)
        except Exception as exc:  # nothing of this run can be judged: say why, once
            log.exception("judge run %s cannot start", self.stats.run_id)
            await asyncio.to_thread(
                fail_run, self.engine, self.stats.run_id, f"The judge could not be set up: {exc}"
            )
            self.stats.halted = "failed"
            return self.stats
        if plan.status not in ACTIVE_STATUSES:
            await provider.aclose()
            return self.stats
        await asyncio.to_thread(start_run, self.engine, plan.run_id)
        policy = cfg.retry_policy()
        watcher = asyncio.create_task(self._watch(plan))
        flusher = asyncio.create_task(self._flush_regularly(plan))
        try:
            await self._loop(plan, provider, policy, cfg.concurrency)
        finally:
            watcher.cancel()
            # The flusher is asked to stop, not cancelled: a write in progress must finish.
            self.closing.set()
            for task in (watcher, flusher):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.tasks:  # halted: calls in flight are abandoned, their items re-queued
                for task in self.tasks:
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)
            try:
                await self._flush(plan)
                self.stats.released = await asyncio.to_thread(
                    release_leases, self.engine, self.token
                )
            finally:  # even when the database is gone: close the provider's connections
                with contextlib.suppress(Exception):
                    await provider.aclose()
        if self.halt is None:
            self.stats.completed_run = await asyncio.to_thread(
                finalize_run, self.engine, plan.run_id
            )
        self.stats.halted = self.halt
        return self.stats

    async def _loop(
        self, plan: RunPlan, provider: JudgeProvider, policy: RetryPolicy, concurrency: int
    ) -> None:
        claim_size = self.options.claim_size or max(concurrency, 8)
        # Keep a second round of work claimed so calls never wait for a claim round trip.
        low_water = concurrency + claim_size
        deadline = (
            time.monotonic() + self.options.max_session_s if self.options.max_session_s else None
        )
        exhausted = False
        while self.halt is None:
            draining = deadline is not None and time.monotonic() > deadline
            if not exhausted and not draining and len(self.tasks) < low_water:
                claimed = await asyncio.to_thread(
                    claim_items,
                    self.engine,
                    plan.run_id,
                    self.token,
                    claim_size,
                    self.options.lease_seconds,
                )
                if self.halt is not None:
                    break
                if claimed:
                    self.stats.claimed += len(claimed)
                    prepared = await asyncio.to_thread(
                        prepare_items,
                        self.engine,
                        plan,
                        claimed,
                        self.cache,
                        max_claims=self.options.max_claims,
                    )
                    for item in prepared:
                        task = asyncio.create_task(self._judge(provider, plan, item, policy))
                        self.tasks.add(task)
                    continue
                exhausted = True
            if not self.tasks:
                if exhausted and not draining:
                    # Items may have been released or their leases expired meanwhile: look once
                    # more before ending the session.
                    exhausted = False
                    again = await asyncio.to_thread(
                        claim_items,
                        self.engine,
                        plan.run_id,
                        self.token,
                        claim_size,
                        self.options.lease_seconds,
                    )
                    if again:
                        self.stats.claimed += len(again)
                        prepared = await asyncio.to_thread(
                            prepare_items,
                            self.engine,
                            plan,
                            again,
                            self.cache,
                            max_claims=self.options.max_claims,
                        )
                        for item in prepared:
                            task = asyncio.create_task(self._judge(provider, plan, item, policy))
                            self.tasks.add(task)
                        continue
                return
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.status_check_s):
                    await self.wake.wait()

    async def _judge(
        self, provider: JudgeProvider, plan: RunPlan, item: PreparedItem, policy: RetryPolicy
    ) -> None:
        try:
            row = await judge_item(provider, plan, item, policy)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not wedge the run: record it on the verdict
            log.exception("judging work item %s failed unexpectedly", item.item_id)
            row = verdict_row(plan, item, status="error", error=f"internal error: {exc!r}")
        finally:
            task = asyncio.current_task()
            if task is not None:
                self.tasks.discard(task)
            self.wake.set()
        self.results.append(row)
        self.stats.finished += 1

    async def _flush(self, plan: RunPlan) -> None:
        async with self.write_lock:
            while self.results:
                batch, self.results = self.results, []
                try:
                    inserted = await self._write(plan, batch)
                except BaseException:
                    # Kept for the next attempt; rows stored meanwhile are skipped then.
                    self.results = batch + self.results
                    raise
                self.stats.inserted += inserted

    async def _write(self, plan: RunPlan, batch: list[dict[str, Any]]) -> int:
        try:
            return await asyncio.to_thread(write_verdicts, self.engine, plan.snapshot, batch)
        except DataError:  # a value the database refuses: find it, store the rest
            return await asyncio.to_thread(write_verdicts_one_by_one, self.engine, plan, batch)

    async def _flush_regularly(self, plan: RunPlan) -> None:
        while not self.closing.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.flush_interval_s):
                    await self.closing.wait()
            try:
                await self._flush(plan)
            except asyncio.CancelledError:
                raise
            except Exception:  # a transient database error: the rows stay queued for next time
                log.exception("writing verdicts failed; retrying")

    async def _watch(self, plan: RunPlan) -> None:
        """Notice cancellation or shutdown quickly, and keep this session's leases alive."""
        heartbeat_every = max(self.options.lease_seconds / 3.0, self.options.status_check_s)
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(self.options.status_check_s)
            try:
                if self.stop.is_set():
                    self.halt = "stopped"
                else:
                    status = await asyncio.to_thread(run_status, self.engine, plan.run_id)
                    if status not in ACTIVE_STATUSES:
                        self.halt = "cancelled" if status == "cancelled" else (status or "deleted")
                if self.halt is not None:
                    self.wake.set()
                    return
                if time.monotonic() - last_beat >= heartbeat_every:
                    await asyncio.to_thread(
                        extend_leases, self.engine, self.token, self.options.lease_seconds
                    )
                    last_beat = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database blinked: check again at the next tick
                log.exception("checking judge run %s failed", plan.run_id)
