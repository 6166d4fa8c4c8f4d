"""Shared fixtures: settings, a migrated database per session, an app and its test client."""

from __future__ import annotations

import os

os.environ.setdefault("RS_INSECURE_FAST_PASSWORD_HASH", "1")
# Tests never reach for cloud instance metadata: boto3 must not probe 169.254.169.254.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
# The tests' judge servers listen on 127.0.0.1: allow loopback judge URLs explicitly, for
# providers built from this process's settings (workers, the CLI) as for the app below.
os.environ.setdefault("RS_OUTBOUND_ALLOW_LOOPBACK", "true")

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
        outbound_allow_loopback=True,
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


# Files that take much longer than the rest start first, slowest first, so that with
# pytest-xdist's `--dist loadfile` the last worker is not left running one of them alone at the
# end. Listed here by measured cost (`pytest --durations`), then any file with a test marked
# `slow` or `llm`.
SLOW_FILES = (
    "tests/integration/core/test_api_fuzz.py",
    "tests/integration/judging/test_real_llm.py",
    "tests/integration/core/test_route_table.py",
    "tests/unit/agreement/test_agreement_properties.py",
    "tests/integration/cli/test_cli.py",
    "tests/integration/rollouts/test_cli_and_demo.py",
    "tests/integration/agreement/test_corrected.py",
    "tests/integration/agreement/test_slices.py",
    "tests/integration/agreement/test_agreement_pages.py",
    "tests/integration/drift/test_pages_and_api.py",
    "tests/integration/drift/test_demo_audit.py",
    "tests/unit/exports/test_trainer_step.py",
    "tests/e2e/test_drift_dashboard.py",
    "tests/e2e/test_calibration_demo.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(SLOW_FILES)}
    for item in items:
        if item.get_closest_marker("slow") or item.get_closest_marker("llm"):
            rank.setdefault(item.nodeid.split("::")[0], len(SLOW_FILES))
    # A stable sort keeps each file's tests together and in their written order.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(SLOW_FILES) + 1))
