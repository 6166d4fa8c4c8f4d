"""A reward preview past the inline limit is a job: the page offers it, a POST records it, the
worker scores it a batch at a time with progress, and the stored result equals the preview
computed directly. The API does the same with 202 and a job to poll."""

from __future__ import annotations

import random
import threading

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.core.config import Settings
from app.core.jobs import WorkerContext
from app.rewards import preview_jobs
from app.rewards import service as reward_service
from app.rewards.jobs import run_reward_previews_once
from app.rewards.models import PreviewJobStatus, RewardPreviewJob
from app.rubrics.builtin import BUILTIN_TEMPLATES
from tests.support.factories import bulk_rollouts, bulk_run, make_project, make_user, make_version
from tests.support.web import csrf_from, find_all, login

KEYS = [c.key for c in BUILTIN_TEMPLATES["generic_pass_fail"].criteria]
SIZE = preview_jobs.INLINE_LIMIT + 200


def _worker(engine: Engine, settings: Settings) -> WorkerContext:
    return WorkerContext(engine, settings, "test-worker", threading.Event())


def test_a_large_preview_runs_in_the_worker_with_progress(
    client: TestClient, session: Session, engine: Engine, settings: Settings
) -> None:
    rng = random.Random(5)
    owner = make_user(session, "owner@example.com")
    reader = make_user(session, "reader@example.com")
    project = make_project(session, owner, "Preview jobs", members=[(reader, "reviewer")])
    version = make_version(session, project)
    rollouts = bulk_rollouts(session, project, SIZE, "pj")
    run = bulk_run(
        session,
        project,
        version,
        {r.id or 0: {k: rng.random() < 0.6 for k in KEYS} for r in rollouts},
    )
    login(client, reader.email)
    url = f"/projects/{project.id}/rewards/preview"
    # A small sample is previewed inside the request.
    small = client.get(url, params={"run_id": run.id, "sample": "20"})
    assert small.status_code == 200
    assert len(find_all(small.text, "data-testid", "reward-row")) == 20
    # The whole run is past the inline limit: the page offers a background job instead.
    page = client.get(url, params={"run_id": run.id})
    assert page.status_code == 200
    assert find_all(page.text, "data-testid", "preview-job-form")
    assert f"{SIZE:,}" in page.text
    started = client.post(
        f"{url}/jobs",
        data={"run_id": str(run.id), "gold_split": "", "csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert started.status_code == 303, started.text
    job_url = started.headers["location"]
    waiting = client.get(job_url)
    status = find_all(waiting.text, "data-testid", "preview-job")[0]
    assert status["data-status"] == PreviewJobStatus.queued and status["hx-get"] == job_url
    # The worker scores it a batch at a time and records the result.
    assert run_reward_previews_once(_worker(engine, settings)) is True
    assert run_reward_previews_once(_worker(engine, settings)) is False
    session.expire_all()
    job = session.get(RewardPreviewJob, int(job_url.rsplit("/", 1)[1]))
    assert job is not None and job.status == PreviewJobStatus.done
    assert job.done == job.total == SIZE
    done = client.get(job_url)
    status = find_all(done.text, "data-testid", "preview-job")[0]
    assert status["data-status"] == PreviewJobStatus.done and "hx-get" not in status
    count = find_all(done.text, "data-testid", "preview-count")
    assert done.text.split('data-testid="preview-count">')[1].startswith(str(SIZE)), count
    # The stored result equals the preview computed directly on the same selection.
    selection = reward_service.PreviewSelection(run_id=run.id or 0)
    ids = reward_service.select_rollout_ids(session, project.id or 0, selection)
    direct = reward_service.compute_preview(session, project, selection, ids)
    stored = preview_jobs.job_preview(session, job)
    assert stored is not None
    assert [r.rollout_id for r in stored.rows] == [r.rollout_id for r in direct.rows]
    assert [r.reward for r in stored.rows] == [r.reward for r in direct.rows]
    assert stored.mean == direct.mean and stored.histogram == direct.histogram
    # The API: 202 with a job to poll; the result once the worker has run.
    api = f"/api/v1/projects/{project.id}/reward-preview/jobs"
    created = client.post(
        api,
        json={"run_id": run.id, "sample": 1100, "seed": 3},
        headers={"x-csrf-token": csrf_from(done.text)},
    )
    assert created.status_code == 202, created.text
    body = created.json()
    assert body["status"] == "queued" and body["total"] == 1100 and body["result"] is None
    assert run_reward_previews_once(_worker(engine, settings)) is True
    polled = client.get(f"{api}/{body['id']}").json()
    assert polled["status"] == "done" and polled["done"] == 1100
    assert polled["result"]["rollouts"] == 1100
    refused = client.post(
        api,
        json={"run_id": run.id, "sample": 5001},
        headers={"x-csrf-token": csrf_from(done.text)},
    )
    assert refused.status_code == 422
    assert client.get(f"{api}/999999").status_code == 404
