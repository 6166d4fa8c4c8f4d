"""Bulk storage of drift records, one batch at a time, idempotent by (training run, record id).

Each new record becomes a rollout (marked `from_drift`, so it stays out of the full-text index)
and a drift_sample row pointing at it. PostgreSQL: two COPYs per batch with rollout ids taken
from the sequence first, no look-up when nothing in the batch is stored yet; otherwise, and on
SQLite, the checked way (the rollout import's own batch storage, then the samples). A record id
already stored with the same content is a duplicate (skipped); with other content it is a
conflict (reported, never overwritten).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from app.core.clock import utcnow
from app.drift.copy_rows import (
    ROLLOUT_COPY_COLUMNS,
    SAMPLE_COLUMNS,
    SAMPLE_COPY_COLUMNS,
    PackedLine,
)
from app.drift.models import DriftSample, TrainingRun
from app.drift.records import DriftLine, DriftRecord
from app.rollouts import bulk as rollout_bulk
from app.rollouts.formats.common import ParsedLine, Problem
from app.rollouts.models import Rollout

_samples = DriftSample.__table__  # type: ignore[attr-defined]
_rollouts = Rollout.__table__  # type: ignore[attr-defined]
_runs = TrainingRun.__table__  # type: ignore[attr-defined]

_JSON = frozenset({"components", "components_passed", "judge_criteria", "metadata"})


@dataclass(frozen=True)
class DriftTarget:
    project_id: int
    training_run_id: int
    import_id: int | None
    source_file: str


@dataclass
class DriftOutcome:
    inserted: int = 0
    duplicates: int = 0
    conflicts: list[Problem] = field(default_factory=list)
    # The batch was looked up record by record (not the PostgreSQL COPY of new records alone).
    looked_up: bool = True


def storage_problem(line: DriftLine) -> Problem | None:
    """A value the databases cannot store (NUL characters, infinite numbers), or None."""
    if line.storable:
        return None
    problem = rollout_bulk.storage_problem(ParsedLine(line.line_no, [line.record.rollout], False))
    if problem is not None:
        return problem
    record = line.record
    for name, value in (("metadata", record.metadata), ("error", record.error)):
        message = rollout_bulk._unstorable(value)
        if message:
            return Problem(line.line_no, name, message)
    return None


def store_batch(session: Session, target: DriftTarget, lines: Sequence[DriftLine]) -> DriftOutcome:
    """Store the batch's new records (and their rollouts); flushes, never commits.

    On PostgreSQL the batch is first tried as two COPYs with rollout ids taken from the
    sequence beforehand, without looking anything up: the usual case of a file imported once.
    A record id (or rollout id) already stored makes that attempt fail on the unique keys; it is
    rolled back to its savepoint and the batch goes the checked way (look up, classify,
    insert), so duplicates and conflicts are found exactly as before.
    """
    outcome = DriftOutcome()
    first: dict[str, DriftLine] = {}
    for line in lines:
        seen = first.get(line.record.record_id)
        if seen is None:
            first[line.record.record_id] = line
        elif seen.record.content_hash == line.record.content_hash:
            outcome.duplicates += 1
        else:
            outcome.conflicts.append(
                _conflict(line, f"is also used by line {seen.line_no} of {target.source_file}")
            )
    if not first:
        return outcome
    if session.get_bind().dialect.name == "postgresql" and _copy_new(
        session, target, list(first.values())
    ):
        outcome.inserted = len(first)
        outcome.looked_up = False
        _update_run(session, target.training_run_id, _steps(first.values()), outcome.inserted)
        session.flush()
        return outcome
    stored = _stored_hashes(session, target.training_run_id, list(first))
    new: list[DriftLine] = []
    for record_id, line in first.items():
        existing = stored.get(record_id)
        if existing is None:
            new.append(line)
        elif existing == line.record.content_hash:
            outcome.duplicates += 1
        else:
            outcome.conflicts.append(_conflict(line, "is already stored in this training run"))
    if not new:
        return outcome
    rollout_target = rollout_bulk.BatchTarget(
        target.project_id, target.import_id, target.source_file, from_drift=True
    )
    rollout_bulk.store_batch(
        session,
        rollout_target,
        [ParsedLine(line.line_no, [line.record.rollout], False) for line in new],
    )
    rollout_ids = _rollout_ids(
        session, target.project_id, [line.record.rollout.external_id for line in new]
    )
    now = utcnow()
    rows = [
        _row(line.record, target, rollout_ids.get(line.record.rollout.external_id), now)
        for line in new
    ]
    outcome.inserted = _insert(session, rows)
    if outcome.inserted:
        _update_run(session, target.training_run_id, _steps(new), outcome.inserted)
    session.flush()
    return outcome


def copy_packed(
    session: Session, target: DriftTarget, lines: Sequence[PackedLine]
) -> tuple[DriftOutcome, list[PackedLine]]:
    """store_batch for lines packed as COPY rows where they were parsed (PostgreSQL,
    copy_rows): the batch's new records as two COPYs of those rows, the ids put in front.

    When a record of the batch is already stored, the COPYs are rolled back and the batch's
    record ids looked up: stored ones are duplicates or conflicts (as in store_batch), and the
    others are returned, for the caller to store the checked way (parsed again, store_batch).
    A file imported again thus costs one look-up per batch, not a second parse."""
    import psycopg

    outcome = DriftOutcome(looked_up=False)
    first: dict[str, PackedLine] = {}
    for line in lines:
        seen = first.get(line.record_id)
        if seen is None:
            first[line.record_id] = line
        elif seen.content_hash == line.content_hash:
            outcome.duplicates += 1
        else:
            outcome.conflicts.append(
                _conflict_at(
                    line.line_no,
                    line.record_id,
                    f"is also used by line {seen.line_no} of {target.source_file}",
                )
            )
    if not first:
        return outcome, []
    new = list(first.values())
    rollout_ids = _next_rollout_ids(session, len(new))
    rollouts: list[bytes] = []
    samples: list[bytes] = []
    for rollout_id, line in zip(rollout_ids, new, strict=True):
        prefix = b"%d" % rollout_id
        rollouts += (prefix, line.rollout_row)
        samples += (prefix, line.sample_row)
    try:
        with session.begin_nested():
            driver = session.connection().connection.driver_connection
            assert driver is not None
            with driver.cursor() as cursor:
                with cursor.copy(
                    f"COPY rollout ({', '.join(ROLLOUT_COPY_COLUMNS)}) FROM STDIN"
                ) as copy:
                    copy.write(b"".join(rollouts))
                del rollouts
                with cursor.copy(
                    f"COPY drift_sample ({', '.join(SAMPLE_COPY_COLUMNS)}) FROM STDIN"
                ) as copy:
                    copy.write(b"".join(samples))
    except psycopg.errors.UniqueViolation:
        return _classify_stored(session, target, outcome, new)
    outcome.inserted = len(new)
    steps = [line.step for line in new if line.step is not None]
    _update_run(session, target.training_run_id, steps, outcome.inserted)
    session.flush()
    return outcome, []


def _classify_stored(
    session: Session, target: DriftTarget, outcome: DriftOutcome, new: list[PackedLine]
) -> tuple[DriftOutcome, list[PackedLine]]:
    outcome.looked_up = True
    stored = _stored_hashes(session, target.training_run_id, [line.record_id for line in new])
    left: list[PackedLine] = []
    for line in new:
        existing = stored.get(line.record_id)
        if existing is None:
            left.append(line)
        elif existing == line.content_hash:
            outcome.duplicates += 1
        else:
            outcome.conflicts.append(
                _conflict_at(line.line_no, line.record_id, "is already stored in this training run")
            )
    return outcome, left


def _next_rollout_ids(session: Session, count: int) -> list[int]:
    """`count` ids from the rollout table's sequence."""
    connection = session.connection()
    sequence = connection.execute(text("SELECT pg_get_serial_sequence('rollout', 'id')")).scalar()
    ids = connection.execute(
        text("SELECT nextval(CAST(:sequence AS regclass)) FROM generate_series(1, :n)"),
        {"sequence": sequence, "n": count},
    ).scalars()
    return list(ids)


def _copy_new(session: Session, target: DriftTarget, lines: list[DriftLine]) -> bool:
    """COPY every line as a new rollout and drift sample (PostgreSQL); False, with nothing
    stored, when one of them is already stored (or a concurrent import stored it first)."""
    import psycopg

    rollout_ids = _next_rollout_ids(session, len(lines))
    now = utcnow()
    try:
        with session.begin_nested():
            driver = session.connection().connection.driver_connection
            assert driver is not None
            with driver.cursor() as cursor:
                with cursor.copy(
                    f"COPY rollout (id, {', '.join(rollout_bulk.ROLLOUT_COLUMNS)}) FROM STDIN"
                ) as copy:
                    for rollout_id, line in zip(rollout_ids, lines, strict=True):
                        copy.write_row(_rollout_values(rollout_id, line, target, now))
                with cursor.copy(
                    f"COPY drift_sample ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN"
                ) as copy:
                    for rollout_id, line in zip(rollout_ids, lines, strict=True):
                        copy.write_row(_sample_values(line.record, target, rollout_id, now))
    except psycopg.errors.UniqueViolation:
        return False
    return True


def _json_text(value: Any) -> str:
    """A JSON value as compact text for a jsonb column (orjson; json for what it refuses)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _rollout_values(
    rollout_id: int, line: DriftLine, target: DriftTarget, now: datetime
) -> tuple[Any, ...]:
    """rollout_bulk.ROLLOUT_COLUMNS of the record's rollout, after its id."""
    record = line.record.rollout
    return (
        rollout_id,
        target.project_id,
        record.external_id,
        record.content_hash,
        _json_text(record.input_messages),
        record.target_document,
        _json_text(record.reference_documents),
        None if record.reference_answer is None else _json_text(record.reference_answer),
        record.response,
        record.model,
        record.checkpoint,
        record.step,
        record.group_key,
        target.source_file,
        record.line_no,
        _json_text(record.metadata),
        target.import_id,
        now,
        True,
    )


def _sample_values(
    record: DriftRecord, target: DriftTarget, rollout_id: int | None, now: datetime
) -> tuple[Any, ...]:
    """SAMPLE_COLUMNS of one record."""
    return (
        target.project_id,
        target.training_run_id,
        record.record_id,
        record.content_hash,
        rollout_id,
        record.step,
        record.step_mapped,
        record.recorded_at,
        record.source,
        record.bundle_hash,
        record.sample_id,
        record.group_id,
        record.prompt_key,
        record.reward,
        _json_text(record.components),
        _json_text(record.components_passed),
        record.gated_by,
        record.judge_status,
        _json_text(record.judge_criteria),
        record.judge_aggregate,
        record.neutral_reward,
        record.latency_ms,
        record.attempts,
        record.error,
        record.response_chars,
        record.judge_addressed,
        record.quotes_total,
        record.quotes_ungrounded,
        _json_text(record.metadata),
        target.import_id,
        now,
    )


def _stored_hashes(session: Session, run_id: int, record_ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    c = _samples.c
    for start in range(0, len(record_ids), 1000):
        chunk = record_ids[start : start + 1000]
        query = select(c.record_id, c.content_hash).where(
            c.training_run_id == run_id, c.record_id.in_(chunk)
        )
        found.update(
            {row.record_id: row.content_hash for row in session.connection().execute(query)}
        )
    return found


def _rollout_ids(session: Session, project_id: int, external_ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    c = _rollouts.c
    for start in range(0, len(external_ids), 1000):
        chunk = external_ids[start : start + 1000]
        query = select(c.external_id, c.id).where(
            c.project_id == project_id, c.external_id.in_(chunk)
        )
        found.update({row.external_id: row.id for row in session.connection().execute(query)})
    return found


def _row(
    record: DriftRecord, target: DriftTarget, rollout_id: int | None, now: datetime
) -> dict[str, Any]:
    return {
        "project_id": target.project_id,
        "training_run_id": target.training_run_id,
        "record_id": record.record_id,
        "content_hash": record.content_hash,
        "rollout_id": rollout_id,
        "step": record.step,
        "step_mapped": record.step_mapped,
        "recorded_at": record.recorded_at,
        "source": record.source,
        "bundle_hash": record.bundle_hash,
        "sample_id": record.sample_id,
        "group_id": record.group_id,
        "prompt_key": record.prompt_key,
        "reward": record.reward,
        "components": record.components,
        "components_passed": record.components_passed,
        "gated_by": record.gated_by,
        "judge_status": record.judge_status,
        "judge_criteria": record.judge_criteria,
        "judge_aggregate": record.judge_aggregate,
        "neutral_reward": record.neutral_reward,
        "latency_ms": record.latency_ms,
        "attempts": record.attempts,
        "error": record.error,
        "response_chars": record.response_chars,
        "judge_addressed": record.judge_addressed,
        "quotes_total": record.quotes_total,
        "quotes_ungrounded": record.quotes_ungrounded,
        "metadata": record.metadata,
        "import_id": target.import_id,
        "created_at": now,
    }


def _insert(session: Session, rows: list[dict[str, Any]]) -> int:
    if session.get_bind().dialect.name == "postgresql":
        return _insert_postgres(session, rows)
    statement = sqlite_insert(_samples).on_conflict_do_nothing(
        index_elements=["training_run_id", "record_id"]
    )
    return int(session.connection().execute(statement, rows).rowcount)


def _insert_postgres(session: Session, rows: list[dict[str, Any]]) -> int:
    import psycopg
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    try:
        with session.begin_nested():
            driver = session.connection().connection.driver_connection
            assert driver is not None
            with (
                driver.cursor() as cursor,
                cursor.copy(f"COPY drift_sample ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(
                        tuple(
                            json.dumps(row[name], ensure_ascii=False, separators=(",", ":"))
                            if name in _JSON
                            else row[name]
                            for name in SAMPLE_COLUMNS
                        )
                    )
        return len(rows)
    except psycopg.errors.UniqueViolation:
        # A concurrent import of the same file won some rows: insert the rest.
        statement = pg_insert(_samples).on_conflict_do_nothing(
            index_elements=["training_run_id", "record_id"]
        )
        result = session.connection().execute(statement.returning(_samples.c.id), rows)
        return len(result.all())


def _steps(lines: Iterable[DriftLine]) -> list[int]:
    return [line.record.step for line in lines if line.record.step is not None]


def _update_run(session: Session, run_id: int, steps: list[int], inserted: int) -> None:
    c = _runs.c
    values: dict[str, Any] = {
        "sample_count": c.sample_count + inserted,
        "data_version": c.data_version + 1,
        "updated_at": utcnow(),
    }
    if steps:
        low, high = min(steps), max(steps)
        values["step_min"] = func.coalesce(
            func.min(func.coalesce(c.step_min, low), low)
            if session.get_bind().dialect.name == "sqlite"
            else func.least(func.coalesce(c.step_min, low), low),
            low,
        )
        values["step_max"] = (
            func.max(func.coalesce(c.step_max, high), high)
            if session.get_bind().dialect.name == "sqlite"
            else func.greatest(func.coalesce(c.step_max, high), high)
        )
    session.connection().execute(update(_runs).where(c.id == run_id).values(**values))


def _conflict(line: DriftLine, where: str) -> Problem:
    return _conflict_at(line.line_no, line.record.record_id, where)


def _conflict_at(line_no: int, record_id: str, where: str) -> Problem:
    return Problem(
        line_no,
        "id",
        f"the record id '{record_id}' {where} with different content; this line was "
        "not imported and nothing was overwritten",
    )


def analyze_drift_samples(session: Session) -> None:
    """ANALYZE drift_sample on PostgreSQL (see rollouts.bulk.refresh_statistics_if_stale)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE drift_sample"))
        session.commit()
