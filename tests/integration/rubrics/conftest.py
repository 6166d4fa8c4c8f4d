"""Fixtures for the rubric integration tests: a project with one member per role, rollouts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.auth.models import User
from app.projects.models import Project
from tests.support.factories import make_project, make_user
from tests.support.web import login


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


@pytest.fixture
def expert_client(app: FastAPI, world: World) -> Iterator[TestClient]:
    with TestClient(app) as client:
        login(client, world.expert.email)
        yield client


def client_for(app: FastAPI, user: User) -> TestClient:
    client = TestClient(app)
    login(client, user.email)
    return client
