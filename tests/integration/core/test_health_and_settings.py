"""Health probes and the settings' refusal of default secrets outside development."""

from __future__ import annotations

import secrets

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.core.config import DEV_SECRET_KEY, Settings


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_readyz_reports_an_unreachable_database(settings: Settings) -> None:
    from app.main import create_app

    broken = settings.model_copy(
        update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    )
    with TestClient(create_app(broken)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["status"] == "unavailable"


REAL_SECRET = secrets.token_urlsafe(48)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        DEV_SECRET_KEY,
        "short",
        "x" * 48,  # 32 or more identical characters
        "ab" * 24,
        "0123456789abcdef" * 3,  # a repeated pattern
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabcdefghij",  # little randomness
    ],
)
def test_production_refuses_default_or_weak_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="RS_SECRET_KEY") as caught:
        Settings(env="production", secret_key=secret)
    if len(secret) > 8:  # the refusal never repeats the secret
        assert secret not in str(caught.value)


def test_a_refused_secret_is_not_echoed_by_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from app.cli import cli
    from app.core.config import get_settings

    weak = "z" * 40
    monkeypatch.setenv("RS_ENV", "production")
    monkeypatch.setenv("RS_SECRET_KEY", weak)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["worker", "--once"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "RS_SECRET_KEY" in result.output and weak not in result.output


@pytest.mark.parametrize(
    "secret",
    [REAL_SECRET, secrets.token_hex(16), secrets.token_hex(32)],
    ids=["token_urlsafe(48)", "token_hex(16)", "token_hex(32)"],  # stable ids for pytest-xdist
)
def test_production_accepts_generated_secrets(secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RS_INSECURE_FAST_PASSWORD_HASH", raising=False)
    assert Settings(env="production", secret_key=secret).secret_key == secret


def test_production_accepts_a_real_secret_and_secures_cookies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RS_INSECURE_FAST_PASSWORD_HASH", raising=False)
    settings = Settings(env="production", secret_key=REAL_SECRET)
    assert settings.cookie_secure is True


def test_production_refuses_test_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RS_INSECURE_FAST_PASSWORD_HASH", "1")
    with pytest.raises(ValidationError, match="for tests"):
        Settings(env="production", secret_key=REAL_SECRET)


def test_default_database_is_a_local_sqlite_file() -> None:
    settings = Settings(_env_file=None)
    assert settings.resolved_database_url == "sqlite:///data/rubric-studio.db"
