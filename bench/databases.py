"""A fresh, migrated PostgreSQL database for one benchmark run, and dropping it afterwards."""

from __future__ import annotations

import os
import uuid


def create_database(server: str, prefix: str) -> str:
    """Create `<prefix>_<pid>_<random>` on the server, migrate it to head; returns its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from app.core import migrations

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    migrations.upgrade(url)
    return url


def drop_database(server: str, url: str) -> None:
    """Drop the database at `url` (connections closed first: ours, then any left, by force)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from app.core.db import get_engine

    get_engine.cache_clear()
    name = make_url(url).database
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
