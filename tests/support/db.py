"""Test databases: a fresh, Alembic-migrated database per test session, emptied before each test.

The backend comes from RS_TEST_DB: "sqlite" (default, a file in a temp folder) or "postgres"
(a new database created on the server named by RS_TEST_POSTGRES_URL, dropped afterwards).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app.core import migrations

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def backend() -> str:
    return os.environ.get("RS_TEST_DB", "sqlite")


@contextmanager
def fresh_database(tmp_dir: Path) -> Iterator[str]:
    """Yield the URL of a new, migrated database; drop it afterwards."""
    if backend() == "postgres":
        server_url = make_url(os.environ.get("RS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
        name = f"rs_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = server_url.set(database=name).render_as_string(hide_password=False)
        try:
            migrations.upgrade(url)
            yield url
        finally:
            from app.core.db import get_engine

            get_engine.cache_clear()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        url = f"sqlite:///{(tmp_dir / 'test.db').as_posix()}"
        migrations.upgrade(url)
        yield url


def empty_all_tables(engine: Engine) -> None:
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            quoted = ", ".join(f'"{t}"' for t in tables)
            conn.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))
            has_seq = conn.execute(
                text("SELECT name FROM sqlite_master WHERE name='sqlite_sequence'")
            ).first()
            if has_seq:
                conn.execute(text("DELETE FROM sqlite_sequence"))
