"""The `rubric-studio` command: help everywhere, db upgrade, users create, demo without serving."""

from __future__ import annotations

import socket
from collections.abc import Iterator

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


@pytest.fixture
def busy_port() -> Iterator[int]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    yield listener.getsockname()[1]
    listener.close()


def test_a_second_demo_on_a_busy_port_refuses_and_keeps_the_password(
    cli_env, session: Session, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11, item 12: the first instance's printed password keeps working."""
    served: list[object] = []
    monkeypatch.setattr("uvicorn.Server.run", lambda self, sockets=None: served.append(sockets))
    first = runner.invoke(cli, ["demo", "--no-serve"])
    assert first.exit_code == 0, first.output
    admin = session.exec(select(User).where(User.email == "admin@demo.rubric.studio")).one()
    hash_before = admin.password_hash

    second = runner.invoke(cli, ["demo", "--port", str(busy_port)])
    assert second.exit_code == 1
    assert f"Port {busy_port} on 127.0.0.1 is already in use" in second.output
    assert "Password:" not in second.output and "Nothing was changed" in second.output
    session.expire_all()
    assert session.get(User, admin.id).password_hash == hash_before
    refused = runner.invoke(cli, ["serve", "--port", str(busy_port), "--no-migrate"])
    assert refused.exit_code == 1 and "already in use" in refused.output
    assert served == []


def test_demo_serves_on_the_socket_it_took_before_changing_anything(
    cli_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[list[socket.socket]] = []
    monkeypatch.setattr("uvicorn.Server.run", lambda self, sockets=None: served.append(sockets))
    monkeypatch.setattr("app.worker.start_embedded_worker", lambda *args, **kwargs: None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runner.invoke(cli, ["demo", "--port", str(port)])
    assert result.exit_code == 0, result.output
    (sockets,) = served
    assert sockets[0].getsockname() == ("127.0.0.1", port)
    sockets[0].close()
