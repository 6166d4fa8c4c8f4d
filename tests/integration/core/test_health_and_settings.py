"""Health probes and the settings' refusal of default secrets outside development."""

from __future__ import annotations

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


@pytest.mark.parametrize("secret", ["", DEV_SECRET_KEY, "short"])
def test_production_refuses_default_or_weak_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="RS_SECRET_KEY"):
        Settings(env="production", secret_key=secret)


def test_production_accepts_a_real_secret_and_secures_cookies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RS_INSECURE_FAST_PASSWORD_HASH", raising=False)
    settings = Settings(env="production", secret_key="x" * 48)
    assert settings.cookie_secure is True


def test_production_refuses_test_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RS_INSECURE_FAST_PASSWORD_HASH", "1")
    with pytest.raises(ValidationError, match="for tests"):
        Settings(env="production", secret_key="x" * 48)


def test_default_database_is_a_local_sqlite_file() -> None:
    settings = Settings(_env_file=None)
    assert settings.resolved_database_url == "sqlite:///data/rubric-studio.db"
