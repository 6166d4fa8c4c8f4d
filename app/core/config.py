"""Application settings, read from environment variables prefixed with ``RS_``."""

from __future__ import annotations

import math
import os
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_SECRET_KEY = "development-only-secret-key-do-not-use-in-production"
# A production secret must look random: at least this many characters, distinct characters and
# bits of (empirical, per-character) entropy. secrets.token_urlsafe(48) has ~340 bits by this
# measure and secrets.token_hex(16) 92 or more; "x" * 48 has 0.
MIN_SECRET_CHARS = 32
MIN_SECRET_DISTINCT = 10
MIN_SECRET_BITS = 80.0


def secret_problem(secret: str) -> str | None:
    """Why `secret` is too weak to sign sessions in production, without repeating it."""
    if not secret or secret == DEV_SECRET_KEY:
        return "is not set (or is the development default)"
    if len(secret) < MIN_SECRET_CHARS:
        return f"is shorter than {MIN_SECRET_CHARS} characters"
    counts = Counter(secret)
    if len(counts) < MIN_SECRET_DISTINCT:
        return f"uses fewer than {MIN_SECRET_DISTINCT} different characters"
    for unit in range(1, len(secret) // 2 + 1):
        if secret == (secret[:unit] * (len(secret) // unit + 1))[: len(secret)]:
            return "is a short pattern repeated"
    bits = -sum(n * math.log2(n / len(secret)) for n in counts.values())
    if bits < MIN_SECRET_BITS:
        return f"has too little randomness (about {bits:.0f} bits; at least {MIN_SECRET_BITS:.0f})"
    return None


class Settings(BaseSettings):
    """Every knob of the running app; see docs/configuration.md for the full list."""

    # hide_input_in_errors: a refused setting (the secret key above all) is never echoed back.
    model_config = SettingsConfigDict(
        env_prefix="RS_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

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
    login_backoff_base_s: int = 30
    login_max_failures_per_address: int = 100
    # Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed
    # ("*" trusts any: only when nothing but the proxy can reach the app).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1"])

    max_upload_bytes: int = 2 * 1024**3
    embedded_worker: bool | None = None
    worker_poll_interval_s: float = 1.0
    lease_seconds: int = 120
    # Longest a single SQL statement of a web request may run (PostgreSQL); 0 turns it off.
    web_statement_timeout_ms: int = Field(default=15_000, ge=0)
    # Heavy pages (app/web/bounds.py HEAVY_ROUTES) served at once per web process; 0: no cap.
    # One more waits up to heavy_wait_s for a slot, then answers 503 with Retry-After.
    heavy_concurrency: int = Field(default=4, ge=0)
    heavy_wait_s: float = Field(default=10.0, ge=0)
    heavy_retry_after_s: int = Field(default=5, ge=1)
    # After heavy pages, hand freed memory back to the OS (glibc malloc_trim); no-op elsewhere.
    memory_trim: bool = True

    # Judge endpoints (docs/configuration.md, "Judge endpoints"): which API-key variables a judge
    # configuration may name beyond RS_JUDGE_KEY_*, and which internal addresses it may call.
    judge_key_vars: Annotated[list[str], NoDecode] = Field(default_factory=list)
    outbound_allow_loopback: bool = False
    outbound_allow_private: bool = False
    outbound_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # The account the command line acts as when a command is given no --as (docs/cli-and-api.md).
    cli_as: str = ""

    @field_validator("judge_key_vars", "outbound_allow", "trusted_proxies", mode="before")
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
        problem = secret_problem(self.secret_key) if self.env == "production" else None
        if problem is not None:
            raise ValueError(
                f"RS_SECRET_KEY {problem}. With RS_ENV=production it must be a random value of "
                f"at least {MIN_SECRET_CHARS} characters (generate one with: python -c 'import "
                "secrets; print(secrets.token_urlsafe(48))')"
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
