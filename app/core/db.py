"""Database engine, sessions and the column types shared by every domain's tables."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from fastapi import Request
from sqlalchemy import JSON, BigInteger, Integer, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

# Stable constraint names so Alembic migrations can refer to them on every database.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")
# 64-bit ids on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
BigIntType = BigInteger().with_variant(Integer(), "sqlite")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """One engine per database URL for the life of the process."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


STATEMENT_TIMEOUT_KEY = "statement_timeout_ms"


@event.listens_for(Session, "after_begin")
def _bound_statements(session: Session, _transaction: Any, connection: Any) -> None:
    """Apply a session's statement budget to each transaction it opens (PostgreSQL only).

    `SET LOCAL` ends with the transaction, so a pooled connection never carries a web request's
    budget into a worker's long statement.
    """
    timeout_ms = session.info.get(STATEMENT_TIMEOUT_KEY)
    if timeout_ms and connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_ms)}")


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: one session per request, closed afterwards.

    Every statement of a web request runs within `RS_WEB_STATEMENT_TIMEOUT_MS`: a query that
    would run past it is cancelled by PostgreSQL and the request answers 503, instead of a
    search the client abandoned running on for minutes.
    """
    with Session(
        request.app.state.engine,
        expire_on_commit=False,
        info={STATEMENT_TIMEOUT_KEY: request.app.state.settings.web_statement_timeout_ms},
    ) as session:
        yield session
