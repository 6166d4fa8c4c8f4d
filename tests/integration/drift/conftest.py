"""Fixtures for drift tests: a project with an engineer (imports) and a reviewer (audits), and
a helper that imports a drift file the way the worker does."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.auth.models import User
from app.core.config import Settings
from app.drift import service as drift_service
from app.drift.jobs import DriftImportRunner
from app.drift.models import TrainingRun
from app.projects.models import Project
from app.rollouts import jobs
from app.rollouts.models import RolloutImport
from tests.support.factories import make_project, make_user


@dataclass
class DriftWorld:
    project: Project
    engineer: User
    reviewer: User
    run: TrainingRun


@pytest.fixture
def drift_world(session: Session) -> DriftWorld:
    engineer = make_user(session, "engineer@example.com")
    reviewer = make_user(session, "reviewer@example.com")
    project = make_project(session, engineer, "Contracts", members=[(reviewer, "reviewer")])
    run = drift_service.create_training_run(
        session, project, engineer, name="run-1", base_model="policy-7b"
    )
    return DriftWorld(project, engineer, reviewer, run)


def jsonl(rows: Iterable[dict[str, Any]], *, gz: bool = False) -> bytes:
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    return gzip.compress(data) if gz else data


def run_drift_worker(engine: Engine, settings: Settings, import_id: int) -> RolloutImport:
    for _ in range(10):
        claimed = jobs.claim_import(engine, "test-worker", settings.lease_seconds, drift=True)
        if claimed is None:
            break
        jobs.process_import(
            engine, settings, claimed, "test-worker", runner_class=DriftImportRunner
        )
    with Session(engine) as fresh:
        job = fresh.get(RolloutImport, import_id)
        assert job is not None
        return job


ImportDrift = Callable[..., RolloutImport]


@pytest.fixture
def import_drift(
    session: Session, settings: Settings, engine: Engine, drift_world: DriftWorld
) -> ImportDrift:
    def run(data: bytes, filename: str = "samples.jsonl", **options: Any) -> RolloutImport:
        job = drift_service.create_drift_import(
            session,
            settings,
            drift_world.project,
            options.pop("run", drift_world.run),
            drift_world.engineer,
            filename=filename,
            source=io.BytesIO(data),
            **options,
        )
        return run_drift_worker(engine, settings, job.id or 0)

    return run
