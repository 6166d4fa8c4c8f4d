"""Label and verdict files imported as durable jobs: progress is committed as the worker goes (so
the page's progress bar and the CLI can show it), a bad line stores nothing, a stopped import
resumes without writing anything twice, a large browser upload lands on the polling job page,
and the API queues a job whose status carries the rubric version id and, for verdicts, the runs.
"""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from app.core.config import Settings
from app.judging import external
from app.judging.import_jobs import VerdictImportRunner
from app.judging.models import JudgeRun, Verdict
from app.labels import exchange
from app.labels import jobs as label_jobs
from app.labels.jobs import LabelImportRunner
from app.labels.models import Label
from app.rollouts import jobs
from app.rollouts.models import RolloutImport, RolloutImportProblem
from app.worker import run_worker
from tests.support.factories import make_project, make_rollouts, make_user, make_version
from tests.support.web import csrf_for, login

HTMX = {"HX-Request": "true"}


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    owner = make_user(session, "owner@example.com")
    engineer = make_user(session, "eng@example.com")
    project = make_project(session, owner, "Jobs", members=[(engineer, "engineer")])
    version = make_version(session, project, "generic_pass_fail")
    rollouts = make_rollouts(session, project, 30)
    keys = [c["key"] for c in version.definition["criteria"]]
    return {
        "project": project,
        "version": version,
        "rollouts": rollouts,
        "engineer": engineer,
        "keys": keys,
    }


def _labels(count: int, *, bad_line: int | None = None) -> bytes:
    rows = []
    for i in range(count):
        row: dict[str, Any] = {
            "rollout": f"r-{i:04d}",
            "annotator": "Counsel K.",
            "values": {"Safe": "pass", "Clear": i % 2 == 0},
        }
        if bad_line is not None and i + 1 == bad_line:
            row["values"] = {"Safe": "perhaps"}
        rows.append(json.dumps(row))
    return ("\n".join(rows) + "\n").encode()


def _label_count(session: Session, project_id: int) -> int:
    return int(session.exec(select(func.count()).where(Label.project_id == project_id)).one())


def _queue_labels(
    session: Session, settings: Settings, world: dict[str, Any], data: bytes, **kw: Any
) -> RolloutImport:
    return exchange.queue_label_import(
        session,
        settings,
        world["project"],
        actor=world["engineer"],
        rubric_version_id=world["version"].id,
        filename="labels.jsonl",
        source=io.BytesIO(data),
        **kw,
    )


def _run(
    engine: Engine,
    settings: Settings,
    job_id: int,
    runner: type[jobs.ImportRunner],
    fmt: str,
    on_progress: Any = None,
    stop: threading.Event | None = None,
) -> RolloutImport:
    claimed = jobs.claim_import(engine, "test-worker", settings.lease_seconds, formats=(fmt,))
    assert claimed == job_id
    jobs.process_import(
        engine,
        settings,
        job_id,
        "test-worker",
        runner_class=runner,
        on_progress=on_progress,
        stop=stop,
    )
    with Session(engine) as fresh:
        job = fresh.get(RolloutImport, job_id)
        assert job is not None
        return job


def test_labels_import_reports_progress_in_batches(
    session: Session,
    settings: Settings,
    engine: Engine,
    world: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(exchange, "PROGRESS_EVERY", 5)
    monkeypatch.setattr(label_jobs, "STORE_BATCH", 7)
    job = _queue_labels(session, settings, world, _labels(30))
    assert job.status == "queued" and job.options["rubric_version_id"] == world["version"].id
    # A rollout import worker does not take it.
    assert jobs.claim_import(engine, "rollout-worker", settings.lease_seconds) is None
    seen: list[tuple[str, int, int]] = []

    def progress(current: RolloutImport) -> None:
        seen.append((current.status, current.lines_read, current.bytes_read))

    done = _run(engine, settings, job.id, LabelImportRunner, jobs.LABELS_FORMAT, progress)
    assert done.status == "done", done.message
    assert done.message.startswith("30 labels imported, 0 updated, 0 unchanged")
    assert done.inserted == 30
    assert _label_count(session, world["project"].id) == 30
    checking = [lines for status, lines, _ in seen if status == "validating"]
    storing = [lines for status, lines, _ in seen if status == "importing"]
    assert checking[1:4] == [5, 10, 15]  # checked records, committed as they go
    assert storing[1:] == [7, 14, 21, 28, 30]  # the last stored line of each batch
    assert seen[-1][0] == "done"

    # The same file again: nothing new, every label unchanged.
    again = _queue_labels(session, settings, world, _labels(30))
    redo = _run(engine, settings, again.id, LabelImportRunner, jobs.LABELS_FORMAT)
    assert redo.status == "done" and redo.duplicates == 30 and redo.inserted == 0


def test_a_bad_line_stores_nothing_unless_skipped(
    session: Session, settings: Settings, engine: Engine, world: dict[str, Any]
) -> None:
    job = _queue_labels(session, settings, world, _labels(10, bad_line=4))
    rejected = _run(engine, settings, job.id, LabelImportRunner, jobs.LABELS_FORMAT)
    assert rejected.status == "rejected"
    assert "1 line of 10 has problems, so nothing was imported" in rejected.message
    problems = session.exec(
        select(RolloutImportProblem).where(RolloutImportProblem.import_id == job.id)
    ).all()
    assert [(p.line, p.kind) for p in problems] == [(4, "invalid")]
    assert _label_count(session, world["project"].id) == 0
    skipping = _queue_labels(session, settings, world, _labels(10, bad_line=4), skip_invalid=True)
    kept = _run(engine, settings, skipping.id, LabelImportRunner, jobs.LABELS_FORMAT)
    assert kept.status == "done" and kept.inserted == 9
    assert "1 lines skipped" in kept.message


def test_a_stopped_label_import_resumes_after_its_last_batch(
    session: Session,
    settings: Settings,
    engine: Engine,
    world: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(label_jobs, "STORE_BATCH", 10)
    job = _queue_labels(session, settings, world, _labels(30))
    stop = threading.Event()

    def stop_after_first_batch(current: RolloutImport) -> None:
        if current.status == "importing" and current.lines_read >= 10:
            stop.set()

    stopped = _run(
        engine,
        settings,
        job.id,
        LabelImportRunner,
        jobs.LABELS_FORMAT,
        stop_after_first_batch,
        stop,
    )
    assert stopped.status == "importing" and stopped.resume_line == 10
    assert stopped.lease_owner is None  # handed back
    assert _label_count(session, world["project"].id) == 10
    resumed = _run(engine, settings, job.id, LabelImportRunner, jobs.LABELS_FORMAT)
    assert resumed.status == "done" and resumed.inserted == 30
    assert _label_count(session, world["project"].id) == 30


def _verdicts(world: dict[str, Any], count: int, *, bad: bool = False) -> bytes:
    lines = [
        json.dumps(
            {
                "rollout_id": f"r-{i:04d}" if not (bad and i == 2) else "r-9999",
                "judge": "judge-x" if i % 2 else "judge-y",
                "scores": dict.fromkeys(world["keys"], i % 3 != 0),
            }
        )
        for i in range(count)
    ]
    return ("\n".join(lines) + "\n").encode()


def test_verdict_import_job_checks_with_progress_then_stores_its_runs_once(
    session: Session,
    settings: Settings,
    engine: Engine,
    world: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(external, "CHECK_EVERY", 4)
    job = external.queue_verdict_import(
        session,
        settings,
        world["project"],
        actor=world["engineer"],
        rubric_version_id=world["version"].id,
        filename="verdicts.jsonl",
        source=io.BytesIO(_verdicts(world, 20)),
    )
    seen: list[tuple[str, int]] = []
    done = _run(
        engine,
        settings,
        job.id,
        VerdictImportRunner,
        jobs.VERDICTS_FORMAT,
        lambda current: seen.append((current.status, current.bytes_read)),
    )
    assert done.status == "done", done.message
    assert done.inserted == 20 and len(done.options["run_ids"]) == 2
    assert "Imported 20 verdicts as external run(s)" in done.message
    checking = [read for status, read in seen if status == "validating"]
    assert checking == sorted(checking) and len(checking) >= 5
    runs = session.exec(select(JudgeRun).where(JudgeRun.id.in_(done.options["run_ids"]))).all()
    assert sorted(r.external_judge_name or "" for r in runs) == ["judge-x", "judge-y"]
    stored = session.exec(
        select(func.count()).where(Verdict.run_id.in_(done.options["run_ids"]))
    ).one()
    assert stored == 20

    # A job whose runs were stored before its worker stopped only finishes when resumed.
    with Session(engine) as fresh:
        again = fresh.get(RolloutImport, job.id)
        assert again is not None
        again.status, again.finished_at = "importing", None
        fresh.add(again)
        fresh.commit()
    resumed = _run(engine, settings, job.id, VerdictImportRunner, jobs.VERDICTS_FORMAT)
    assert resumed.status == "done"
    count = session.exec(select(func.count()).where(JudgeRun.project_id == world["project"].id))
    assert count.one() == 2

    bad = external.queue_verdict_import(
        session,
        settings,
        world["project"],
        actor=world["engineer"],
        rubric_version_id=world["version"].id,
        filename="bad.jsonl",
        source=io.BytesIO(_verdicts(world, 6, bad=True)),
    )
    refused = _run(engine, settings, bad.id, VerdictImportRunner, jobs.VERDICTS_FORMAT)
    assert refused.status == "rejected" and "nothing was imported" in refused.message
    problems = session.exec(
        select(RolloutImportProblem).where(RolloutImportProblem.import_id == bad.id)
    ).all()
    assert [p.line for p in problems] == [3]
    count = session.exec(select(func.count()).where(JudgeRun.project_id == world["project"].id))
    assert count.one() == 2


def test_a_large_upload_goes_to_the_polling_job_page_and_the_api_queues_jobs(
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
    world: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(exchange, "JOB_THRESHOLD_BYTES", 100)
    monkeypatch.setattr(external, "JOB_THRESHOLD_BYTES", 100)
    pid = world["project"].id
    login(client, "eng@example.com")
    token = csrf_for(client, f"/projects/{pid}/labels")
    posted = client.post(
        f"/projects/{pid}/labels/import",
        data={"csrf_token": token, "rubric_version_id": str(world["version"].id)},
        files={"file": ("labels.jsonl", _labels(12), "application/x-ndjson")},
        follow_redirects=False,
    )
    assert posted.status_code == 303
    page_url = posted.headers["location"]
    assert page_url.startswith(f"/projects/{pid}/imports/")
    page = client.get(page_url)
    assert page.status_code == 200
    assert 'data-status="queued"' in page.text and "hx-get=" in page.text
    assert 'data-testid="import-progress"' in page.text
    run_worker(engine, settings, once=True)
    status = client.get(f"{page_url}/status", headers=HTMX)
    assert status.status_code == 286  # htmx stops polling
    assert 'data-status="done"' in status.text and 'data-kind="labels"' in status.text
    assert "12 labels imported" in status.text
    assert _label_count(session, pid) == 12

    verdicts = client.post(
        f"/projects/{pid}/judges/import",
        data={"csrf_token": token, "rubric_version_id": str(world["version"].id)},
        files={"file": ("v.jsonl", _verdicts(world, 8), "application/x-ndjson")},
        follow_redirects=False,
    )
    assert verdicts.status_code == 303
    assert verdicts.headers["location"].startswith(f"/projects/{pid}/imports/")

    api = client.post(
        f"/api/v1/projects/{pid}/labels/import-jobs",
        data={"rubric_version_id": str(world["version"].id), "format": "jsonl"},
        files={"file": ("more.jsonl", _labels(5), "application/x-ndjson")},
        headers={"X-CSRF-Token": token},
    )
    assert api.status_code == 202, api.text
    body = api.json()
    assert body["status"] == "queued" and body["rubric_version_id"] == world["version"].id
    run_worker(engine, settings, once=True)
    polled = client.get(f"/api/v1/projects/{pid}/imports/{body['id']}").json()
    assert polled["finished"] and polled["progress"] == 1.0 and polled["status"] == "done"

    judged = client.post(
        f"/api/v1/projects/{pid}/judge-runs/import-jobs",
        data={"rubric_version_id": str(world["version"].id)},
        files={"file": ("v2.jsonl", _verdicts(world, 4), "application/x-ndjson")},
        headers={"X-CSRF-Token": token},
    )
    assert judged.status_code == 202, judged.text
    run_worker(engine, settings, once=True)
    finished = client.get(f"/api/v1/projects/{pid}/imports/{judged.json()['id']}").json()
    assert finished["status"] == "done" and len(finished["run_ids"]) == 2
    assert finished["rubric_version_id"] == world["version"].id
    missing = client.post(
        f"/api/v1/projects/{pid}/labels/import-jobs",
        data={"rubric_version_id": "999999"},
        files={"file": ("x.jsonl", _labels(2), "application/x-ndjson")},
        headers={"X-CSRF-Token": token},
    )
    assert missing.status_code == 404
