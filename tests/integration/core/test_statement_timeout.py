"""Web requests run their SQL within a statement budget; workers' sessions are not bounded by it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from app.core.db import get_session
from tests.support.db import backend

pytestmark = pytest.mark.skipif(
    backend() != "postgres", reason="statement_timeout is a PostgreSQL setting"
)


def _web_session(app: FastAPI):
    return get_session(SimpleNamespace(app=app))  # type: ignore[arg-type]


def test_a_web_request_session_carries_the_budget_in_every_transaction(app: FastAPI) -> None:
    sessions = _web_session(app)
    session = next(sessions)
    assert session.exec(text("SHOW statement_timeout")).one()[0] == "15s"  # type: ignore[call-overload]
    session.commit()  # a new transaction gets the budget again
    assert session.exec(text("SHOW statement_timeout")).one()[0] == "15s"  # type: ignore[call-overload]
    sessions.close()


def test_a_statement_past_the_budget_is_cancelled(app: FastAPI) -> None:
    app.state.settings.web_statement_timeout_ms = 50
    sessions = _web_session(app)
    session = next(sessions)
    with pytest.raises(OperationalError, match="statement timeout"):
        session.exec(text("SELECT pg_sleep(5)"))  # type: ignore[call-overload]
    sessions.close()


def test_the_budget_does_not_leak_to_other_sessions_on_the_same_connection(
    app: FastAPI, engine: Engine
) -> None:
    sessions = _web_session(app)
    session = next(sessions)
    session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    session.commit()
    sessions.close()
    with Session(engine) as worker_session:
        assert worker_session.exec(text("SHOW statement_timeout")).one()[0] == "0"  # type: ignore[call-overload]
