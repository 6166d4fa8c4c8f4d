"""Who may create an audit (reviewers, engineers, admins) and who labels it (reviewers, admins):
the API, the browser form with its CSRF check, the service (the CLI's path), and the default
assignees when nobody is chosen."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.auth import service as auth_service
from app.auth.policies import Permission, role_allows
from app.core.errors import PermissionDenied
from app.drift import audit_service
from app.drift.audit_service import AuditDesign
from app.labels.models import AnnotationQueue, QueueAssignee, QueueItem
from app.projects.models import Role
from tests.integration.drift.audit_world import CRITERIA, AuditWorld, make_world
from tests.support.web import csrf_for, data_testids, find_all, login


def _token(session: Session, user) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth_service.create_api_token(session, user, 't').token}"}


def _assignees(session: Session, queue_id: int) -> set[int]:
    rows = session.exec(select(QueueAssignee).where(QueueAssignee.queue_id == queue_id)).all()
    return {row.user_id for row in rows}


def _users(w: AuditWorld) -> dict[str, object]:
    return {
        "admin": w.owner,
        "reviewer": w.reviewer,
        "engineer": w.engineer,
        "expert": w.expert,
    }


def test_the_role_matrix_creating_audits_and_labelling_them() -> None:
    creates = {role for role in Role if role_allows(role, Permission.drift_audit_create)}
    labels = {role for role in Role if role_allows(role, Permission.drift_audit)}
    assert creates == {Role.admin, Role.reviewer, Role.engineer}
    assert labels == {Role.admin, Role.reviewer}


@pytest.mark.parametrize(
    ("role", "status"),
    [("admin", 201), ("reviewer", 201), ("engineer", 201), ("expert", 403)],
)
def test_api_create_audit_by_role(
    client: TestClient, session: Session, role: str, status: int
) -> None:
    w = make_world(session, samples=80)
    user = _users(w)[role]
    body = {"size": 6, "rubric_version_id": w.version.id, "seed": 4, "step_buckets": 2}
    response = client.post(
        f"/api/v1/projects/{w.project.id}/training-runs/{w.run.id}/audits",
        json=body,
        headers=_token(session, user),
    )
    assert response.status_code == status, response.text
    if status != 201:
        return
    queue_id = response.json()["queue_id"]
    # Nobody chosen: a creator who labels audits labels it; an engineer's audit goes to every
    # member who may label it.
    expected = (
        {w.owner.id, w.reviewer.id, w.reviewer2.id} if role == "engineer" else {user.id}  # type: ignore[attr-defined]
    )
    assert _assignees(session, queue_id) == expected


def test_engineer_cannot_be_an_assignee_nor_label_the_audit(
    client: TestClient, session: Session
) -> None:
    w = make_world(session, samples=80)
    pid, rid = w.project.id, w.run.id
    body = {"size": 4, "rubric_version_id": w.version.id, "seed": 2, "step_buckets": 2}
    refused = client.post(
        f"/api/v1/projects/{pid}/training-runs/{rid}/audits",
        json=body | {"assignee_ids": [w.engineer.id]},
        headers=_token(session, w.engineer),
    )
    assert refused.status_code == 422 and "cannot audit" in refused.text
    created = client.post(
        f"/api/v1/projects/{pid}/training-runs/{rid}/audits",
        json=body | {"assignee_ids": [w.reviewer.id]},
        headers=_token(session, w.engineer),
    )
    assert created.status_code == 201, created.text
    queue_id = created.json()["queue_id"]
    item = session.exec(select(QueueItem).where(QueueItem.queue_id == queue_id)).first()
    assert item is not None
    login(client, w.engineer.email)
    url = f"/projects/{pid}/queues/{queue_id}/items/{item.id}"
    data = {"csrf_token": csrf_for(client, f"/projects/{pid}/training-runs/{rid}")}
    data |= {"deserved": "yes"} | {f"value__{k}": "pass" for k in CRITERIA}
    labelled = client.post(url + "/submit", data=data, follow_redirects=False)
    assert labelled.status_code in (403, 404), labelled.status_code


@pytest.mark.parametrize(("role", "allowed"), [("engineer", True), ("expert", False)])
def test_the_browser_form_by_role(
    client: TestClient, session: Session, role: str, allowed: bool
) -> None:
    w = make_world(session, samples=80)
    pid, rid = w.project.id, w.run.id
    login(client, _users(w)[role].email)  # type: ignore[attr-defined]
    section = client.get(f"/projects/{pid}/training-runs/{rid}/audit-section")
    assert section.status_code == 200
    assert ("new-audit" in data_testids(section.text)) is allowed
    page = client.get(f"/projects/{pid}/training-runs/{rid}/audits/new")
    token = csrf_for(client, f"/projects/{pid}/training-runs/{rid}")
    form = {
        "csrf_token": token,
        "size": "6",
        "seed": "9",
        "step_buckets": "2",
        "reward_quantiles": "2",
        "extra": "none",
        "rubric_version_id": str(w.version.id),
    }
    if not allowed:
        assert page.status_code == 403
        posted = client.post(f"/projects/{pid}/training-runs/{rid}/audits", data=form)
        assert posted.status_code == 403
        assert not session.exec(select(AnnotationQueue)).all()
        return
    assert page.status_code == 200
    # The picker lists those who may label audits, all ticked for an engineer (who may not).
    boxes = find_all(page.text, "name", "assignee")
    offered = {int(box["value"]) for box in boxes}
    ticked = {int(box["value"]) for box in boxes if "checked" in box}
    assert offered == ticked == {w.owner.id, w.reviewer.id, w.reviewer2.id}
    # Without the CSRF token nothing is created.
    forged = client.post(
        f"/projects/{pid}/training-runs/{rid}/audits",
        data={k: v for k, v in form.items() if k != "csrf_token"} | {"assignee": w.reviewer.id},
        follow_redirects=False,
    )
    assert forged.status_code == 403 and "CSRF" in forged.text
    assert not session.exec(select(AnnotationQueue)).all()
    made = client.post(
        f"/projects/{pid}/training-runs/{rid}/audits",
        data=form | {"assignee": str(w.reviewer.id)},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    queue_id = int(made.headers["location"].rsplit("/", 1)[1])
    queue = session.get(AnnotationQueue, queue_id)
    assert queue is not None and queue.kind == "audit"
    assert _assignees(session, queue_id) == {w.reviewer.id}


def test_the_service_refuses_a_role_that_cannot_create(session: Session) -> None:
    w = make_world(session, samples=40)
    design = AuditDesign(size=4, rubric_version_id=w.version.id, seed=1, step_buckets=2)
    with pytest.raises(PermissionDenied, match="cannot create audits"):
        audit_service.create_audit(session, w.project, w.run, actor=w.expert, design=design)
    audit = audit_service.create_audit(session, w.project, w.run, actor=w.engineer, design=design)
    assert audit.created_by_id == w.engineer.id
