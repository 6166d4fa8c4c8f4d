"""Shared fixtures: settings, a migrated database per session, an app and its test client."""

from __future__ import annotations

import os

os.environ.setdefault("RS_INSECURE_FAST_PASSWORD_HASH", "1")
# Tests never reach for cloud instance metadata: boto3 must not probe 169.254.169.254.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

from collections.abc import Iterator  # noqa: E402
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.core.config import Settings
from app.core.db import get_engine
from app.main import create_app
from tests.support.db import empty_all_tables, fresh_database

TEST_SECRET = "test-secret-key-that-is-long-enough-for-production-checks"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        data_dir=tmp_path / "data",
        login_max_failures=5,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = get_engine(settings.resolved_database_url)
    empty_all_tables(engine)
    yield engine


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def app(settings: Settings, engine: Engine) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as client:
        yield client
