"""The `rubric-studio` command: help everywhere, db upgrade, users create, demo without serving."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.auth.models import User
from app.cli import cli
from app.core.config import get_settings

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    monkeypatch.setenv("RS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("RS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RS_ENV", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(
    "args", [[], ["serve"], ["demo"], ["worker"], ["db"], ["db", "upgrade"], ["users", "create"]]
)
def test_help_on_every_command(args: list[str]) -> None:
    result = runner.invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_users_create_and_duplicate(cli_env, session: Session) -> None:
    result = runner.invoke(
        cli, ["users", "create", "--email", "Cli@Example.com", "--role", "site-admin"]
    )
    assert result.exit_code == 0, result.output
    assert "Created cli@example.com with password" in result.output
    user = session.exec(select(User).where(User.email == "cli@example.com")).one()
    assert user.is_admin
    again = runner.invoke(cli, ["users", "create", "--email", "cli@example.com"])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = runner.invoke(cli, ["users", "create", "--email", "x@example.com", "--role", "king"])
    assert bad.exit_code == 2


def test_db_upgrade_is_idempotent(cli_env) -> None:
    result = runner.invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0 and "Database at head" in result.output


def test_demo_without_serving_prints_a_working_login(cli_env, client, session: Session) -> None:
    result = runner.invoke(cli, ["demo", "--no-serve"])
    assert result.exit_code == 0, result.output
    password = result.output.split("Password: ")[1].split()[0]
    from tests.support.web import csrf_for

    token = csrf_for(client, "/login")
    response = client.post(
        "/login",
        data={"email": "admin@demo.rubric.studio", "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    home = client.get("/")
    assert "Contract review" in home.text
    # A second run keeps the data and issues a new password.
    second = runner.invoke(cli, ["demo", "--no-serve"])
    assert second.exit_code == 0 and "already loaded" in second.output
