"""Crash test: two `rubric-studio worker` processes share a 2,000-item run; one is killed with
SIGKILL mid-run and another started. The run completes with exactly one verdict per
(rollout, repeat), none missing, and counters that match the verdicts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from tests.support.factories import (
    insert_rollouts,
    make_judge_config,
    make_project,
    make_user,
    make_version,
    start_runs,
)
from tests.support.judge_server import JudgeServer

ROOT = Path(__file__).resolve().parents[3]
ROLLOUTS, REPEATS = 1000, 2
LEASE_SECONDS = 3


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


def _done(engine: Engine, run_id: int) -> int:
    with Session(engine) as s:
        return s.exec(
            select(func.count()).select_from(Verdict).where(Verdict.run_id == run_id)
        ).one()


def _wait_for(predicate, timeout: float, what: str, workers: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for worker in workers:
            assert worker.poll() is None, f"a worker exited early (code {worker.returncode})"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_killed_worker_loses_and_duplicates_no_verdict(
    session: Session, engine: Engine, settings, tmp_path: Path
) -> None:
    project = make_project(session, make_user(session), "Crash test")
    version = make_version(session, project)
    insert_rollouts(session, project, ROLLOUTS)
    env = {
        **os.environ,
        "RS_DATABASE_URL": settings.resolved_database_url,
        "RS_DATA_DIR": str(tmp_path / "data"),
        "RS_ENV": "test",
        "RS_LEASE_SECONDS": str(LEASE_SECONDS),
        "RS_WORKER_POLL_INTERVAL_S": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    workers: list[subprocess.Popen[bytes]] = []
    with JudgeServer(latency_s=0.05) as server:
        config = make_judge_config(session, project, base_url=server.base_url, concurrency=8)
        (run,) = start_runs(session, project, version, [config], repeats=REPEATS)
        run_id = run.id or 0
        assert run.items_total == ROLLOUTS * REPEATS
        try:
            victim = _start_worker(env, tmp_path / "worker-a.log")
            survivor = _start_worker(env, tmp_path / "worker-b.log")
            workers = [victim, survivor]
            _wait_for(lambda: _done(engine, run_id) >= 400, 60, "the first verdicts", workers)

            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            workers = [survivor]
            done_at_kill = _done(engine, run_id)
            session.expire_all()
            held = session.exec(
                select(func.count())
                .select_from(JudgeWorkItem)
                .where(
                    JudgeWorkItem.run_id == run_id,
                    JudgeWorkItem.status == "leased",
                    col(JudgeWorkItem.lease_owner).contains(f":{victim.pid}:"),
                )
            ).one()
            assert done_at_kill < ROLLOUTS * REPEATS, "the run finished before the kill"

            workers.append(_start_worker(env, tmp_path / "worker-c.log"))

            def finished() -> bool:
                with Session(engine) as s:
                    current = s.get(JudgeRun, run_id)
                    return current is not None and current.status == "completed"

            _wait_for(finished, 90, "the run to complete", workers)
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait(timeout=10)
        requests = server.requests

    session.expire_all()
    verdicts = session.exec(select(Verdict).where(Verdict.run_id == run_id)).all()
    assert len(verdicts) == ROLLOUTS * REPEATS
    assert len({(v.rollout_id, v.repeat) for v in verdicts}) == ROLLOUTS * REPEATS
    assert len({v.work_item_id for v in verdicts}) == ROLLOUTS * REPEATS
    assert {v.parse_status for v in verdicts} == {"ok"}
    statuses = session.exec(
        select(JudgeWorkItem.status, func.count())
        .where(JudgeWorkItem.run_id == run_id)
        .group_by(JudgeWorkItem.status)
    ).all()
    assert dict(statuses) == {"done": ROLLOUTS * REPEATS}
    final = session.get(JudgeRun, run_id)
    assert final is not None and final.status == "completed"
    assert final.items_done == ROLLOUTS * REPEATS and final.items_error == 0
    assert final.input_tokens == sum(v.input_tokens for v in verdicts)
    assert final.output_tokens == sum(v.output_tokens for v in verdicts)
    # The killed worker held leases; those items were claimed again after the lease expired.
    if held:
        reclaimed = session.exec(
            select(func.count())
            .select_from(JudgeWorkItem)
            .where(JudgeWorkItem.run_id == run_id, col(JudgeWorkItem.attempts) >= 2)
        ).one()
        assert reclaimed >= held
    assert held > 0, "the killed worker held no leases: the crash path was not exercised"
    # Calls in flight at the kill were made again, but never stored twice.
    assert requests >= ROLLOUTS * REPEATS
