"""Migrations: empty -> head -> base -> head works, and the models agree with the migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app.core.migrations import alembic_config, include_object
from tests.support.db import fresh_database


def test_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:  # already at head
        engine = create_engine(url)
        expected = set(SQLModel.metadata.tables)
        assert expected <= set(inspect(engine).get_table_names())

        command.downgrade(alembic_config(url), "base")
        engine.dispose()
        remaining = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert remaining == set()

        command.upgrade(alembic_config(url), "head")
        engine.dispose()
        assert expected <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": include_object})
            diff = compare_metadata(context, SQLModel.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        engine.dispose()
