"""The JSON routes added so that every browser action has one: members, accounts, import
cancel, rubric archive, queue close, drift settings, the formats, the audit log's cursor, and
where the document is (settings API and form, gate warnings)."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.auth import service as auth_service
from app.rubrics import publishing as rubric_publishing
from app.rubrics import service as rubric_service
from tests.support.factories import insert_rollouts, make_judge_config, make_project, make_user
from tests.support.web import csrf_for, login


def _bearer(session: Session, user) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth_service.create_api_token(session, user, 't').token}"}


def test_members_accounts_and_the_audit_log_by_api(client: TestClient, session: Session) -> None:
    site_admin = make_user(session, "root@example.com", is_admin=True)
    admin = make_user(session, "admin@example.com")
    bob = make_user(session, "bob@example.com")
    project = make_project(session, admin, "Team", members=[(bob, "reviewer")])
    headers = _bearer(session, admin)
    base = f"/api/v1/projects/{project.id}"
    members = client.get(f"{base}/members", headers=headers).json()
    bob_id = next(m["id"] for m in members if m["email"] == bob.email)
    changed = client.put(f"{base}/members/{bob_id}", json={"role": "engineer"}, headers=headers)
    assert changed.status_code == 200 and changed.json()["role"] == "engineer"
    bad = client.put(f"{base}/members/{bob_id}", json={"role": "boss"}, headers=headers)
    assert bad.status_code == 422 and "not a role" in bad.json()["detail"]
    admin_id = next(m["id"] for m in members if m["email"] == admin.email)
    last = client.delete(f"{base}/members/{admin_id}", headers=headers)
    assert last.status_code == 422 and "at least one admin" in last.json()["detail"]
    assert client.delete(f"{base}/members/{bob_id}", headers=headers).status_code == 204
    assert (
        client.put(f"{base}/members/{bob_id}", json={"role": "expert"}, headers=headers).status_code
        == 404
    )  # noqa: E501

    # The audit log pages with the same opaque cursor as every list.
    page = client.get(f"{base}/audit", params={"limit": 2}, headers=headers).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(
        f"{base}/audit", params={"limit": 50, "cursor": page["next_cursor"]}, headers=headers
    ).json()
    assert rest["next_cursor"] is None
    assert {e["id"] for e in page["items"]}.isdisjoint(e["id"] for e in rest["items"])

    # Accounts: site administrators only.
    body = {"email": "new@example.com", "password": "a-long-enough-Passw0rd!"}
    assert client.post("/api/v1/users", json=body, headers=headers).status_code == 403
    root = _bearer(session, site_admin)
    created = client.post("/api/v1/users", json=body, headers=root)
    assert created.status_code == 201, created.text
    off = client.put(
        f"/api/v1/users/{created.json()['id']}/active", json={"active": False}, headers=root
    )
    assert off.status_code == 200
    session.expire_all()
    assert auth_service.get_user_by_email(session, "new@example.com").is_active is False


def test_import_cancel_rubric_archive_queue_close_and_drift_settings(
    client: TestClient, session: Session
) -> None:
    admin = make_user(session, "admin@example.com")
    project = make_project(session, admin, "Work")
    headers = _bearer(session, admin)
    base = f"/api/v1/projects/{project.id}"

    upload = client.post(
        f"{base}/imports",
        files={"file": ("rows.csv", io.BytesIO(b"input,response\nq,a\n"), "text/csv")},
        headers=headers,
    )
    assert upload.status_code in (201, 202), upload.text
    job = upload.json()
    cancelled = client.post(f"{base}/imports/{job['id']}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"{base}/imports/{job['id']}/cancel", headers=headers)
    assert again.status_code == 409

    rubric = rubric_service.create_rubric(
        session, project, actor=admin, name="Generic", template="generic_pass_fail"
    )
    version = rubric_publishing.publish_version(session, rubric, actor=admin, change_note="v1")
    archived = client.post(f"{base}/rubrics/{rubric.id}/archive", json={}, headers=headers)
    assert archived.status_code == 200
    listed = client.get(f"{base}/rubrics", headers=headers).json()
    assert listed == [] or all(r["id"] != rubric.id or r["archived"] for r in listed)
    restored = client.post(
        f"{base}/rubrics/{rubric.id}/archive", json={"archived": False}, headers=headers
    )
    assert restored.status_code == 200

    insert_rollouts(session, project, 2)
    queue = client.post(
        f"{base}/queues",
        json={"name": "Q", "rubric_version_id": version.id, "assignee_ids": [admin.id]},
        headers=headers,
    )
    assert queue.status_code == 201, queue.text
    closed = client.post(f"{base}/queues/{queue.json()['id']}/close", json={}, headers=headers)
    assert closed.status_code == 200 and closed.json()["closed"] is True

    settings = client.get(f"{base}/drift-thresholds", headers=headers).json()
    assert settings["values"]["alpha"] == 0.001
    saved = client.put(f"{base}/drift-thresholds", json={"alpha": 0.01}, headers=headers)
    assert saved.status_code == 200 and saved.json()["values"]["alpha"] == 0.01
    unknown = client.put(f"{base}/drift-thresholds", json={"alfa": 0.01}, headers=headers)
    assert unknown.status_code == 422 and "alfa" in unknown.text


def test_formats_are_served_to_signed_in_clients(client: TestClient, session: Session) -> None:
    assert client.get("/api/v1/formats").status_code == 401
    headers = _bearer(session, make_user(session, "a@example.com"))
    listed = client.get("/api/v1/formats", headers=headers).json()
    assert {f["name"] for f in listed} == {
        "rollouts", "rubric", "labels", "verdicts", "reward-config", "export-bundle",
    }  # fmt: skip
    schema = client.get("/api/v1/formats/labels", headers=headers)
    assert schema.headers["content-type"].startswith("application/schema+json")
    assert schema.json()["required"] == ["annotator"]
    assert client.get("/api/v1/formats/nope", headers=headers).status_code == 422


def test_where_the_document_is_by_api_and_form_and_in_the_gate(
    client: TestClient, session: Session
) -> None:
    admin = make_user(session, "admin@example.com")
    project = make_project(session, admin, "Docs")
    headers = _bearer(session, admin)
    base = f"/api/v1/projects/{project.id}"
    current = client.get(base, headers=headers).json()
    assert current["document_location"]["source"] == "field"
    body = {
        "name": current["name"],
        "revision": current["revision"],
        "document_location": {"source": "metadata", "metadata_key": ""},
    }
    refused = client.put(base, json=body, headers=headers)
    assert refused.status_code == 422 and "metadata_key" in refused.text

    # The settings form keeps what was typed and says what is wrong beside the field.
    login(client, admin.email)
    form = {
        "csrf_token": csrf_for(client, f"/projects/{project.id}/settings"),
        "name": "Docs renamed",
        "revision": str(current["revision"]),
        "document_source": "user_message",
        "document_start_marker": "",
        "document_end_marker": "</contract>",
    }
    page = client.post(f"/projects/{project.id}/settings", data=form)
    assert page.status_code == 422
    assert 'value="Docs renamed"' in page.text and 'value="&lt;/contract&gt;"' in page.text
    assert "text that comes just before the document" in page.text
    form["document_start_marker"] = "<contract>"
    saved = client.post(f"/projects/{project.id}/settings", data=form, follow_redirects=False)
    assert saved.status_code in (302, 303)
    got = client.get(base, headers=headers).json()["document_location"]
    assert got == {
        "source": "user_message",
        "metadata_key": "",
        "start_marker": "<contract>",
        "end_marker": "</contract>",
    }

    # The gate warns when grounding applies to none of its gold test rollouts.
    rubric = rubric_service.create_rubric(
        session, project, actor=admin, name="Generic", template="generic_pass_fail"
    )
    version = rubric_publishing.publish_version(session, rubric, actor=admin, change_note="v1")
    [rollout_id] = insert_rollouts(session, project, 1)
    from app.labels.models import GoldItem

    session.add(GoldItem(project_id=project.id or 0, rollout_id=rollout_id, split="test"))
    session.commit()
    judge = make_judge_config(session, project)
    check = client.get(
        f"{base}/exports/gate-check",
        params={"rubric_version_id": version.id, "judge_config_id": judge.id},
        headers=headers,
    ).json()
    assert check["gate"]["warnings"] and check["gate"]["warnings"][0].startswith(
        "Grounding applies to 0 of 1 rollouts"
    )
