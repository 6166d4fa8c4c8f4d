"""The labeling pages over HTTP: hub, queue creation, the annotation view with highlighted
excerpts, drafts, submission (form and JSON), the input kept on a refused submission, blindness,
preference labeling with a recorded order, and readable errors for bad input."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.labels import queues
from app.labels.models import AnnotationQueue, Label, QueueItem
from app.labels.queues import QueueSelection
from app.labels.values import shown_order
from tests.support.factories import (
    make_legal_rollouts,
    make_pair_run,
    make_pairs,
    make_project,
    make_rollouts,
    make_user,
    make_version,
)
from tests.support.web import csrf_for, data_testids, find_all, login


@pytest.fixture
def legal(session: Session):
    owner = make_user(session, "owner@example.com")
    alice = make_user(session, "alice@example.com")
    bob = make_user(session, "bob@example.com")
    engineer = make_user(session, "eng@example.com")
    project = make_project(
        session,
        owner,
        "Contracts",
        members=[(alice, "expert"), (bob, "expert"), (engineer, "engineer")],
    )
    version = make_version(session, project, "legal_contract_review")
    rollouts = make_legal_rollouts(session, project, limit=8)
    queue = queues.create_queue(
        session,
        project,
        actor=owner,
        name="Contracts",
        rubric_version_id=version.id,
        assignee_ids=[alice.id, bob.id],
        overlap=2,
        selection=QueueSelection(),
    )
    return {
        "project": project,
        "version": version,
        "rollouts": rollouts,
        "queue": queue,
        "alice": alice,
        "bob": bob,
        "engineer": engineer,
        "owner": owner,
    }


def _item(session: Session, queue: AnnotationQueue, position: int) -> QueueItem:
    return session.exec(
        select(QueueItem).where(QueueItem.queue_id == queue.id, QueueItem.position == position)
    ).one()


def test_hub_and_queue_pages(client: TestClient, session: Session, legal) -> None:
    login(client, "alice@example.com")
    pid = legal["project"].id
    hub = client.get(f"/projects/{pid}/labeling")
    assert hub.status_code == 200
    assert len(find_all(hub.text, "data-testid", "queue-row")) == 1
    assert "queue-start" in data_testids(hub.text)
    page = client.get(f"/projects/{pid}/queues/{legal['queue'].id}")
    assert page.status_code == 200
    assert len(find_all(page.text, "data-testid", "queue-item")) == 8
    start = client.get(f"/projects/{pid}/queues/{legal['queue'].id}/next", follow_redirects=False)
    assert start.status_code == 303
    assert start.headers["location"].endswith(f"/items/{_item(session, legal['queue'], 0).id}")


def test_annotation_view_highlights_excerpts_from_spans(
    client: TestClient, session: Session, legal
) -> None:
    login(client, "alice@example.com")
    pid, queue = legal["project"].id, legal["queue"]
    for position in range(8):
        item = _item(session, queue, position)
        rollout = legal["rollouts"][position]
        html = client.get(f"/projects/{pid}/queues/{queue.id}/items/{item.id}").text
        ids = data_testids(html)
        assert {"label-form", "document", "criterion-TargetDocument_Grounding"} <= ids
        try:
            comments = json.loads(rollout.response)
        except ValueError:
            assert "response-text" in ids  # prose or broken JSON is shown as text
            continue
        statuses = [e["data-status"] for e in find_all(html, "data-testid", "response-item")]
        assert len(statuses) == len(comments)
        defects = rollout.metadata_.get("defects") or [[] for _ in comments]
        for status, comment, codes in zip(statuses, comments, defects, strict=True):
            flat = " ".join(comment["text_excerpt"].split())
            in_contract = flat in " ".join(rollout.target_document.split())
            assert (status == "found") == in_contract, (comment["text_excerpt"], codes)
            if "quotes_playbook" in codes:
                assert status == "not_found"
        marks = find_all(html, "data-testid", "mark")
        found = {i for i, s in enumerate(statuses) if s != "not_found"}
        marked = {int(m) for e in marks for m in str(e["data-marks"]).split()}
        assert marked == found
        # The document text itself is escaped: no markup from the rollout reaches the page.
        assert "<script" not in html.split('data-testid="document"')[1].split("</div>")[0]


def test_draft_then_json_submit_and_the_next_item(
    client: TestClient, session: Session, legal
) -> None:
    login(client, "alice@example.com")
    pid, queue = legal["project"].id, legal["queue"]
    item = _item(session, queue, 0)
    base = f"/projects/{pid}/queues/{queue.id}/items/{item.id}"
    token = csrf_for(client, base)
    draft = client.post(
        f"{base}/draft",
        data={"value__Actionability": "4", "critique__Actionability": "Almost ready"},
        headers={"X-CSRF-Token": token, "Accept": "application/json"},
    )
    assert draft.status_code == 200, draft.text
    assert draft.json()["revision"] == 1 and draft.json()["status"] == "draft"
    # The draft is restored by the server when the page is opened again.
    page = client.get(base).text
    assert 'value="4" checked' in page and "Almost ready" in page
    full = {
        "value__TargetDocument_Grounding": "5",
        "value__Reference_Consistency": "3",
        "value__Actionability": "4",
        "critique__Actionability": "Almost ready",
        "overall_critique": "Good review",
        "revision": "1",
    }
    submitted = client.post(
        f"{base}/submit", data=full, headers={"X-CSRF-Token": token, "Accept": "application/json"}
    )
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert body["outcome"] == "submitted"
    assert body["next_url"].endswith(f"/items/{_item(session, queue, 1).id}")
    again = client.post(
        f"{base}/submit", data=full, headers={"X-CSRF-Token": token, "Accept": "application/json"}
    )
    assert again.json()["outcome"] == "unchanged"
    labels = session.exec(select(Label)).all()
    assert len(labels) == 1
    assert labels[0].values == {
        "TargetDocument_Grounding": 5,
        "Reference_Consistency": 3,
        "Actionability": 4,
    }
    assert labels[0].critiques == {"Actionability": "Almost ready"}


def test_refused_submission_keeps_what_was_typed(
    client: TestClient, session: Session, legal
) -> None:
    login(client, "alice@example.com")
    pid, queue = legal["project"].id, legal["queue"]
    item = _item(session, queue, 0)
    base = f"/projects/{pid}/queues/{queue.id}/items/{item.id}"
    token = csrf_for(client, base)
    response = client.post(
        f"{base}/submit",
        data={
            "csrf_token": token,
            "value__Actionability": "2",
            "critique__Reference_Consistency": "A long thought I must not lose",
        },
    )
    assert response.status_code == 422
    assert "label-error" in data_testids(response.text)
    assert "A long thought I must not lose" in response.text
    assert 'value="2" checked' in response.text
    assert session.exec(select(Label)).all() == []


def test_non_js_form_submit_redirects_and_flashes(
    client: TestClient, session: Session, legal
) -> None:
    login(client, "bob@example.com")
    pid, queue = legal["project"].id, legal["queue"]
    item = _item(session, queue, 7)
    base = f"/projects/{pid}/queues/{queue.id}/items/{item.id}"
    token = csrf_for(client, base)
    response = client.post(
        f"{base}/submit",
        data={
            "csrf_token": token,
            "value__TargetDocument_Grounding": "1",
            "value__Reference_Consistency": "1",
            "value__Actionability": "1",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    # Item 8 was the last; the next open item is the first one.
    assert response.headers["location"].endswith(f"/items/{_item(session, queue, 0).id}")


def test_label_changed_elsewhere_gives_409_with_a_message(
    client: TestClient, session: Session, legal
) -> None:
    login(client, "alice@example.com")
    pid, queue = legal["project"].id, legal["queue"]
    item = _item(session, queue, 0)
    base = f"/projects/{pid}/queues/{queue.id}/items/{item.id}"
    token = csrf_for(client, base)
    headers = {"X-CSRF-Token": token, "Accept": "application/json"}
    client.post(f"{base}/draft", data={"value__Actionability": "4"}, headers=headers)
    client.post(
        f"{base}/draft", data={"value__Actionability": "5", "revision": "1"}, headers=headers
    )
    stale = client.post(
        f"{base}/draft", data={"value__Actionability": "3", "revision": "1"}, headers=headers
    )
    assert stale.status_code == 409
    assert "changed elsewhere" in stale.json()["detail"]
    label = session.exec(select(Label)).one()
    session.refresh(label)
    assert label.values == {"Actionability": 5}


def test_experts_outside_the_queue_and_engineers_cannot_label(
    client: TestClient, session: Session, legal
) -> None:
    carol = make_user(session, "carol@example.com")
    from app.projects import service as project_service

    project_service.add_member(
        session, legal["project"], email=carol.email, role="expert", actor=legal["owner"]
    )
    pid, queue = legal["project"].id, legal["queue"]
    item = _item(session, queue, 0)
    base = f"/projects/{pid}/queues/{queue.id}/items/{item.id}"
    login(client, carol.email)
    page = client.get(base)
    assert "not-assigned" in data_testids(page.text) and "label-form" not in data_testids(page.text)
    token = csrf_for(client, base)
    refused = client.post(
        f"{base}/draft",
        data={"value__Actionability": "4"},
        headers={"X-CSRF-Token": token, "Accept": "application/json"},
    )
    assert refused.status_code == 403
    assert "not assigned" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("draft", {"value__Actionability": "9"}),
        ("draft", {"value__Nope": "1"}),
        ("draft", {"revision": "abc"}),
        ("submit", {"value__TargetDocument_Grounding": "x"}),
    ],
)
def test_bad_label_input_is_a_readable_4xx(
    client: TestClient, session: Session, legal, path: str, data: dict[str, str]
) -> None:
    login(client, "alice@example.com")
    pid, queue = legal["project"].id, legal["queue"]
    item = _item(session, queue, 0)
    base = f"/projects/{pid}/queues/{queue.id}/items/{item.id}"
    token = csrf_for(client, base)
    response = client.post(
        f"{base}/{path}", data=data, headers={"X-CSRF-Token": token, "Accept": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


def test_queue_creation_form_and_its_errors(client: TestClient, session: Session, legal) -> None:
    login(client, "eng@example.com")
    pid = legal["project"].id
    form_page = client.get(f"/projects/{pid}/queues/new")
    assert form_page.status_code == 200
    token = csrf_for(client, f"/projects/{pid}/queues/new")
    created = client.post(
        f"/projects/{pid}/queues",
        data={
            "csrf_token": token,
            "name": "Sample",
            "rubric_version_id": str(legal["version"].id),
            "assignee": [str(legal["alice"].id)],
            "overlap": "1",
            "source": "filter",
            "sample_size": "3",
            "seed": "11",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    queue = session.exec(select(AnnotationQueue).where(AnnotationQueue.name == "Sample")).one()
    assert queue.selection == {"source": "filter", "sample_size": 3, "seed": 11}
    for bad, message in (
        ({"overlap": "2"}, "overlap"),
        ({"step_min": "ten"}, "whole number"),
        ({"source": "magic"}, "where the items come from"),
        ({"rubric_version_id": ""}, "rubric version"),
    ):
        data = {
            "csrf_token": token,
            "name": "Bad",
            "rubric_version_id": str(legal["version"].id),
            "assignee": [str(legal["alice"].id)],
            "overlap": "1",
            **bad,
        }
        response = client.post(f"/projects/{pid}/queues", data=data)
        assert response.status_code == 422, (bad, response.status_code)
        assert message in response.text
        assert find_all(response.text, "data-testid", "queue-form"), "the form is shown again"


def test_refused_queue_keeps_the_form_with_the_message_beside_the_field(
    client: TestClient, session: Session, legal
) -> None:
    login(client, "eng@example.com")
    pid = legal["project"].id
    token = csrf_for(client, f"/projects/{pid}/queues/new")
    typed = {
        "csrf_token": token,
        "name": "Week 12 contracts",
        "rubric_version_id": str(legal["version"].id),
        "overlap": "1",
        "source": "filter",
        "model": "no-such-model",
        "sample_size": "5",
    }
    no_expert = client.post(f"/projects/{pid}/queues", data=typed)
    assert no_expert.status_code == 422
    html = no_expert.text
    assert [e["data-field"] for e in find_all(html, "data-testid", "field-error")] == ["assignee"]
    assert html.count("Tick at least one expert") == 1
    assert find_all(html, "name", "name")[0]["value"] == "Week 12 contracts"
    assert find_all(html, "name", "model")[0]["value"] == "no-such-model"
    assert find_all(html, "name", "sample_size")[0]["value"] == "5"

    nothing_matches = client.post(
        f"/projects/{pid}/queues", data={**typed, "assignee": [str(legal["alice"].id)]}
    )
    assert nothing_matches.status_code == 422
    html = nothing_matches.text
    assert [e["data-field"] for e in find_all(html, "data-testid", "field-error")] == ["source"]
    assert html.count("No rollouts match this selection") == 1
    alice = find_all(html, "value", str(legal["alice"].id))
    assert any(e.get("name") == "assignee" and "checked" in e for e in alice)
    assert find_all(html, "name", "model")[0]["value"] == "no-such-model"
    assert (
        session.exec(
            select(AnnotationQueue).where(AnnotationQueue.name == "Week 12 contracts")
        ).first()
        is None
    )


def test_preference_pairs_are_shown_in_a_recorded_random_order(
    client: TestClient, session: Session
) -> None:
    owner = make_user(session, "owner@example.com")
    alice = make_user(session, "alice@example.com")
    project = make_project(session, owner, "Prefs", members=[(alice, "expert")])
    version = make_version(session, project, "pairwise_preference")
    rollouts = make_rollouts(session, project, 8, response="Answer")
    pairs = make_pairs(session, project, rollouts)
    queue = queues.create_queue(
        session,
        project,
        actor=owner,
        name="Pairs",
        rubric_version_id=version.id,
        assignee_ids=[alice.id],
        overlap=1,
        selection=QueueSelection(),
    )
    make_pair_run(
        session, project, version, {p.id: ("A", "B") for p in pairs}, {p.id: p for p in pairs}
    )
    items = session.exec(
        select(QueueItem).where(QueueItem.queue_id == queue.id).order_by(QueueItem.position)
    ).all()
    assert [i.pair_id for i in items] == [p.id for p in pairs]
    login(client, alice.email)
    orders = set()
    for item, pair in zip(items, pairs, strict=True):
        order = shown_order(pair.id, f"user:{alice.id}")
        orders.add(order)
        base = f"/projects/{project.id}/queues/{queue.id}/items/{item.id}"
        page = client.get(base).text
        first = page.split('data-testid="response-1"')[1].split('data-testid="response-2"')[0]
        by_id = {r.id: r for r in rollouts}
        shown_first = by_id[pair.rollout_a_id if order == "AB" else pair.rollout_b_id]
        assert shown_first.response in first
        token = csrf_for(client, base)
        # She prefers the response on the left.
        response = client.post(
            f"{base}/submit",
            data={"choice": "left", "overall_critique": "clearer"},
            headers={"X-CSRF-Token": token, "Accept": "application/json"},
        )
        assert response.status_code == 200, response.text
        label = session.exec(select(Label).where(Label.pair_id == pair.id)).one()
        assert label.shown_order == order
        assert label.preference == ("A" if order == "AB" else "B")
        # Only now does she see the judge, which preferred A in both orders.
        revealed = client.get(base).text
        assert "revealed-verdict" in data_testids(revealed)
        assert "Judge prefers <strong>A</strong>" in revealed
    assert orders == {"AB", "BA"}  # both orders occur over a handful of pairs
