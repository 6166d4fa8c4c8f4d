"""Bounds on heavy requests: a statement past the web budget answers 503 (page, fragment and
JSON), a statement is cancelled when its client goes away, at most RS_HEAVY_CONCURRENCY heavy
pages run at once (503 with Retry-After past the wait), and freed memory is trimmed after them."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.auth.dependencies import SessionDep
from app.main import all_routers
from app.web import bounds
from tests.support.db import backend
from tests.support.web import find_all

postgres_only = pytest.mark.skipif(backend() != "postgres", reason="statement_timeout")


def _slow_route(app: FastAPI, path: str = "/test/slow", seconds: float = 2.0) -> None:
    def slow(session: SessionDep) -> dict[str, str]:
        session.exec(text(f"SELECT pg_sleep({seconds})"))  # type: ignore[call-overload]
        return {"done": "yes"}

    app.add_api_route(path, slow, methods=["GET"])


def test_every_heavy_route_is_a_real_route() -> None:
    paths = {route.path for router in all_routers() for route in router.routes}  # type: ignore[attr-defined]
    assert [p for p in bounds.HEAVY_ROUTES if p not in paths] == []


@pytest.mark.parametrize(
    ("path", "heavy"),
    [
        ("/projects/3/rollouts", True),
        ("/api/v1/projects/3/rollouts", True),
        ("/projects/3/agreement/runs/9/slices", True),
        ("/projects/3/training-runs/12", True),
        ("/projects/3/training-runs/new", False),
        ("/projects/3/rollouts/17", False),
        ("/healthz", False),
    ],
)
def test_heavy_paths(path: str, heavy: bool) -> None:
    assert bounds.is_heavy(path) is heavy


@postgres_only
def test_a_statement_past_the_budget_answers_503_in_plain_words(app: FastAPI) -> None:
    app.state.settings.web_statement_timeout_ms = 50
    _slow_route(app)
    with TestClient(app) as client:
        api = client.get("/test/slow", headers={"accept": "application/json"})
        assert api.status_code == 503
        assert api.json()["detail"].startswith("This page took too long; narrow the filter")
        assert api.headers["retry-after"] == "30"
        page = client.get("/test/slow", headers={"accept": "text/html"})
        assert page.status_code == 503
        assert find_all(page.text, "data-status", "503")
        assert "This page took too long; narrow the filter" in page.text
        fragment = client.get("/test/slow", headers={"accept": "text/html", "hx-request": "true"})
        assert fragment.status_code == 503
        assert fragment.headers["hx-retarget"] == "#messages"
        # The pooled connection is usable again by the next request.
        app.state.settings.web_statement_timeout_ms = 15_000
        assert client.get("/healthz").status_code == 200


async def _drive(app: FastAPI, path: str, receive_disconnect: asyncio.Event) -> int:
    """One GET through the whole ASGI stack whose client goes away when the event is set."""
    sent: list[dict[str, Any]] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await receive_disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


@postgres_only
def test_the_statement_is_cancelled_when_the_client_goes_away(app: FastAPI, engine: Engine) -> None:
    app.state.settings.web_statement_timeout_ms = 0  # no budget: only the cancel can stop it
    _slow_route(app, seconds=20)

    def sleeping() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE query LIKE 'SELECT pg_sleep(20%' AND state = 'active'"
                    )
                ).scalar_one()
            )

    async def scenario() -> int:
        gone = asyncio.Event()
        request = asyncio.create_task(_drive(app, "/test/slow", gone))
        for _ in range(400):  # until the statement runs in PostgreSQL
            if await asyncio.to_thread(sleeping):
                break
            await asyncio.sleep(0.05)
        gone.set()
        return await request

    # Without the cancel the statement would sleep its 20 s and answer 200.
    assert asyncio.run(scenario()) == 503
    assert sleeping() == 0


def test_heavy_requests_past_the_cap_wait_then_answer_503_with_retry_after(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.state.settings.heavy_concurrency = 1
    app.state.settings.heavy_wait_s = 0.2
    monkeypatch.setattr(bounds, "HEAVY_PATH", __import__("re").compile("^/test/heavy$"))
    release = asyncio.Event()
    entered = asyncio.Event()

    async def heavy() -> dict[str, str]:
        entered.set()
        await release.wait()
        return {"done": "yes"}

    app.add_api_route("/test/heavy", heavy, methods=["GET"])
    app.add_api_route("/test/light", lambda: {"ok": "yes"}, methods=["GET"])

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            first = asyncio.create_task(c.get("/test/heavy"))
            await entered.wait()
            refused = await c.get("/test/heavy", headers={"accept": "application/json"})
            light = await c.get("/test/light")  # other pages are not held up
            release.set()
            return await first, refused, light, await c.get("/test/heavy")

    first, refused, light, after = asyncio.run(scenario())
    assert first.status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert "busy" in refused.json()["detail"]
    assert "content-security-policy" in refused.headers
    assert light.status_code == 200
    assert after.status_code == 200  # the slot was given back


def test_memory_is_trimmed_after_heavy_pages(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []
    done = threading.Event()

    def trim() -> bool:
        trims.append(1)
        done.set()
        return True

    monkeypatch.setattr(bounds, "trim_memory", trim)
    monkeypatch.setattr(bounds, "HEAVY_PATH", __import__("re").compile("^/test/heavy$"))
    app.add_api_route("/test/heavy", lambda: {"x": "y" * 1000}, methods=["GET"])
    app.add_api_route("/test/light", lambda: {"ok": "yes"}, methods=["GET"])
    with TestClient(app) as client:
        assert client.get("/test/light").status_code == 200
        assert not trims
        assert client.get("/test/heavy").status_code == 200
        assert done.wait(10)
    assert trims == [1]


def test_trim_memory_runs_where_glibc_is() -> None:
    assert bounds.trim_memory() in (True, False)
