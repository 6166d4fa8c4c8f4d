"""A rollout file with deeply nested values cannot store something its pages cannot show."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.core.config import Settings
from app.rollouts.models import Rollout
from app.worker import run_worker
from tests.integration.rollouts.conftest import World, jsonl, studio_row
from tests.integration.rollouts.test_import_http import job_id_from, upload
from tests.support.web import login


def _nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"x": value}
    return value


def test_deeply_nested_metadata_is_a_problem_not_a_broken_page(
    client: TestClient, session: Session, engine: Engine, settings: Settings, world: World
) -> None:
    login(client, world.engineer.email)
    rows = [studio_row(1), studio_row(2, metadata=_nested(900))]
    job = job_id_from(upload(client, world.pid, jsonl(rows), "deep.jsonl", skip_invalid="1"))
    run_worker(engine, settings, once=True)
    for rollout in session.exec(select(Rollout)).all():
        page = client.get(f"/projects/{world.pid}/rollouts/{rollout.id}")
        assert page.status_code == 200
    assert client.get(f"/projects/{world.pid}/rollouts").status_code == 200
    status = client.get(f"/projects/{world.pid}/imports/{job}")
    assert status.status_code == 200
    assert [r.external_id for r in session.exec(select(Rollout)).all()] == ["r-1"]
    assert "nested more than 32 levels deep" in status.text
