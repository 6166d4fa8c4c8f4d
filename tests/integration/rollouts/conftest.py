"""Fixtures for the rollout tests: a project with an engineer (who may import) and an expert
(who may not), file builders, and helpers that run an import the way the worker does."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from app.auth.models import User
from app.core.config import Settings
from app.projects.models import Project
from app.rollouts import jobs
from app.rollouts import service as rollout_service
from app.rollouts.models import Rollout, RolloutImport, RolloutPair
from tests.support.factories import make_project, make_user


@dataclass
class World:
    project: Project
    engineer: User
    expert: User

    @property
    def pid(self) -> int:
        return self.project.id or 0


@pytest.fixture
def world(session: Session) -> World:
    engineer = make_user(session, "engineer@example.com")
    expert = make_user(session, "expert@example.com")
    project = make_project(session, engineer, "Contracts", members=[(expert, "expert")])
    return World(project, engineer, expert)


def studio_row(n: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"r-{n}",
        "input": [
            {"role": "system", "content": "You review contracts."},
            {"role": "user", "content": f"Review contract number {n}."},
        ],
        "response": f"Answer {n}: the liability clause is uncapped.",
        "model": "policy-a" if n % 2 else "policy-b",
        "checkpoint": f"ckpt-{n % 3}",
        "step": (n % 3) * 100,
        "group": f"g-{n // 4}",
    }
    row.update(overrides)
    return row


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


ImportFile = Callable[..., RolloutImport]


@pytest.fixture
def import_file(session: Session, settings: Settings, engine: Engine, world: World) -> ImportFile:
    """import_file(data, filename, **choices): create an import and run it as the worker does."""

    def run(
        data: bytes,
        filename: str = "rollouts.jsonl",
        *,
        project: Project | None = None,
        **choices: Any,
    ) -> RolloutImport:
        job = rollout_service.create_import(
            session,
            settings,
            project or world.project,
            world.engineer,
            filename=filename,
            source=io.BytesIO(data),
            choices=rollout_service.ImportChoices(**choices),
        )
        return run_worker_once(engine, settings, job.id or 0)

    return run


def run_worker_once(engine: Engine, settings: Settings, import_id: int) -> RolloutImport:
    """Claim and process imports until `import_id` is finished; returns it as stored."""
    for _ in range(10):
        claimed = jobs.claim_import(engine, "test-worker", settings.lease_seconds)
        if claimed is None:
            break
        jobs.process_import(engine, settings, claimed, "test-worker")
    with Session(engine) as fresh:
        job = fresh.get(RolloutImport, import_id)
        assert job is not None
        return job


def rollout_count(session: Session, project_id: int) -> int:
    query = select(func.count()).select_from(Rollout).where(Rollout.project_id == project_id)
    return int(session.exec(query).one())


def pair_count(session: Session, project_id: int) -> int:
    query = (
        select(func.count()).select_from(RolloutPair).where(RolloutPair.project_id == project_id)
    )
    return int(session.exec(query).one())
