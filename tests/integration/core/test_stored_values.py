"""Values stored from user input never break a page afterwards (issue 11, item 5): JSON is
checked for depth and size before it is stored, normalised on write, and readers tolerate every
shape the schema allows."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.auth import service as auth_service
from app.projects.models import Project
from app.rubrics.models import Rubric
from tests.support.factories import make_project, make_user
from tests.support.web import csrf_for, login


def _nested(levels: int) -> dict:
    value: dict = {"type": "object"}
    for _ in range(levels):
        value = {"type": "object", "properties": {"x": value}}
    return value


def _api(app: FastAPI, session: Session, email: str = "owner@example.com"):
    owner = make_user(session, email)
    token = auth_service.create_api_token(session, owner, "t").token
    return owner, TestClient(app, headers={"Authorization": f"Bearer {token}"})


def test_a_deeply_nested_output_schema_is_refused_and_nothing_is_stored(
    app: FastAPI, session: Session
) -> None:
    owner, api = _api(app, session)
    deep = _nested(450)  # 900 levels of JSON
    created = api.post("/api/v1/projects", json={"name": "Deep", "output_schema": deep})
    assert created.status_code == 422, created.text
    assert "nested deeper" in created.json()["detail"]
    project = make_project(session, owner, "Kept")
    updated = api.put(
        f"/api/v1/projects/{project.id}",
        json={"name": "Kept", "revision": project.revision, "output_schema": deep},
    )
    assert updated.status_code == 422
    listed = api.get("/api/v1/projects")
    assert listed.status_code == 200
    assert [p["name"] for p in listed.json()] == ["Kept"]
    session.expire_all()
    assert session.get(Project, project.id).output_schema is None


def test_the_settings_form_refuses_a_deep_schema_with_a_message(
    client: TestClient, session: Session
) -> None:
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Form")
    login(client, owner.email)
    token = csrf_for(client, f"/projects/{project.id}/settings")
    import json

    response = client.post(
        f"/projects/{project.id}/settings",
        data={
            "csrf_token": token,
            "name": "Form",
            "revision": str(project.revision),
            "output_schema": json.dumps(_nested(40)),
        },
    )
    assert response.status_code == 422
    assert "nested deeper" in response.text
    assert client.get(f"/projects/{project.id}/settings").status_code == 200


def test_a_draft_example_without_its_optional_fields_keeps_the_editor_working(
    app: FastAPI, session: Session
) -> None:
    owner, api = _api(app, session)
    project = make_project(session, owner, "Examples")
    base = f"/api/v1/projects/{project.id}/rubrics"
    created = api.post(base, json={"name": "Generic", "template": "generic_pass_fail"}).json()
    draft = created["draft"] | {
        "examples": [{"response": "An answer.", "label": {"Correct": "pass"}, "critique": "ok"}]
    }
    saved = api.put(f"{base}/{created['id']}/draft", json={"revision": 1, "definition": draft})
    assert saved.status_code == 200, saved.text
    stored = session.get(Rubric, created["id"])
    assert stored is not None
    session.refresh(stored)
    example = stored.draft["examples"][0]
    assert example["rollout_id"] is None and example["response_b"] == ""
    login_client = TestClient(app)
    login(login_client, owner.email)
    page = login_client.get(f"/projects/{project.id}/rubrics/{created['id']}")
    assert page.status_code == 200, page.text[-2000:]
    assert api.get(f"{base}/{created['id']}").status_code == 200


def test_the_editor_reads_a_stored_draft_whatever_its_examples_lack(
    app: FastAPI, session: Session
) -> None:
    """Rows stored before normalisation (or by hand) still open: readers fill the defaults."""
    owner, api = _api(app, session)
    project = make_project(session, owner, "Old rows")
    base = f"/api/v1/projects/{project.id}/rubrics"
    created = api.post(base, json={"name": "Generic", "template": "generic_pass_fail"}).json()
    rubric = session.get(Rubric, created["id"])
    assert rubric is not None
    rubric.draft = created["draft"] | {
        "examples": [{"response": "x"}, {"label": ["not", "a", "mapping"], "critique": 5}, "junk"]
    }
    session.add(rubric)
    session.commit()
    client = TestClient(app)
    login(client, owner.email)
    page = client.get(f"/projects/{project.id}/rubrics/{created['id']}")
    assert page.status_code == 200
    assert page.text.count('data-testid="example"') == 2


DEEP_TEXT = "[" * 50_000 + "]" * 50_000  # too deep for the JSON parser itself


def test_json_text_too_deep_to_parse_is_a_422_everywhere_it_is_accepted(
    app: FastAPI, client: TestClient, session: Session
) -> None:
    owner, api = _api(app, session)
    project = make_project(session, owner, "Parsers")
    pid = project.id
    login(client, owner.email)
    token = csrf_for(client, f"/projects/{pid}/settings")
    settings_form = client.post(
        f"/projects/{pid}/settings",
        data={
            "csrf_token": token,
            "name": "Parsers",
            "revision": str(project.revision),
            "output_schema": DEEP_TEXT,
        },
    )
    assert settings_form.status_code == 422
    for fmt, content in (("json", DEEP_TEXT), ("yaml", DEEP_TEXT)):
        imported = api.post(
            f"/api/v1/projects/{pid}/rubrics/import",
            json={"content": content, "name": "Deep", "format": fmt},
        )
        assert imported.status_code == 422, (fmt, imported.status_code)
    upload = api.post(
        f"/api/v1/projects/{pid}/imports",
        files={"file": ("x.csv", b"q,a\nx,y\n", "text/csv")},
        data={"csv_mapping": DEEP_TEXT},
    )
    assert upload.status_code == 422
