"""The labeling JSON API with a bearer token: create a queue, take the next item (blind), keep a
draft, detect a label changed elsewhere, submit, then see the judge and colleagues."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.auth import service as auth_service
from tests.support.factories import (
    boolean_answer,
    make_project,
    make_rollouts,
    make_run,
    make_user,
    make_version,
)

ALL_PASS = {
    "Follows_Instructions": True,
    "Factually_Accurate": True,
    "Complete": True,
    "Clear": True,
    "Safe": True,
}


def test_queue_and_labels_over_the_api(client: TestClient, session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    alice = make_user(session, "alice@example.com")
    bob = make_user(session, "bob@example.com")
    engineer = make_user(session, "eng@example.com")
    project = make_project(
        session,
        owner,
        "API",
        members=[(alice, "expert"), (bob, "expert"), (engineer, "engineer")],
    )
    version = make_version(session, project, "generic_pass_fail")
    rollouts = make_rollouts(session, project, 3, document="Clause 1. The cap is 12 months.")
    make_run(
        session,
        project,
        version,
        {r.id: boolean_answer(version.definition, ALL_PASS) for r in rollouts},
    )

    def as_user(user) -> dict[str, str]:
        token = auth_service.create_api_token(session, user, "test").token
        return {"Authorization": f"Bearer {token}"}

    eng, ali, bo = as_user(engineer), as_user(alice), as_user(bob)
    base = f"/api/v1/projects/{project.id}"
    created = client.post(
        f"{base}/queues",
        json={
            "name": "API queue",
            "rubric_version_id": version.id,
            "assignee_ids": [alice.id, bob.id],
            "overlap": 2,
        },
        headers=eng,
    )
    assert created.status_code == 201, created.text
    queue = created.json()
    assert queue["items"] == 3 and queue["assignees"] == ["alice@example.com", "bob@example.com"]
    assert client.post(f"{base}/queues", json={"name": "x"}, headers=eng).status_code == 422
    refused = client.post(
        f"{base}/queues",
        json={"name": "Q", "rubric_version_id": version.id, "assignee_ids": [alice.id]},
        headers=ali,
    )
    assert refused.status_code == 403

    item = client.get(f"{base}/queues/{queue['id']}/next", headers=ali).json()
    assert item["rollout"]["target_document"] == "Clause 1. The cap is 12 months."
    assert item["revealed"] is None and item["label"] is None and item["can_label"]
    url = f"{base}/queues/{queue['id']}/items/{item['id']}"

    draft = client.put(f"{url}/draft", json={"values": {"Safe": "pass"}}, headers=ali)
    assert draft.status_code == 200 and draft.json()["revision"] == 1
    client.put(f"{url}/draft", json={"values": {"Safe": "fail"}, "revision": 1}, headers=ali)
    stale = client.put(f"{url}/draft", json={"values": {"Clear": True}, "revision": 1}, headers=ali)
    assert stale.status_code == 409 and "changed elsewhere" in stale.json()["detail"]
    incomplete = client.post(f"{url}/submit", json={"values": {"Safe": True}}, headers=ali)
    assert incomplete.status_code == 422
    assert {p["field"] for p in incomplete.json()["problems"]} >= {"Clear", "Complete"}

    body = {"values": {**ALL_PASS, "Clear": False}, "critiques": {"Clear": "rambles"}}
    submitted = client.post(f"{url}/submit", json={**body, "revision": 2}, headers=ali)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["outcome"] == "submitted"
    assert submitted.json()["next_item_id"] != item["id"]
    after = client.get(url, headers=ali).json()
    assert after["label"]["status"] == "submitted"
    assert after["revealed"]["verdicts"][0]["criteria"]["Clear"]["value"] is True
    assert after["revealed"]["labels"] == []

    # Bob has not labelled it: he sees neither the judge nor Alice.
    bob_view = client.get(url, headers=bo).json()
    assert bob_view["revealed"] is None and bob_view["label"] is None
    client.post(f"{url}/submit", json={"values": ALL_PASS}, headers=bo)
    bob_view = client.get(url, headers=bo).json()
    assert [label["annotator"] for label in bob_view["revealed"]["labels"]] == ["alice"]

    summary = client.get(f"{base}/queues/{queue['id']}", headers=ali).json()
    assert summary["mine_submitted"] == 1 and summary["complete"] == 1
    exported = client.get(f"{base}/labels/export?format=jsonl", headers=eng)
    assert exported.status_code == 200 and exported.text.count("\n") == 2
    assert client.get(f"{base}/labels/export?format=xml", headers=eng).status_code == 422
