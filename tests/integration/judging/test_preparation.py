"""Large judge runs are prepared by a worker: the request answers at once with a `preparing`
run, the page shows its progress (polled by htmx), and the preparation is idempotent and carries
on after a crash without duplicate work items. Sizes are shrunk (PREPARE_IN_WORKER_ABOVE, CHUNK)
so the same code paths run on a few rollouts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.auth.models import User
from app.core.clock import utcnow
from app.judging import jobs as judge_jobs
from app.judging import preparation
from app.judging import progress as judge_progress
from app.judging import service as judge_service
from app.judging.models import JudgeRun, JudgeWorkItem
from app.judging.status import RunStatus
from app.projects.models import Project
from tests.support.factories import (
    insert_rollouts,
    make_judge_config,
    make_project,
    make_user,
    make_version,
    start_runs,
)
from tests.support.web import csrf_for, data_testids, find_all, login

HTMX = {"HX-Request": "true"}
LEASE_S = 30.0


@pytest.fixture(autouse=True)
def small_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preparation, "PREPARE_IN_WORKER_ABOVE", 5)
    monkeypatch.setattr(preparation, "CHUNK", 4)


@pytest.fixture
def engineer(session: Session) -> User:
    return make_user(session, "engineer@example.com")


@pytest.fixture
def project(session: Session, engineer: User) -> Project:
    owner = make_user(session, "owner@example.com")
    return make_project(session, owner, "Preparing", members=[(engineer, "engineer")])


@pytest.fixture
def web(client: TestClient, engineer: User, project: Project) -> Iterator[TestClient]:
    login(client, engineer.email)
    yield client


def _items(engine: Engine, run_id: int) -> list[tuple[str, int]]:
    with Session(engine) as s:
        rows = s.exec(
            select(JudgeWorkItem.subject_key, JudgeWorkItem.repeat).where(
                JudgeWorkItem.run_id == run_id
            )
        ).all()
    return [(str(k), int(r)) for k, r in rows]


def _run(engine: Engine, run_id: int) -> JudgeRun:
    with Session(engine, expire_on_commit=False) as s:
        run = s.get(JudgeRun, run_id)
        assert run is not None
        return run


def _prepare(engine: Engine, worker: str = "worker-a") -> bool:
    run_id = preparation._claim(engine, worker, LEASE_S)
    if run_id is None:
        return False
    return preparation.prepare_run(engine, run_id, worker, LEASE_S)


def test_a_large_run_answers_at_once_and_the_page_shows_it_preparing(
    web: TestClient, session: Session, engine: Engine, project: Project
) -> None:
    version = make_version(session, project)
    rollout_ids = insert_rollouts(session, project, 13)
    config = make_judge_config(session, project)
    token = csrf_for(web, "/")
    response = web.post(
        f"/projects/{project.id}/judges/runs",
        data={
            "rubric_version_id": str(version.id),
            "judge_config_ids": [str(config.id)],
            "repeats": "2",
        },
        headers={"X-CSRF-Token": token, **HTMX},
        follow_redirects=False,
    )
    run = session.exec(select(JudgeRun)).one()
    assert response.headers["HX-Redirect"] == f"/projects/{project.id}/judges/runs/{run.id}"
    assert run.status == RunStatus.PREPARING and run.items_total == 0
    assert _items(engine, run.id or 0) == []  # nothing selected in the request

    page = web.get(f"/projects/{project.id}/judges/runs/{run.id}")
    (progress,) = find_all(page.text, "data-testid", "run-progress")
    assert progress["data-status"] == "preparing" and progress["hx-trigger"] == "every 1s"
    assert "preparing-note" in data_testids(page.text) and "run-cancel" in data_testids(page.text)
    runs_table = web.get(f"/projects/{project.id}/judges/runs-table", headers=HTMX)
    assert runs_table.status_code == 200  # still polling
    assert judge_jobs.next_run_with_work(engine) is None  # no judge call before it is ready

    assert _prepare(engine)
    run = _run(engine, run.id or 0)
    assert run.status == RunStatus.QUEUED and run.items_total == 26
    assert run.estimated_cost is not None and run.estimated_cost > 0
    assert run.selection["count"] == 13 and run.selection["matched"] == 13
    assert sorted(_items(engine, run.id or 0)) == sorted(
        (f"r:{rid}", rep) for rid in rollout_ids for rep in (0, 1)
    )
    assert judge_jobs.next_run_with_work(engine) == run.id
    fragment = web.get(f"/projects/{project.id}/judges/runs/{run.id}/progress", headers=HTMX)
    (progress,) = find_all(fragment.text, "data-testid", "run-progress")
    assert progress["data-status"] == "queued"


def test_a_crash_mid_way_loses_nothing_and_duplicates_nothing(
    session: Session, engine: Engine, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = make_version(session, project)
    rollout_ids = insert_rollouts(session, project, 13)
    config = make_judge_config(session, project)
    (run,) = start_runs(session, project, version, [config])
    run_id = run.id or 0
    original = preparation._insert_chunk
    calls = {"n": 0}

    def crashing(session: Session, run: JudgeRun, state: dict[str, Any]) -> int:
        calls["n"] += 1
        count = original(session, run, state)  # the chunk's rows are written...
        if calls["n"] == 3:
            raise RuntimeError("worker killed")  # ...and the worker dies before its commit
        return count

    monkeypatch.setattr(preparation, "_insert_chunk", crashing)
    with pytest.raises(RuntimeError):
        _prepare(engine, "worker-a")
    monkeypatch.setattr(preparation, "_insert_chunk", original)

    halfway = _run(engine, run_id)
    assert halfway.status == RunStatus.PREPARING
    assert len(_items(engine, run_id)) == 8  # two chunks of 4 committed, the third rolled back
    state = halfway.settings["preparation"]
    assert (state["selected"], state["expected"]) == (8, 13)
    progress = judge_progress.run_progress(halfway)
    assert (progress.status, progress.done, progress.total) == (RunStatus.PREPARING, 8, 13)

    # Another worker cannot take it while worker-a's lease holds; it can once the lease is out.
    assert preparation._claim(engine, "worker-b", LEASE_S) is None
    with Session(engine) as s:
        s.execute(
            update(JudgeRun)
            .where(col(JudgeRun.id) == run_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        s.commit()
    assert _prepare(engine, "worker-b")
    items = _items(engine, run_id)
    assert len(items) == len(set(items)) == 13
    assert {k for k, _ in items} == {f"r:{rid}" for rid in rollout_ids}
    assert _run(engine, run_id).status == RunStatus.QUEUED
    assert not _prepare(engine, "worker-c")  # prepared once: nothing left to do


def test_samples_are_drawn_in_sql_reproducibly_and_shared_by_a_cross_judge_set(
    session: Session, engine: Engine, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 30)
    first = make_judge_config(session, project, name="first judge")
    second = make_judge_config(session, project, name="second judge")
    runs = start_runs(session, project, version, [first, second], sample=7, seed=42)
    again = start_runs(session, project, version, [first], sample=7, seed=42)
    other = start_runs(session, project, version, [first], sample=7, seed=43)
    while _prepare(engine):
        pass
    subjects = [{k for k, _ in _items(engine, r.id or 0)} for r in [*runs, *again, *other]]
    assert all(len(s) == 7 for s in subjects)
    assert subjects[0] == subjects[1] == subjects[2]  # same seed, same sample
    assert subjects[3] != subjects[0]
    prepared = _run(engine, runs[0].id or 0)
    assert prepared.selection["seed"] == 42 and prepared.selection["count"] == 7
    assert prepared.selection["matched"] == 30


def test_a_preparing_run_can_be_cancelled_and_resumed_where_it_stopped(
    session: Session, engine: Engine, project: Project, engineer: User
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 9)
    config = make_judge_config(session, project)
    (run,) = start_runs(session, project, version, [config])
    run_id = run.id or 0
    judge_service.cancel_run(session, project, run, actor=engineer)
    assert not _prepare(engine)  # a cancelled run is not prepared
    judge_service.resume_run(session, project, run, actor=engineer)
    assert _run(engine, run_id).status == RunStatus.PREPARING
    assert _prepare(engine)
    assert _run(engine, run_id).status == RunStatus.QUEUED
    assert len(_items(engine, run_id)) == 9


def test_small_selections_are_still_created_in_the_request(
    session: Session, engine: Engine, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 4)
    config = make_judge_config(session, project)
    (run,) = start_runs(session, project, version, [config])
    assert run.status == RunStatus.QUEUED and run.items_total == 4
    count = session.exec(
        select(func.count()).select_from(JudgeWorkItem).where(JudgeWorkItem.run_id == run.id)
    ).one()
    assert count == 4
