"""Signal thresholds and training runs through the API and the CLI (the form is tested with
the pages): who may change them, unknown names and bad values refused in plain words."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session
from typer.testing import CliRunner

from app.auth import service as auth_service
from app.cli import cli
from app.core.config import Settings, get_settings
from app.drift import service as drift_service
from app.projects.models import Project
from tests.integration.drift.conftest import DriftWorld


def _token(session: Session, user) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth_service.create_api_token(session, user, 't').token}"}


def test_thresholds_api(client: TestClient, session: Session, drift_world: DriftWorld) -> None:
    url = f"/api/v1/projects/{drift_world.project.id}/drift-thresholds"
    engineer, reviewer = (
        _token(session, drift_world.engineer),
        _token(session, drift_world.reviewer),
    )
    shown = client.get(url, headers=reviewer)
    assert shown.status_code == 200
    assert shown.json()["values"] == shown.json()["defaults"] and shown.json()["changed"] == []
    assert client.put(url, json={"alpha": 0.01}, headers=reviewer).status_code == 403
    changed = client.put(url, json={"alpha": 0.01, "length_ratio": 1.5}, headers=engineer)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["values"]["alpha"] == 0.01 and body["values"]["length_ratio"] == 1.5
    assert body["changed"] == ["alpha", "length_ratio"]
    for bad, word in (({"nope": 1}, "Unknown threshold"), ({"alpha": 0.7}, "below 0.5")):
        refused = client.put(url, json=bad, headers=engineer)
        assert refused.status_code == 422 and word in refused.text, refused.text
    session.expire_all()
    project = session.get(Project, drift_world.project.id)
    assert project is not None and drift_service.thresholds(project).alpha == 0.01


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings):
    monkeypatch.setenv("RS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("RS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RS_ENV", "test")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_thresholds_and_create_run(
    cli_env: CliRunner, session: Session, drift_world: DriftWorld
) -> None:
    project = str(drift_world.project.id)
    base = ["drift", "thresholds", "--project", project]
    changed = cli_env.invoke(cli, [*base, "--set", "min_buckets=6", "--set", "alpha=0.002"])
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.output)["min_buckets"] == 6
    kept = cli_env.invoke(cli, [*base, "--set", "alpha=0.003"])
    assert kept.exit_code == 0, kept.output
    assert json.loads(kept.output)["min_buckets"] == 6  # the others keep their values
    refused = cli_env.invoke(cli, [*base, "--set", "nope=1"])
    assert refused.exit_code == 1 and "Unknown threshold" in refused.output
    reset = cli_env.invoke(cli, [*base, "--reset"])
    assert json.loads(reset.output)["min_buckets"] == 4

    made = cli_env.invoke(
        cli,
        ["drift", "create-run", "--project", project, "--name", "run-2", "--base-model", "m-7b"],
    )
    assert made.exit_code == 0, made.output
    run = drift_service.find_training_run(session, drift_world.project.id or 0, "run-2")
    assert run is not None and run.base_model == "m-7b"
    again = cli_env.invoke(cli, ["drift", "create-run", "--project", project, "--name", "run-2"])
    assert again.exit_code == 1
