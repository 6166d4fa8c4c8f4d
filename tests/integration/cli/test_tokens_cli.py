"""`rubric-studio tokens`: a script's first API token without a browser, listed and revoked."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import get_settings
from tests.support.factories import make_user

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    monkeypatch.setenv("RS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("RS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RS_ENV", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_create_use_list_and_revoke_a_token(cli_env, session: Session, client: TestClient):
    make_user(session, "engineer@example.com")
    created = runner.invoke(
        cli, ["tokens", "create", "--email", "engineer@example.com", "--name", "ci"]
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    assert token.startswith("rst_")
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/projects", headers=auth).status_code == 200

    listed = runner.invoke(cli, ["tokens", "list", "--email", "engineer@example.com"])
    assert listed.exit_code == 0, listed.output
    token_id = listed.stdout.split("\t", 1)[0]
    assert "ci" in listed.stdout and "active" in listed.stdout
    assert token not in listed.stdout  # only the prefix is ever shown again

    revoked = runner.invoke(cli, ["tokens", "revoke", token_id])
    assert revoked.exit_code == 0, revoked.output
    assert client.get("/api/v1/projects", headers=auth).status_code == 401
    assert "revoked" in runner.invoke(cli, ["tokens", "list"]).stdout


def test_clear_errors_for_unknown_accounts_and_tokens(cli_env, session: Session) -> None:
    result = runner.invoke(
        cli, ["tokens", "create", "--email", "nobody@example.com", "--name", "x"]
    )
    assert result.exit_code == 1
    assert "No user with the email" in result.output
    make_user(session, "a@example.com")
    result = runner.invoke(cli, ["tokens", "create", "--email", "a@example.com", "--name", " "])
    assert result.exit_code == 1 and "Give the token a name" in result.output
    result = runner.invoke(cli, ["tokens", "revoke", "999"])
    assert result.exit_code == 1 and "No API token with id 999" in result.output
