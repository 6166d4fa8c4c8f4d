"""Projects: creation, membership, roles, settings with conflict detection, and the audit log."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.audit.models import AuditEvent
from app.projects.models import Membership
from tests.support.factories import make_project, make_user
from tests.support.web import csrf_for, find_all, login


def test_creator_becomes_admin_and_sees_only_own_projects(
    client: TestClient, session: Session
) -> None:
    alice = make_user(session, "alice@example.com")
    bob = make_user(session, "bob@example.com")
    make_project(session, bob, "Bob's secret project")
    login(client, alice.email)
    token = csrf_for(client)
    response = client.post("/projects", data={"name": "Alice's", "csrf_token": token})
    assert response.status_code == 200
    listing = client.get("/").text
    names = [e["data-project-id"] for e in find_all(listing, "data-project-id")]
    assert len(names) == 1
    assert "Bob&#39;s secret project" not in listing and "Bob's secret project" not in listing
    membership = session.exec(select(Membership).where(Membership.user_id == alice.id)).one()
    assert membership.role == "admin"


def test_project_settings_conflict_is_detected(client: TestClient, session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Conflicted")
    login(client, owner.email)
    token = csrf_for(client)
    first = client.post(
        f"/projects/{project.id}/settings",
        data={"name": "First edit", "revision": "1", "csrf_token": token},
    )
    assert first.status_code == 200
    second = client.post(
        f"/projects/{project.id}/settings",
        data={"name": "Second edit", "revision": "1", "csrf_token": token},
    )
    assert second.status_code == 409
    assert "Someone else saved" in second.text
    session.refresh(project)
    assert project.name == "First edit"


def test_invalid_output_schema_keeps_the_form_and_says_why_beside_the_field(
    client: TestClient, session: Session
) -> None:
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Schemas")
    login(client, owner.email)
    token = csrf_for(client)
    response = client.post(
        f"/projects/{project.id}/settings",
        data={
            "name": "Schemas renamed",
            "description": "Typed & kept",
            "revision": "1",
            "output_schema": '{"type": "object",\n "properties": {not json',
            "csrf_token": token,
        },
    )
    assert response.status_code == 422
    html = response.text
    # The same form, with what was typed.
    assert find_all(html, "data-testid", "project-settings")
    assert find_all(html, "value", "Schemas renamed")
    assert "Typed &amp; kept</textarea>" in html
    assert "{not json</textarea>" in html
    # The message beside the field, said once, in plain words (no raw field id).
    beside = find_all(html, "data-testid", "field-error")
    assert [e["data-field"] for e in beside] == ["output_schema"]
    assert html.count("is not valid JSON") == 1
    assert "check line 2, column " in html
    assert "output_schema:" not in html and "<code>output_schema" not in html
    assert find_all(html, "aria-invalid", "true")[0]["aria-describedby"] == "output_schema-error"
    session.refresh(project)
    assert project.revision == 1 and project.name == "Schemas"

    not_object = client.post(
        f"/projects/{project.id}/settings",
        data={"name": "Schemas", "revision": "1", "output_schema": "[1]", "csrf_token": token},
    )
    assert not_object.status_code == 422
    assert "must be a JSON object" in not_object.text
    assert "[1]</textarea>" in not_object.text


def test_members_and_roles_are_managed_and_audited(client: TestClient, session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    expert = make_user(session, "expert@example.com")
    project = make_project(session, owner, "Team")
    login(client, owner.email)
    token = csrf_for(client)
    added = client.post(
        f"/projects/{project.id}/members",
        data={"email": "expert@example.com", "role": "expert", "csrf_token": token},
    )
    assert added.status_code == 200
    bad_role = client.post(
        f"/projects/{project.id}/members",
        data={"email": "expert@example.com", "role": "overlord", "csrf_token": token},
    )
    assert bad_role.status_code == 422 and "is not a role" in bad_role.text
    membership = session.exec(select(Membership).where(Membership.user_id == expert.id)).one()
    client.post(
        f"/projects/{project.id}/members/{membership.id}/role",
        data={"role": "reviewer", "csrf_token": token},
    )
    session.refresh(membership)
    assert membership.role == "reviewer"
    own = session.exec(select(Membership).where(Membership.user_id == owner.id)).one()
    last_admin = client.post(
        f"/projects/{project.id}/members/{own.id}/role",
        data={"role": "expert", "csrf_token": token},
    )
    assert last_admin.status_code == 422 and "at least one admin" in last_admin.text

    audit = client.get(f"/projects/{project.id}/audit?action=member.role")
    rows = find_all(audit.text, "data-action")
    assert [r["data-action"] for r in rows] == ["member.role"]
    events = session.exec(select(AuditEvent).where(AuditEvent.project_id == project.id)).all()
    assert {e.action for e in events} >= {"project.create", "member.add", "member.role"}


def test_expert_cannot_change_settings_but_can_read(client: TestClient, session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    expert = make_user(session, "expert@example.com")
    project = make_project(session, owner, "Readable", members=[(expert, "expert")])
    login(client, expert.email)
    assert client.get(f"/projects/{project.id}/settings").status_code == 200
    token = csrf_for(client)
    response = client.post(
        f"/projects/{project.id}/settings",
        data={"name": "Hijack", "revision": "1", "csrf_token": token},
    )
    assert response.status_code == 403
    assert "may not do this" in response.text


def test_api_project_update_conflict_and_validation(client: TestClient, session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "API")
    login(client, owner.email)
    token = csrf_for(client)
    headers = {"X-CSRF-Token": token}
    ok = client.put(
        f"/api/v1/projects/{project.id}", json={"name": "API 2", "revision": 1}, headers=headers
    )
    assert ok.status_code == 200 and ok.json()["revision"] == 2
    stale = client.put(
        f"/api/v1/projects/{project.id}", json={"name": "API 3", "revision": 1}, headers=headers
    )
    assert stale.status_code == 409
    extra = client.put(
        f"/api/v1/projects/{project.id}",
        json={"name": "x", "revision": 2, "surprise": 1},
        headers=headers,
    )
    assert extra.status_code == 422
    assert extra.json()["problems"][0]["field"] == "surprise"


def test_overview_shows_the_workflow_with_done_steps(client: TestClient, session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Flow")
    login(client, owner.email)
    page = client.get(f"/projects/{project.id}")
    steps = find_all(page.text, "data-step")
    assert [s["data-step"] for s in steps] == [
        "rollouts", "rubric", "judge", "label", "gold", "agreement", "export",
    ]  # fmt: skip
    assert all("done" not in (s.get("class") or "") for s in steps)


def test_admins_choose_whether_one_approver_is_enough(client: TestClient, session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    expert = make_user(session, "expert@example.com")
    project = make_project(session, owner, "Sign-off", members=[(expert, "expert")])
    url = f"/projects/{project.id}/settings/approval-policy"
    api = f"/api/v1/projects/{project.id}/approval-policy"
    login(client, expert.email)
    token = csrf_for(client)
    assert client.get(api).json() == {"single_approver": False}
    refused = client.post(url, data={"single_approver": "1", "csrf_token": token})
    assert refused.status_code == 403
    login(client, owner.email)
    token = csrf_for(client)
    on = client.post(
        url, data={"single_approver": "1", "csrf_token": token}, follow_redirects=False
    )
    assert on.status_code == 303
    assert client.get(api).json() == {"single_approver": True}
    off = client.put(api, json={"single_approver": False}, headers={"X-CSRF-Token": token})
    assert off.json() == {"single_approver": False}
    actions = session.exec(
        select(AuditEvent.action).where(AuditEvent.action == "project.approval_policy")
    ).all()
    assert len(actions) == 2
