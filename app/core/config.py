"""Application settings, read from environment variables prefixed with ``RS_``."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_SECRET_KEY = "development-only-secret-key-do-not-use-in-production"


class Settings(BaseSettings):
    """Every knob of the running app; see docs/configuration.md for the full list."""

    model_config = SettingsConfigDict(env_prefix="RS_", env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str = ""
    secret_key: str = DEV_SECRET_KEY
    allowed_hosts: list[str] = Field(default_factory=lambda: ["*"])

    session_cookie_name: str = "rs_session"
    session_max_age_s: int = 14 * 24 * 3600
    session_cookie_secure: bool | None = None

    login_max_failures: int = 5
    login_failure_window_s: int = 900

    max_upload_bytes: int = 2 * 1024**3
    embedded_worker: bool | None = None
    worker_poll_interval_s: float = 1.0
    lease_seconds: int = 120

    # Judge endpoints (docs/configuration.md, "Judge endpoints"): which API-key variables a judge
    # configuration may name beyond RS_JUDGE_KEY_*, and which internal addresses it may call.
    judge_key_vars: Annotated[list[str], NoDecode] = Field(default_factory=list)
    outbound_allow_loopback: bool = False
    outbound_allow_private: bool = False
    outbound_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("judge_key_vars", "outbound_allow", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        # Comma- or space-separated in the environment; a list when given in code.
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        return value

    @field_validator("outbound_allow")
    @classmethod
    def _valid_allow_list(cls, value: list[str]) -> list[str]:
        from app.llm.egress import parse_allow_list

        parse_allow_list(value)
        return value

    @model_validator(mode="after")
    def _refuse_default_secret_outside_development(self) -> Settings:
        # A known secret would let anyone forge session cookies and CSRF tokens.
        if self.env == "production" and (
            not self.secret_key or self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32
        ):
            raise ValueError(
                "RS_SECRET_KEY must be set to a random value of at least 32 characters when "
                "RS_ENV=production (generate one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))')"
            )
        if self.env == "production" and os.environ.get("RS_INSECURE_FAST_PASSWORD_HASH") == "1":
            raise ValueError("RS_INSECURE_FAST_PASSWORD_HASH is for tests; unset it in production")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'rubric-studio.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def cookie_secure(self) -> bool:
        if self.session_cookie_secure is not None:
            return self.session_cookie_secure
        return self.env == "production"

    @property
    def run_embedded_worker(self) -> bool:
        if self.embedded_worker is not None:
            return self.embedded_worker
        return self.is_sqlite and self.env != "test"

    @property
    def upload_dir(self) -> Path:
        return self.data_dir / "uploads"


@lru_cache
def get_settings() -> Settings:
    return Settings()
