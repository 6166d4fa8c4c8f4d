"""Fixtures for the rubric integration tests: a project with one member per role, rollouts."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.auth.models import User
from app.projects.models import Project
from app.rollouts.models import Rollout
from tests.support.factories import make_project, make_user
from tests.support.web import login

_ids = itertools.count(1)


@dataclass
class World:
    project: Project
    admin: User
    expert: User
    engineer: User
    reviewer: User

    @property
    def pid(self) -> int:
        return self.project.id or 0


@pytest.fixture
def world(session: Session) -> World:
    admin = make_user(session, "admin@example.com")
    expert = make_user(session, "expert@example.com")
    engineer = make_user(session, "engineer@example.com")
    reviewer = make_user(session, "reviewer@example.com")
    project = make_project(
        session,
        admin,
        "Contracts",
        members=[(expert, "expert"), (engineer, "engineer"), (reviewer, "reviewer")],
    )
    return World(project, admin, expert, engineer, reviewer)


def make_rollout(session: Session, project: Project, **fields: Any) -> Rollout:
    """Insert one rollout row directly (no import job)."""
    n = next(_ids)
    values: dict[str, Any] = {
        "project_id": project.id,
        "external_id": f"rollout-{n}",
        "content_hash": f"{n:064x}",
        "input_messages": [
            {"role": "system", "content": "You review contracts."},
            {"role": "user", "content": "Review this contract against the playbook."},
        ],
        "target_document": "12. Governing law. This Agreement is governed by the laws of Texas.",
        "reference_documents": [{"title": "Playbook", "text": "R1: Delaware or New York law."}],
        "response": '[{"text_excerpt": "governed by the laws of Texas", "rule": "R1"}]',
        "model": "nova-lite-rft",
        "step": 100,
    } | fields
    rollout = Rollout(**values)
    session.add(rollout)
    session.commit()
    return rollout


@pytest.fixture
def expert_client(app: FastAPI, world: World) -> Iterator[TestClient]:
    with TestClient(app) as client:
        login(client, world.expert.email)
        yield client


def client_for(app: FastAPI, user: User) -> TestClient:
    client = TestClient(app)
    login(client, user.email)
    return client
