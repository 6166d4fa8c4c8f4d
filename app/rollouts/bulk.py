"""Bulk storage of parsed rollouts, one batch at a time, idempotent by (project, external id).

PostgreSQL gets the new rows through COPY; SQLite through executemany. A rollout whose id is
already stored with the same content hash is a duplicate (counted, skipped); with a different
hash it is a conflict (reported, never overwritten).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from app.core.clock import utcnow
from app.rollouts.columns import ROLLOUT_COLUMNS, ROLLOUT_JSON_COLUMNS
from app.rollouts.models import Rollout, RolloutPair
from app.rollouts.parsing import ParsedLine, Problem, RolloutRecord

_JSON_COLUMNS = ROLLOUT_JSON_COLUMNS

_rollouts = Rollout.__table__  # type: ignore[attr-defined]
_pairs = RolloutPair.__table__  # type: ignore[attr-defined]

NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored; remove it from the text"


@dataclass(frozen=True)
class BatchTarget:
    """Where a batch goes: the project, the import job and the file name shown as the source."""

    project_id: int
    import_id: int | None
    source_file: str
    # Rollouts made from drift samples (left out of the full-text index).
    from_drift: bool = False


@dataclass
class BatchOutcome:
    inserted: int = 0
    duplicates: int = 0
    pairs: int = 0
    conflicts: list[Problem] = field(default_factory=list)
    # Duplicates that repeat an earlier line of the same file (counted in `duplicates` too).
    repeats: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class _Stored:
    id: int
    content_hash: str
    source_file: str | None
    source_line: int | None
    import_id: int | None


# ---------------------------------------------------------------------------- storability


def storage_problem(line: ParsedLine) -> Problem | None:
    """A value the databases cannot store (NUL characters, infinite numbers), or None.

    The parser accepts them as JSON; PostgreSQL refuses both in text and jsonb columns, so
    they are reported as a problem of the line instead of failing the whole import.
    """
    for record in line.records:
        for name, value in (
            ("input", record.input_messages),
            ("target_document", record.target_document),
            ("references", record.reference_documents),
            ("reference_answer", record.reference_answer),
            ("response", record.response),
            ("metadata", record.metadata),
        ):
            message = _unstorable(value)
            if message:
                return Problem(line.line_no, name, message)
    return None


def _unstorable(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return NUL_MESSAGE if "\x00" in value else None
    # JSON values: the C encoder finds both cases faster than a walk in Python.
    try:
        encoded = json.dumps(value, allow_nan=False)
    except ValueError:
        return "contains a number too large to store as JSON (it reads as infinity)"
    # The escape can also be the text of a literal backslash-u; walk the value to be sure.
    return NUL_MESSAGE if "\\u0000" in encoded and _has_nul(value) else None


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# ---------------------------------------------------------------------------- storing


def store_batch(session: Session, target: BatchTarget, lines: Sequence[ParsedLine]) -> BatchOutcome:
    """Store the batch's new rollouts and pairs; flushes, never commits."""
    outcome = BatchOutcome()
    now = utcnow()
    # The first line using an id wins; a later line with the same id is classified against it.
    first: dict[str, RolloutRecord] = {}
    refused_lines: set[int] = set()
    for line in lines:
        for record in line.records:
            seen = first.get(record.external_id)
            if seen is None:
                first[record.external_id] = record
            elif seen.content_hash == record.content_hash:
                outcome.duplicates += 1
                outcome.repeats.append(_repeat(record, seen.line_no))
            else:
                refused_lines.add(line.line_no)
                outcome.conflicts.append(_same_file_conflict(record, seen, target.source_file))

    stored = _lookup(session, target.project_id, list(first))
    new: list[RolloutRecord] = []
    for external_id, record in first.items():
        existing = stored.get(external_id)
        if existing is None:
            new.append(record)
        elif existing.content_hash == record.content_hash:
            outcome.duplicates += 1
            if (
                target.import_id is not None
                and existing.import_id == target.import_id
                and existing.source_line is not None
                and existing.source_line != record.line_no  # not this line stored before a resume
            ):
                outcome.repeats.append(_repeat(record, existing.source_line))
        else:
            refused_lines.add(record.line_no)
            outcome.conflicts.append(_conflict(record, existing))

    if new:
        inserted = _insert(session, target, new, now)
        if inserted == len(new):
            outcome.inserted += inserted
        else:
            # Another import stored some of these ids meanwhile: classify them again.
            again = _lookup(session, target.project_id, [r.external_id for r in new])
            for record in new:
                existing = again[record.external_id]
                if existing.import_id == target.import_id and target.import_id is not None:
                    outcome.inserted += 1
                elif existing.content_hash == record.content_hash:
                    outcome.duplicates += 1
                else:
                    refused_lines.add(record.line_no)
                    outcome.conflicts.append(_conflict(record, existing))

    pair_lines = [line for line in lines if line.pair and line.line_no not in refused_lines]
    if pair_lines:
        outcome.pairs = _store_pairs(session, target.project_id, pair_lines)
    session.flush()
    return outcome


def _lookup(session: Session, project_id: int, external_ids: list[str]) -> dict[str, _Stored]:
    found: dict[str, _Stored] = {}
    rollouts = _rollouts.c
    for start in range(0, len(external_ids), 1000):
        chunk = external_ids[start : start + 1000]
        query = select(
            rollouts.external_id,
            rollouts.id,
            rollouts.content_hash,
            rollouts.source_file,
            rollouts.source_line,
            rollouts.import_id,
        ).where(rollouts.project_id == project_id, rollouts.external_id.in_(chunk))
        for row in session.connection().execute(query):
            found[row.external_id] = _Stored(
                row.id, row.content_hash, row.source_file, row.source_line, row.import_id
            )
    return found


def refresh_statistics_if_stale(session: Session, rows_added: int) -> bool:
    """ANALYZE the rollout table when PostgreSQL's row estimate is far below what was added.

    With the estimates of a table that was nearly empty, the planner answers the id lookup of
    each batch by scanning every rollout of the project, so a large import into a fresh table
    slows down quadratically. Autovacuum fixes this eventually (if it is on); a big import
    should not wait for it. Returns whether it analyzed. Commits.
    """
    if session.get_bind().dialect.name != "postgresql":
        return False
    estimate = session.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = 'rollout'::regclass")
    ).scalar()
    if estimate is not None and estimate >= rows_added / 2:
        return False
    session.execute(text("ANALYZE rollout"))
    session.commit()
    return True


def _row(record: RolloutRecord, target: BatchTarget, now: datetime) -> dict[str, Any]:
    return {
        "project_id": target.project_id,
        "external_id": record.external_id,
        "content_hash": record.content_hash,
        "input_messages": record.input_messages,
        "target_document": record.target_document,
        "reference_documents": record.reference_documents,
        "reference_answer": record.reference_answer,
        "response": record.response,
        "model": record.model,
        "checkpoint": record.checkpoint,
        "step": record.step,
        "group_key": record.group_key,
        "source_file": target.source_file,
        "source_line": record.line_no,
        "metadata": record.metadata,
        "import_id": target.import_id,
        "created_at": now,
        "from_drift": target.from_drift,
    }


def _insert(
    session: Session, target: BatchTarget, records: list[RolloutRecord], now: datetime
) -> int:
    """Insert rows believed new; returns how many were inserted (fewer if another writer won)."""
    if session.get_bind().dialect.name == "postgresql":
        return _insert_postgres(session, target, records, now)
    rows = [_row(record, target, now) for record in records]
    statement = sqlite_insert(_rollouts).on_conflict_do_nothing(
        index_elements=["project_id", "external_id"]
    )
    result = session.connection().execute(statement, rows)
    return int(result.rowcount)


def _insert_postgres(
    session: Session, target: BatchTarget, records: list[RolloutRecord], now: datetime
) -> int:
    import psycopg

    try:
        with session.begin_nested():
            driver = session.connection().connection.driver_connection
            assert driver is not None
            with (
                driver.cursor() as cursor,
                cursor.copy(f"COPY rollout ({', '.join(ROLLOUT_COLUMNS)}) FROM STDIN") as copy,
            ):
                for record in records:
                    copy.write_row(_copy_values(record, target, now))
        return len(records)
    except psycopg.errors.UniqueViolation:
        # Lost a race with a concurrent import: redo the batch, skipping the ids now taken.
        statement = pg_insert(_rollouts).on_conflict_do_nothing(
            index_elements=["project_id", "external_id"]
        )
        rows = [_row(record, target, now) for record in records]
        result = session.connection().execute(statement.returning(_rollouts.c.id), rows)
        return len(result.all())


def _copy_values(record: RolloutRecord, target: BatchTarget, now: datetime) -> tuple[Any, ...]:
    return (
        target.project_id,
        record.external_id,
        record.content_hash,
        _json(record.input_messages),
        record.target_document,
        _json(record.reference_documents),
        None if record.reference_answer is None else _json(record.reference_answer),
        record.response,
        record.model,
        record.checkpoint,
        record.step,
        record.group_key,
        target.source_file,
        record.line_no,
        _json(record.metadata),
        target.import_id,
        now,
        target.from_drift,
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _store_pairs(session: Session, project_id: int, lines: Iterable[ParsedLine]) -> int:
    halves = [(line.records[0].external_id, line.records[1].external_id) for line in lines]
    ids = _lookup(session, project_id, [external_id for pair in halves for external_id in pair])
    wanted = {
        (ids[a].id, ids[b].id)
        for a, b in halves
        if a in ids and b in ids and ids[a].id != ids[b].id
    }
    if not wanted:
        return 0
    pairs = _pairs.c
    existing = set(
        session.connection().execute(
            select(pairs.rollout_a_id, pairs.rollout_b_id).where(
                pairs.project_id == project_id,
                tuple_(pairs.rollout_a_id, pairs.rollout_b_id).in_(list(wanted)),
            )
        )
    )
    missing = sorted(wanted - {(a, b) for a, b in existing})
    if missing:
        session.add_all(
            RolloutPair(project_id=project_id, rollout_a_id=a, rollout_b_id=b) for a, b in missing
        )
        session.flush()
    return len(missing)


# ---------------------------------------------------------------------------- messages


def _where(source_file: str | None, source_line: int | None) -> str:
    if source_file and source_line:
        return f" (from {source_file}, line {source_line})"
    if source_line:
        return f" (from line {source_line})"
    return ""


def _conflict(record: RolloutRecord, existing: _Stored) -> Problem:
    return Problem(
        record.line_no,
        "id",
        f"a rollout with the id '{record.external_id}' already exists with different content"
        f"{_where(existing.source_file, existing.source_line)}; this line was not imported and "
        "nothing was overwritten",
    )


def _repeat(record: RolloutRecord, first_line: int) -> Problem:
    return Problem(
        record.line_no,
        "id",
        f"repeats line {first_line} of this file (the same id '{record.external_id}' and the same "
        "content): skipped",
    )


def _same_file_conflict(record: RolloutRecord, first: RolloutRecord, source_file: str) -> Problem:
    return Problem(
        record.line_no,
        "id",
        f"the id '{record.external_id}' is also used by line {first.line_no} of {source_file} "
        "with different content; this line was not imported and nothing was overwritten",
    )
