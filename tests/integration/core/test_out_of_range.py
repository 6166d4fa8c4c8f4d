"""Numbers beyond a column's range and text a database cannot store answer 4xx, never 500
(issue 11, item 7): bounded id types in paths, query strings, forms and JSON; one guard for NUL
characters and lone surrogates; a safety net for whatever still reaches the database."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError, StatementError
from sqlmodel import Session

from app.auth import service as auth_service
from app.web.errors import install_error_handlers
from tests.support.factories import make_project, make_user
from tests.support.web import csrf_for, login

HUGE = [2**31, 2**63, 2**64, 10**30]


@pytest.fixture
def api(app: FastAPI, session: Session):
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Ranges")
    token = auth_service.create_api_token(session, owner, "t").token
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    return client, project


def _refused(response, *statuses: int) -> None:
    assert response.status_code in (statuses or (404, 422)), (
        response.request.url,
        response.status_code,
        response.text[:300],
    )
    assert response.json()["detail"]


def test_out_of_range_ids_in_paths_and_query_strings(api) -> None:
    client, project = api
    pid = project.id
    for n in HUGE:
        _refused(client.get(f"/api/v1/projects/{n}"))
        _refused(client.get(f"/api/v1/projects/{pid}/rollouts/{n}"))
        _refused(client.get(f"/api/v1/projects/{pid}/rubrics/{n}/versions/{n}"))
        _refused(client.get(f"/api/v1/projects/{pid}/judge-runs/{n}/verdicts?after_id={n}"))
        _refused(client.get(f"/api/v1/projects/{pid}/audit?before={n * 2**64}"))
        _refused(client.get(f"/api/v1/projects/{pid}/rollouts?step_min={n}"))
        _refused(client.get(f"/api/v1/projects/{pid}/agreement/compare?old={n}&new=1"))
    assert client.get(f"/api/v1/projects/{pid}/rollouts/{2**31}").status_code == 404  # BIGINT id


def test_out_of_range_integers_in_json_bodies(api) -> None:
    client, project = api
    pid = project.id
    response = client.post(f"/api/v1/projects/{pid}/gold", json={"rollout_ids": [2**63]})
    _refused(response, 422)
    assert response.json()["problems"][0]["field"].startswith("rollout_ids")
    put = client.put(f"/api/v1/projects/{pid}", json={"name": "Ranges", "revision": 2**40})
    _refused(put, 422)
    export = client.post(
        f"/api/v1/projects/{pid}/exports",
        json={"rubric_version_id": 2**31, "judge_config_id": 1},
    )
    _refused(export, 422)


def test_out_of_range_integers_in_forms(client: TestClient, session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Forms")
    login(client, owner.email)
    token = csrf_for(client, f"/projects/{project.id}/settings")
    response = client.post(
        f"/projects/{project.id}/settings",
        data={"csrf_token": token, "name": "Forms", "revision": str(2**40)},
    )
    assert response.status_code == 422
    assert 'data-testid="error-message"' in response.text
    assert client.get(f"/projects/{2**40}").status_code == 422


def test_nul_characters_and_lone_surrogates_answer_422_naming_the_field(api) -> None:
    client, project = api
    pid = project.id
    named = client.post("/api/v1/projects", json={"name": "a\u0000b"})
    _refused(named, 422)
    assert named.json()["problems"] == [
        {"field": "name", "message": "contains a NUL character (\\u0000), which cannot be stored"}
    ]
    nested = client.post(
        "/api/v1/projects",
        content=b'{"name": "ok", "output_schema": {"x": ["\\ud800"]}}',
        headers={"Content-Type": "application/json"},
    )
    _refused(nested, 422)
    assert nested.json()["problems"][0]["field"] == "output_schema.x.0"
    _refused(client.get(f"/api/v1/projects/{pid}/rollouts?q=a%00b"), 422)
    _refused(client.get(f"/api/v1/projects/{pid}/audit?action=%00"), 422)
    # An escaped backslash before u0000 is ordinary text, not a NUL.
    plain = client.post(
        "/api/v1/projects",
        content=b'{"name": "a\\\\u0000b"}',
        headers={"Content-Type": "application/json"},
    )
    assert plain.status_code == 201 and plain.json()["name"] == "a\\u0000b"


def test_nul_characters_in_forms(client: TestClient, session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    login(client, owner.email)
    token = csrf_for(client)
    response = client.post("/projects", data={"csrf_token": token, "name": "x\x00y"})
    assert response.status_code == 422
    assert "NUL character" in response.text


def test_the_database_refusing_a_value_is_a_422_not_a_500(settings) -> None:
    """The safety net, for any integer or text that still reaches the database unchecked."""
    app = FastAPI()
    app.state.settings = settings
    install_error_handlers(app)

    class OutOfRange(Exception):
        sqlstate = "22003"

    @app.get("/api/sqlite")
    def sqlite_overflow() -> None:
        raise StatementError("x", "SELECT ?", (2**70,), OverflowError("too large"))

    @app.get("/api/postgres")
    def pg_out_of_range() -> None:
        raise DataError("SELECT %s", (2**40,), OutOfRange("integer out of range"))

    class TooLong(Exception):
        sqlstate = "22001"

    @app.get("/api/too-long")
    def pg_too_long() -> None:
        raise DataError("INSERT %s", ("x" * 300,), TooLong("value too long for type"))

    @app.get("/api/other")
    def other() -> None:
        raise DataError("SELECT 1", (), Exception("something else"))

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/api/sqlite").status_code == 422
        assert client.get("/api/postgres").status_code == 422
        assert client.get("/api/too-long").status_code == 422
        assert client.get("/api/other").status_code == 500


def test_numbers_parsed_by_hand_from_forms_and_queries_are_bounded(
    client: TestClient, session: Session
) -> None:
    """Forms read field by field (queues, gold, judge runs, exports, rollout filters, reward
    preview) bound their numbers too."""
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Hand-parsed")
    pid = project.id
    login(client, owner.email)
    token = csrf_for(client)
    big = str(2**40)
    posts = [
        (f"/projects/{pid}/queues", {"name": "q", "rubric_version_id": big, "assignee": "1"}),
        (f"/projects/{pid}/queues", {"name": "q", "rubric_version_id": "1", "step_min": big}),
        (f"/projects/{pid}/gold", {"rollout_id": str(2**64), "split": "development"}),
        (f"/projects/{pid}/judges/runs", {"rubric_version_id": big, "judge_config_ids": "1"}),
        (f"/projects/{pid}/judges/runs", {"rubric_version_id": "1", "judge_config_ids": big}),
        (
            f"/projects/{pid}/exports",
            {"rubric_version_id": "1", "judge_config_id": "1", "run_id": big},
        ),
    ]
    for url, data in posts:
        response = client.post(url, data={"csrf_token": token, **data})
        assert 400 <= response.status_code < 500, (url, data, response.status_code)
    for url in (
        f"/projects/{pid}/rollouts?step_min={big}",
        f"/projects/{pid}/judges/runs/estimate?rubric_version_id=1&judge_config_ids=1&steps={big}",
        f"/projects/{pid}/rewards/preview?run_id=1&step={big}",
    ):
        response = client.get(url)
        assert 400 <= response.status_code < 500, (url, response.status_code)
