"""On PostgreSQL the pool processes send back COPY rows (copy_rows) instead of records: what is
stored is what the records, stored value by value, give; a batch that meets stored records, or
holds a line that could not be packed, still goes the checked way."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlmodel import Session

from app.drift import jobs as drift_jobs
from app.drift.models import DriftSample
from app.rollouts import service as rollout_service
from app.rollouts.models import Rollout
from tests.integration.drift.conftest import DriftWorld, ImportDrift, jsonl

SKIP = {"id", "rollout_id", "import_id", "created_at", "search_vector"}


def _rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from app.drift.synthetic import records

    out = list(records(12, run="run-1", steps=5, gaming_from=3))
    out[1]["rollout"]["response"] = 'Tabs\tand\nnewlines\r\n, a backslash \\ and "quotes" é'
    out[2]["error"] = "timeout\tafter 30 s\\n"
    out[3]["note"] = {"path": "C:\\tmp", "list": [1.5e-7, -0.0, 12345678901234567]}
    out[4]["rollout"]["metadata"] = {"model": "m\t1", "checkpoint": "c\\2", "extra": None}
    out[5]["rollout"]["reference_answer"] = {"answer": "x\ny"}
    out[6]["big"] = 123456789012345678901234567890  # orjson declines it: not packed
    return out + rows


def _stored(session: Session, run_id: int) -> list[dict[str, Any]]:
    samples = session.execute(
        select(DriftSample.__table__).where(DriftSample.__table__.c.training_run_id == run_id)  # type: ignore[attr-defined]
    ).mappings()
    rollouts = {
        r["id"]: r
        for r in session.execute(
            select(Rollout.__table__).where(Rollout.__table__.c.from_drift.is_(True))  # type: ignore[attr-defined]
        ).mappings()
    }
    out = []
    for sample in samples:
        rollout = rollouts[sample["rollout_id"]]
        out.append(
            {f"s.{k}": v for k, v in sample.items() if k not in SKIP}
            | {f"r.{k}": v for k, v in rollout.items() if k not in SKIP}
        )
    return sorted(out, key=lambda row: row["s.record_id"])


def _clear(session: Session, run_id: int) -> None:
    session.execute(delete(DriftSample).where(DriftSample.training_run_id == run_id))  # type: ignore[arg-type]
    session.execute(delete(Rollout).where(Rollout.from_drift.is_(True)))  # type: ignore[arg-type, attr-defined]
    session.commit()


def test_packed_rows_store_what_records_store(
    session: Session,
    drift_world: DriftWorld,
    import_drift: ImportDrift,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("COPY rows are built for PostgreSQL only")
    monkeypatch.setattr(drift_jobs, "BATCH_LINES", 5)
    data = jsonl(_rows([]))
    run_id = drift_world.run.id or 0
    with monkeypatch.context() as plain:
        plain.setattr(drift_jobs.DriftImportRunner, "chunk_parser", lambda self: None)
        job = import_drift(data)
    assert job.status == rollout_service.DONE and job.inserted == 12, job.message
    expected = _stored(session, run_id)
    _clear(session, run_id)
    packed = import_drift(data)
    assert packed.status == rollout_service.DONE and packed.inserted == 12, packed.message
    assert _stored(session, run_id) == expected
    # In a pool of processes too, and a second import finds every record stored.
    _clear(session, run_id)
    monkeypatch.setattr(drift_jobs, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(drift_jobs, "parse_processes", lambda: 2)
    pooled = import_drift(data)
    assert pooled.status == rollout_service.DONE and pooled.inserted == 12, pooled.message
    assert _stored(session, run_id) == expected
    again = import_drift(data)
    assert again.inserted == 0 and again.duplicates == 12, again.message


def test_duplicates_and_conflicts_within_a_packed_batch(
    session: Session, drift_world: DriftWorld, import_drift: ImportDrift
) -> None:
    from app.drift.synthetic import records

    rows = list(records(4, run="run-1", steps=3))
    rows += [dict(rows[0]), dict(rows[1]) | {"reward": 0.123}]
    job = import_drift(jsonl(rows))
    assert job.status == rollout_service.DONE, job.message
    assert (job.inserted, job.duplicates, job.conflicts) == (4, 1, 1)
    problems = rollout_service.list_problems(session, job.id or 0)
    assert [(p.line, p.field) for p in problems] == [(6, "id")]
    assert "is also used by line 2" in problems[0].message


def test_a_batch_meeting_stored_records_finds_duplicates_conflicts_and_new_ones(
    session: Session,
    drift_world: DriftWorld,
    import_drift: ImportDrift,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.drift.synthetic import records

    monkeypatch.setattr(drift_jobs, "BATCH_LINES", 10)  # one batch: stored and new
    rows = list(records(8, run="run-1", steps=3))
    assert import_drift(jsonl(rows[:6])).inserted == 6
    again = [*rows[:4], rows[4] | {"reward": 0.987}, rows[5], rows[6], rows[7]]
    job = import_drift(jsonl(again))
    assert job.status == rollout_service.DONE, job.message
    assert (job.inserted, job.duplicates, job.conflicts) == (2, 5, 1)
    problems = rollout_service.list_problems(session, job.id or 0)
    assert [(p.line, p.field) for p in problems] == [(5, "id")]
    assert "already stored in this training run" in problems[0].message
    stored = session.execute(
        select(DriftSample.__table__.c.record_id).where(  # type: ignore[attr-defined]
            DriftSample.__table__.c.training_run_id == drift_world.run.id  # type: ignore[attr-defined]
        )
    ).scalars()
    assert sorted(stored) == sorted(row["id"] for row in rows)
