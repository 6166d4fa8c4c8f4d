"""Run Alembic migrations from code (CLI, app start-up and tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[2]

# Schema objects the models deliberately do not declare, which `alembic check` must leave alone:
# rollout.search_vector, a PostgreSQL generated column the ORM never loads, and its GIN index
# (migration 0016_rollout_search_vector; app/rollouts/models.py SEARCH_VECTOR_*).
UNDECLARED_OBJECTS = frozenset({"search_vector", "ix_rollout_search_vector"})


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's `include_object` hook: compare everything but UNDECLARED_OBJECTS."""
    return not (reflected and compare_to is None and name in UNDECLARED_OBJECTS)


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    if database_url:
        cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
