"""Database engine, sessions and the column types shared by every domain's tables."""

from __future__ import annotations

import hashlib
import logging
import threading
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


def _sample_key(seed: int, subject_id: int) -> int:
    """`rs_sample_key(seed, id)`: a seeded pseudo-random key per id, for sampling in SQL on
    SQLite (app/judging/preparation.py; PostgreSQL uses its own hashint8extended)."""
    digest = hashlib.blake2b(f"{seed}:{subject_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.create_function("rs_sample_key", 2, _sample_key, deterministic=True)
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
CANCELLER_KEY = "statement_canceller"
# PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout or a cancel request.
QUERY_CANCELED = "57014"

log = logging.getLogger(__name__)


class StatementCanceller:
    """The database connections one web request is using, so that its running statement can be
    cancelled from another thread when the client goes away (app/web/bounds.py).

    PostgreSQL: psycopg's `cancel_safe()` sends a cancel request over a new connection (safe
    from any thread); the statement then fails with QueryCanceled, which answers 503.
    SQLite: `interrupt()`, also safe from another thread. A connection is tracked from the
    moment a transaction begins on it until the request's session closes; the lock keeps a
    cancel from reaching a connection already handed back to the pool.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: list[Any] = []
        self.cancelled = False

    def track(self, driver_connection: Any) -> None:
        with self._lock:
            if not any(c is driver_connection for c in self._connections):
                self._connections.append(driver_connection)

    def release(self) -> None:
        with self._lock:
            self._connections.clear()

    def cancel(self) -> int:
        """Cancel whatever statement the request's connections are running; how many were sent."""
        sent = 0
        with self._lock:
            self.cancelled = True
            for connection in self._connections:
                try:
                    if hasattr(connection, "cancel_safe"):
                        connection.cancel_safe(timeout=5.0)
                    elif hasattr(connection, "interrupt"):
                        connection.interrupt()
                    else:
                        continue
                    sent += 1
                except Exception:  # a cancel that cannot be sent changes nothing
                    log.warning("could not cancel a statement", exc_info=True)
        return sent


@event.listens_for(Session, "after_begin")
def _bound_statements(session: Session, _transaction: Any, connection: Any) -> None:
    """Apply a session's statement budget to each transaction it opens (PostgreSQL only).

    `SET LOCAL` ends with the transaction, so a pooled connection never carries a web request's
    budget into a worker's long statement.
    """
    timeout_ms = session.info.get(STATEMENT_TIMEOUT_KEY)
    if timeout_ms and connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
    canceller = session.info.get(CANCELLER_KEY)
    if canceller is not None:
        canceller.track(connection.connection.driver_connection)


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: one session per request, closed afterwards.

    Every statement of a web request runs within `RS_WEB_STATEMENT_TIMEOUT_MS`: a query that
    would run past it is cancelled by PostgreSQL and the request answers 503, instead of a
    search the client abandoned running on for minutes. When the client goes away first, the
    running statement is cancelled (the StatementCanceller that app/web/bounds.py puts in the
    request's state).
    """
    canceller = getattr(getattr(request, "state", None), CANCELLER_KEY, None)
    with Session(
        request.app.state.engine,
        expire_on_commit=False,
        info={
            STATEMENT_TIMEOUT_KEY: request.app.state.settings.web_statement_timeout_ms,
            CANCELLER_KEY: canceller,
        },
    ) as session:
        try:
            yield session
        finally:
            if canceller is not None:
                canceller.release()
