"""The drift import reads its file once, checking each line as its batch is stored: a file
refused late (an invalid line, a cut-off gzip stream) is undone, an interrupted import resumes
without duplicates, and skipped lines are reported once each."""

from __future__ import annotations

import gzip
import io
import threading
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from app.core.config import Settings
from app.drift import jobs as drift_jobs
from app.drift import service as drift_service
from app.drift.models import DriftSample, TrainingRun
from app.drift.synthetic import records
from app.rollouts import browse as rollout_browse
from app.rollouts import jobs
from app.rollouts import service as rollout_service
from app.rollouts.models import Rollout, RolloutImport
from tests.integration.drift.conftest import (
    DriftWorld,
    ImportDrift,
    jsonl,
    run_drift_worker,
)


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drift_jobs, "BATCH_LINES", 4)


def _stored(session: Session, run: TrainingRun) -> tuple[int, int]:
    samples = session.exec(
        select(func.count()).select_from(DriftSample).where(DriftSample.training_run_id == run.id)
    ).one()
    rollouts = session.exec(
        select(func.count()).select_from(Rollout).where(Rollout.from_drift.is_(True))  # type: ignore[attr-defined]
    ).one()
    return int(samples), int(rollouts)


def test_an_invalid_line_late_in_the_file_undoes_what_was_stored(
    session: Session, drift_world: DriftWorld, import_drift: ImportDrift
) -> None:
    rows = list(records(20, run="run-1", steps=9))
    rows[17]["reward"] = "high"
    job = import_drift(jsonl(rows))
    assert job.status == rollout_service.REJECTED, job.message
    assert "1 line of 20 has problems, so nothing was imported" in job.message
    assert job.inserted == 0 and job.invalid == 1
    problems = rollout_service.list_problems(session, job.id or 0)
    assert [(p.line, p.field) for p in problems] == [(18, "reward")]
    assert _stored(session, drift_world.run) == (0, 0)
    session.refresh(drift_world.run)
    assert drift_world.run.sample_count == 0 and drift_world.run.step_max is None
    # The same file, skipping invalid lines: everything else, the bad line reported once.
    skipped = import_drift(jsonl(rows), skip_invalid=True)
    assert skipped.status == rollout_service.DONE and skipped.inserted == 19
    assert skipped.invalid == 1 and skipped.problem_count == 1
    assert _stored(session, drift_world.run) == (19, 19)
    session.refresh(drift_world.run)
    assert drift_world.run.sample_count == 19 and drift_world.run.step_max == 9


def test_a_gzip_stream_cut_off_after_some_batches_is_refused_and_undone(
    session: Session, drift_world: DriftWorld, import_drift: ImportDrift
) -> None:
    data = jsonl(records(200, run="run-1", steps=9), gz=True)
    job = import_drift(data[: len(data) * 3 // 4], filename="cut.jsonl.gz", skip_invalid=True)
    assert job.status == rollout_service.REJECTED, job.message
    assert "cannot be imported" in job.message and "cut off" in job.message
    assert _stored(session, drift_world.run) == (0, 0)


def test_an_interrupted_import_resumes_without_duplicates(
    session: Session,
    settings: Settings,
    engine: Engine,
    drift_world: DriftWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = list(records(30, run="run-1", steps=9))
    rows[5]["reward"] = "high"  # skipped, and reported once across the interruption
    job = drift_service.create_drift_import(
        session,
        settings,
        drift_world.project,
        drift_world.run,
        drift_world.engineer,
        filename="samples.jsonl",
        source=io.BytesIO(jsonl(rows)),
        skip_invalid=True,
    )
    stop = threading.Event()
    batches: list[int] = []
    store_piece = drift_jobs.DriftImportRunner.store_piece

    def stop_after_two(self: Any, *args: Any, **kwargs: Any) -> None:
        store_piece(self, *args, **kwargs)
        batches.append(1)
        if len(batches) == 2:
            stop.set()  # the worker shuts down: the next checkpoint hands the import back

    monkeypatch.setattr(drift_jobs.DriftImportRunner, "store_piece", stop_after_two)
    claimed = jobs.claim_import(engine, "w1", settings.lease_seconds, drift=True)
    assert claimed == job.id
    jobs.process_import(
        engine, settings, claimed, "w1", stop=stop, runner_class=drift_jobs.DriftImportRunner
    )
    with Session(engine) as fresh:
        halfway = fresh.get(RolloutImport, job.id)
        assert halfway is not None and halfway.status == rollout_service.IMPORTING
        assert 0 < halfway.inserted < 29 and halfway.lease_owner is None
    monkeypatch.setattr(drift_jobs.DriftImportRunner, "store_piece", store_piece)
    finished = run_drift_worker(engine, settings, job.id or 0)
    assert finished.status == rollout_service.DONE, finished.message
    assert finished.inserted == 29 and finished.duplicates == 0
    assert finished.invalid == 1 and finished.problem_count == 1
    assert _stored(session, drift_world.run) == (29, 29)


def test_a_file_imported_again_finds_every_record_stored(
    session: Session, drift_world: DriftWorld, import_drift: ImportDrift
) -> None:
    rows = list(records(10, run="run-1", steps=9))
    assert import_drift(jsonl(rows)).inserted == 10
    rows.append(next(iter(records(11, run="run-1", steps=9, seed=2))) | {"id": "run-1-new"})
    again = import_drift(jsonl(rows))
    assert again.status == rollout_service.DONE, again.message
    assert again.inserted == 1 and again.duplicates == 10
    assert _stored(session, drift_world.run) == (11, 11)


def test_gzip_and_plain_give_the_same_samples(
    session: Session, drift_world: DriftWorld, import_drift: ImportDrift
) -> None:
    rows = list(records(9, run="run-1", steps=9))
    job = import_drift(gzip.compress(jsonl(rows)), filename="s.jsonl.gz")
    assert job.status == rollout_service.DONE and job.inserted == 9
    assert job.lines_read == 9


def test_a_pool_of_processes_stores_what_one_process_stores(
    session: Session,
    drift_world: DriftWorld,
    import_drift: ImportDrift,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.drift import records as drift_records

    rows = list(records(40, run="run-1", steps=9, gaming_from=5))
    rows[7]["reward"] = "high"
    expected = {
        line.record.record_id: (line.record.quotes_ungrounded, line.record.judge_addressed)
        for line in drift_records.iter_records(
            io.BytesIO(jsonl(rows)), drift_records.DriftOptions(training_run="run-1")
        )
        if isinstance(line, drift_records.DriftLine)
    }
    monkeypatch.setattr(drift_jobs, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(drift_jobs, "parse_processes", lambda: 2)
    monkeypatch.setattr(drift_jobs, "INLINE_CHUNKS", 2)  # two chunks here, the rest in the pool
    monkeypatch.setattr(drift_records, "CHUNK_LINES", 3)
    job = import_drift(jsonl(rows), skip_invalid=True)
    assert job.status == rollout_service.DONE, job.message
    assert job.inserted == 39 and job.invalid == 1
    problems = rollout_service.list_problems(session, job.id or 0)
    assert [(p.line, p.field) for p in problems] == [(8, "reward")]
    stored = {
        s.record_id: (s.quotes_ungrounded, s.judge_addressed)
        for s in session.exec(
            select(DriftSample).where(DriftSample.training_run_id == drift_world.run.id)
        )
    }
    assert stored == expected and any(addressed for _, addressed in stored.values())


def test_rollouts_made_from_samples_are_listed_but_not_text_searched(
    session: Session, drift_world: DriftWorld, import_drift: ImportDrift
) -> None:
    from app.rollouts.search import RolloutFilter

    rows = list(records(4, run="run-1", steps=3))
    rows[2]["rollout"]["response"] = "Governed by the laws of Zanzibar."
    assert import_drift(jsonl(rows)).inserted == 4
    pid = drift_world.project.id or 0
    listed = rollout_browse.list_rollouts(session, pid, RolloutFilter()).items
    assert len(listed) == 4
    assert rollout_browse.list_rollouts(session, pid, RolloutFilter(q="Zanzibar")).items == []
    exact = rollout_browse.list_rollouts(session, pid, RolloutFilter(q="drift:run-1:run-1-2"))
    assert [r.external_id for r in exact.items] == ["drift:run-1:run-1-2"]
