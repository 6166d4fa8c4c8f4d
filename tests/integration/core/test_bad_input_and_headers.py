"""Malformed input gets a readable 4xx, never a 500; every response carries security headers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from tests.support.factories import make_project, make_user
from tests.support.web import csrf_for, login


@pytest.fixture
def signed_in(client: TestClient, session: Session) -> tuple[TestClient, int, str]:
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Inputs")
    login(client, owner.email)
    return client, project.id, csrf_for(client)


def test_malformed_json_bodies(signed_in) -> None:
    client, project_id, token = signed_in
    headers = {"X-CSRF-Token": token, "Content-Type": "application/json"}
    cases = [
        ("/api/v1/projects", "{not json"),
        ("/api/v1/projects", "[]"),
        ("/api/v1/projects", '{"name": 5}'),
        ("/api/v1/projects", '{"name": ""}'),
        ("/api/v1/projects", "\xff\xfe"),
        (f"/api/v1/projects/{project_id}/members", '{"email": "x@example.com"}'),
        ("/api/v1/tokens", '{"name": "' + "x" * 500 + '"}'),
    ]
    for path, body in cases:
        response = client.post(
            path, content=body.encode("utf-8", "surrogateescape"), headers=headers
        )
        assert 400 <= response.status_code < 500, f"{path} {body[:20]!r}: {response.status_code}"
        assert response.json()["detail"]


def test_malformed_form_posts(signed_in) -> None:
    client, project_id, token = signed_in
    cases = [
        ("/projects", {"csrf_token": token}),  # name missing
        ("/projects", {"csrf_token": token, "name": "x" * 300}),
        (f"/projects/{project_id}/settings", {"csrf_token": token, "name": "n", "revision": "abc"}),
        (f"/projects/{project_id}/members", {"csrf_token": token, "email": "x@y.z", "role": ""}),
        ("/account/tokens", {"csrf_token": token, "name": "   "}),
    ]
    for path, data in cases:
        response = client.post(path, data=data)
        assert 400 <= response.status_code < 500, f"{path} {data}: {response.status_code}"
        assert 'data-testid="error-message"' in response.text


def test_htmx_errors_render_in_the_message_area(signed_in) -> None:
    client, _, token = signed_in
    response = client.post("/projects", data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#messages"
    assert "<html" not in response.text


def test_unknown_pages_and_ids(signed_in) -> None:
    client, _, _ = signed_in
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/projects/999999").status_code == 404
    assert client.get("/projects/not-a-number").status_code == 422
    assert client.get("/api/v1/projects/999999").json()["detail"].startswith("No such project")


def test_security_headers_on_pages_api_and_errors(client: TestClient) -> None:
    for path in ("/login", "/healthz", "/api/v1/me", "/nope", "/static/css/app.css"):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"


def test_pages_have_no_inline_script_or_style(signed_in) -> None:
    client, project_id, _ = signed_in
    for path in ("/", f"/projects/{project_id}", f"/projects/{project_id}/settings", "/account"):
        html = client.get(path).text
        assert "<script>" not in html and "<script " not in html.replace('<script src="', "")
        assert " style=" not in html and "<style" not in html


def test_partial_routes_answer_fragment_for_htmx(signed_in) -> None:
    client, _, _ = signed_in
    full = client.get("/")
    fragment = client.get("/", headers={"HX-Request": "true"})
    assert "<html" in full.text and "<html" not in fragment.text
    assert (
        full.headers["vary"] == "HX-Request, HX-History-Restore-Request" == fragment.headers["vary"]
    )


def test_history_restore_gets_the_full_page(signed_in) -> None:
    """Back/Forward without htmx's cached copy sends HX-Request too; it replaces the whole page."""
    client, project_id, _ = signed_in
    restore = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    for path in (
        "/",
        f"/projects/{project_id}/rollouts",
        f"/projects/{project_id}/rollouts/groups",
    ):
        fragment = client.get(path, headers={"HX-Request": "true"})
        page = client.get(path, headers=restore)
        assert "<html" in page.text and "<html" not in fragment.text, path
        assert "HX-History-Restore-Request" in page.headers["vary"]


def test_oversized_upload_is_refused_before_reading(client: TestClient, settings) -> None:
    too_big = settings.max_upload_bytes + 2 * 1024 * 1024
    response = client.post("/projects", content=b"x", headers={"Content-Length": str(too_big)})
    assert response.status_code == 413
    assert "larger than the limit" in response.json()["detail"]
