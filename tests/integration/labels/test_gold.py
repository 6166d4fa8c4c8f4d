"""Gold sets: labeled rollouts only, development and a locked test split, and test items never
offered to a rubric author as few-shot examples."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.audit.models import AuditEvent
from app.core.errors import Conflict, InvalidInput
from app.labels import gold, service
from app.labels.models import GoldItem
from app.rubrics import examples as rubric_examples
from app.rubrics import previews as rubric_previews
from app.rubrics import service as rubric_service
from app.rubrics.models import Rubric
from tests.support.factories import add_label, make_project, make_rollouts, make_user, make_version
from tests.support.web import csrf_for, find_all, login


@pytest.fixture
def gold_world(session: Session):
    owner = make_user(session, "owner@example.com")
    alice = make_user(session, "alice@example.com")
    engineer = make_user(session, "eng@example.com")
    project = make_project(
        session, owner, "Gold", members=[(alice, "expert"), (engineer, "engineer")]
    )
    version = make_version(session, project, "generic_pass_fail")
    rollouts = make_rollouts(session, project, 8)
    for rollout in rollouts[:6]:
        add_label(session, project, version, rollout, alice, {"Safe": True})
    return {
        "project": project,
        "version": version,
        "rollouts": rollouts,
        "alice": alice,
        "owner": owner,
        "engineer": engineer,
    }


def test_test_split_is_locked_and_never_offered_as_an_example(session: Session, gold_world) -> None:
    w = gold_world
    ids = [r.id for r in w["rollouts"]]
    gold.add_gold(session, w["project"], actor=w["alice"], rollout_ids=ids[:3], split="test")
    gold.add_gold(
        session, w["project"], actor=w["alice"], rollout_ids=ids[3:5], split="development"
    )
    test_ids = set(ids[:3])
    assert service.gold_test_rollout_ids(session, w["project"].id) == test_ids
    assert all(service.is_locked_test_item(session, w["project"].id, r) for r in ids[:3])
    assert not any(service.is_locked_test_item(session, w["project"].id, r) for r in ids[3:])

    # The rubric editor's list of few-shot candidates leaves the test split out...
    candidates = {r.id for r in rubric_previews.example_candidates(session, w["project"].id)}
    assert candidates == set(ids) - test_ids
    # ...even when searched for by id...
    for rollout_id in test_ids:
        found = rubric_previews.example_candidates(session, w["project"].id, str(rollout_id))
        assert rollout_id not in {r.id for r in found}
    # ...and attaching one anyway is refused.
    rubric = session.get(Rubric, w["version"].rubric_id)
    rubric_service.current_draft(session, rubric)
    with pytest.raises(InvalidInput, match="test split"):
        rubric_examples.add_example(
            session,
            rubric,
            actor=w["alice"],
            expected_revision=rubric.draft_revision,
            rollout_id=ids[0],
            label={"Safe": True},
        )

    # Nothing leaves the test split.
    locked = session.exec(select(GoldItem).where(GoldItem.rollout_id == ids[0])).one()
    with pytest.raises(Conflict, match="locked"):
        gold.set_gold_split(session, w["project"], locked.id, actor=w["owner"], split="development")
    with pytest.raises(Conflict, match="locked"):
        gold.remove_gold(session, w["project"], locked.id, actor=w["owner"])
    # Adding it again "as development" leaves it where it is.
    gold.add_gold(
        session, w["project"], actor=w["alice"], rollout_ids=[ids[0]], split="development"
    )
    session.refresh(locked)
    assert locked.split == "test"
    assert service.gold_test_rollout_ids(session, w["project"].id) == test_ids


def test_only_labeled_rollouts_can_be_gold(session: Session, gold_world) -> None:
    w = gold_world
    with pytest.raises(InvalidInput, match="no submitted label"):
        gold.add_gold(
            session,
            w["project"],
            actor=w["alice"],
            rollout_ids=[w["rollouts"][7].id],
            split="development",
        )
    with pytest.raises(InvalidInput, match="split"):
        gold.add_gold(
            session, w["project"], actor=w["alice"], rollout_ids=[w["rollouts"][0].id], split="x"
        )


def test_gold_page_add_move_and_refusals(client: TestClient, session: Session, gold_world) -> None:
    w = gold_world
    pid = w["project"].id
    login(client, "alice@example.com")
    page = client.get(f"/projects/{pid}/gold")
    assert page.status_code == 200
    assert "no-gold" in page.text
    token = csrf_for(client, f"/projects/{pid}/gold")
    added = client.post(
        f"/projects/{pid}/gold",
        data={
            "csrf_token": token,
            "rollout_id": [str(w["rollouts"][0].id), str(w["rollouts"][1].id)],
            "split": "development",
            "expectation": "good",
        },
        follow_redirects=False,
    )
    assert added.status_code == 303
    items = session.exec(select(GoldItem).order_by(GoldItem.rollout_id)).all()
    assert [(g.rollout_id, g.split, g.expectation) for g in items] == [
        (w["rollouts"][0].id, "development", "good"),
        (w["rollouts"][1].id, "development", "good"),
    ]
    moved = client.post(
        f"/projects/{pid}/gold/{items[0].id}/split",
        data={"csrf_token": token, "split": "test"},
        follow_redirects=False,
    )
    assert moved.status_code == 303
    back = client.post(
        f"/projects/{pid}/gold/{items[0].id}/split",
        data={"csrf_token": token, "split": "development"},
    )
    assert back.status_code == 409 and "locked" in back.text
    removed = client.post(f"/projects/{pid}/gold/{items[0].id}/remove", data={"csrf_token": token})
    assert removed.status_code == 409
    page = client.get(f"/projects/{pid}/gold").text
    rows = {
        r["data-rollout-id"]: r["data-split"] for r in find_all(page, "data-testid", "gold-row")
    }
    assert rows == {str(w["rollouts"][0].id): "test", str(w["rollouts"][1].id): "development"}
    assert len(find_all(page, "data-testid", "locked")) == 1


def test_gold_api(client: TestClient, session: Session, gold_world) -> None:
    w = gold_world
    pid = w["project"].id
    login(client, "alice@example.com")
    token = csrf_for(client, f"/projects/{pid}/gold")
    headers = {"X-CSRF-Token": token}
    created = client.post(
        f"/api/v1/projects/{pid}/gold",
        json={"rollout_ids": [w["rollouts"][2].id], "split": "test"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    (item,) = created.json()
    assert item["locked"] is True and item["labels"] == 1
    assert client.get(f"/api/v1/projects/{pid}/gold?split=test").json()[0]["id"] == item["id"]
    refused = client.delete(f"/api/v1/projects/{pid}/gold/{item['id']}", headers=headers)
    assert refused.status_code == 409 and "locked" in refused.json()["detail"]
    bad = client.post(
        f"/api/v1/projects/{pid}/gold", json={"rollout_ids": [], "split": "test"}, headers=headers
    )
    assert bad.status_code == 422


def test_adding_many_gold_items_at_once_is_audited_in_full(
    client: TestClient, session: Session, gold_world
) -> None:
    """Issue 11, item 11: a bulk add larger than the audit object id column (80 characters)."""
    w = gold_world
    more = make_rollouts(session, w["project"], 60, prefix="bulk")
    for rollout in more:
        add_label(session, w["project"], w["version"], rollout, w["alice"], {"Safe": True})
    login(client, "alice@example.com")
    token = csrf_for(client, f"/projects/{w['project'].id}/gold")
    response = client.post(
        f"/api/v1/projects/{w['project'].id}/gold",
        json={"rollout_ids": [r.id for r in more], "split": "development"},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 201, response.text
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "gold.add")).one()
    assert len(event.object_id) <= 80
    added = session.exec(select(GoldItem.id).order_by(GoldItem.id)).all()
    assert event.details["object_ids"] == [str(i) for i in added]
    assert len(event.details["rollout_ids"]) == 60
