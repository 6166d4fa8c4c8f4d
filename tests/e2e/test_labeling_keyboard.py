"""A lawyer labels three contract reviews with the keyboard alone, in a real browser: reloads in
the middle of one and finds her draft intact, submits each with Ctrl+Enter, and each label is
stored exactly once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import Session, select

from app.labels import queues
from app.labels.models import Label, LabelRevision
from app.labels.queues import QueueSelection
from tests.support.factories import make_legal_rollouts, make_project, make_user, make_version
from tests.support.web import PASSWORD

pytestmark = pytest.mark.e2e

GROUNDING = "value__TargetDocument_Grounding"
CONSISTENCY = "value__Reference_Consistency"
ACTION = "value__Actionability"


def _structured(record: dict[str, Any]) -> bool:
    """A response that is a non-empty JSON list of comments."""
    try:
        return bool(json.loads(record["response"]))
    except ValueError:
        return False


@pytest.fixture
def lawyer_queue(session: Session):
    owner = make_user(session, "owner@example.com")
    lawyer = make_user(session, "lawyer@example.com")
    project = make_project(session, owner, "Supply contracts", members=[(lawyer, "expert")])
    version = make_version(session, project, "legal_contract_review")
    rollouts = make_legal_rollouts(session, project, limit=3, where=_structured)
    assert len(rollouts) == 3
    queue = queues.create_queue(
        session,
        project,
        actor=owner,
        name="This week's reviews",
        rubric_version_id=version.id,
        assignee_ids=[lawyer.id],
        overlap=1,
        selection=QueueSelection(),
    )
    return {"project": project, "queue": queue, "rollouts": rollouts, "lawyer": lawyer}


def _sign_in_with_the_keyboard(page, email: str) -> None:
    page.goto("/login")
    page.focus("input[name=email]")
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)


def _checked(page, name: str) -> str | None:
    boxes = page.locator(f"input[name={name}]:checked")
    return boxes.first.get_attribute("value") if boxes.count() else None


def test_three_rollouts_labelled_with_the_keyboard_alone(
    page, session: Session, lawyer_queue
) -> None:
    world = lawyer_queue
    pid, queue = world["project"].id, world["queue"]
    _sign_in_with_the_keyboard(page, "lawyer@example.com")
    page.goto(f"/projects/{pid}/queues/{queue.id}/next")
    page.wait_for_selector("[data-testid=label-form]")
    first_item_url = page.url

    # The excerpts of the comments are marked in the contract.
    assert page.locator("[data-testid=document] mark").count() > 0
    assert page.locator("[data-testid=response-item]").count() > 0

    # Item 1: grounding 4 (the first criterion is active), then back to it for a critique.
    page.keyboard.press("4")
    assert _checked(page, GROUNDING) == "4"
    page.keyboard.press("k")
    page.keyboard.press("c")
    page.keyboard.type("Quotes the liability cap verbatim.")
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    page.keyboard.press("2")  # consistency 2, then on to actionability
    assert _checked(page, CONSISTENCY) == "2"
    page.wait_for_selector("[data-testid=draft-status]:has-text('Draft saved')")

    # Reload in the middle: the draft comes back from the server.
    page.reload()
    page.wait_for_selector("[data-testid=label-form]")
    assert _checked(page, GROUNDING) == "4"
    assert _checked(page, CONSISTENCY) == "2"
    critique = "textarea[name=critique__TargetDocument_Grounding]"
    assert page.input_value(critique) == "Quotes the liability cap verbatim."
    # The first criterion still without a value is the active one.
    assert "active" in (page.get_attribute("[data-testid=criterion-Actionability]", "class") or "")

    # Type more and reload at once, before any save could happen: still intact.
    page.keyboard.press("o")
    page.keyboard.type("Good, but the action lacks the escalation route.")
    page.reload()
    page.wait_for_selector("[data-testid=label-form]")
    assert page.input_value("textarea[name=overall_critique]") == (
        "Good, but the action lacks the escalation route."
    )
    page.keyboard.press("Escape")
    page.keyboard.press("g")
    page.keyboard.press("3")  # go to criterion 3
    page.keyboard.press("5")
    assert _checked(page, ACTION) == "5"
    page.keyboard.press("Control+Enter")
    page.wait_for_url(lambda url: url != first_item_url and "/items/" in url)

    # Items 2 and 3: three levels each, then submit.
    for levels in (("5", "4", "3"), ("1", "1", "2")):
        page.wait_for_selector("[data-testid=label-form]")
        current = page.url
        for level in levels:
            page.keyboard.press(level)
        page.keyboard.press("Control+Enter")
        page.wait_for_url(lambda url, current=current: url != current)
    page.wait_for_selector("[data-testid=queue-done]")
    assert page.console_errors == []

    labels = session.exec(select(Label).order_by(Label.submitted_at)).all()
    assert len(labels) == 3
    assert all(label.status == "submitted" for label in labels)
    assert [label.rollout_id for label in labels] == [r.id for r in world["rollouts"]]
    first, second, third = labels
    assert first.values == {
        "TargetDocument_Grounding": 4,
        "Reference_Consistency": 2,
        "Actionability": 5,
    }
    assert first.critiques == {"TargetDocument_Grounding": "Quotes the liability cap verbatim."}
    assert first.overall_critique == "Good, but the action lacks the escalation route."
    assert second.values == {
        "TargetDocument_Grounding": 5,
        "Reference_Consistency": 4,
        "Actionability": 3,
    }
    assert third.values == {
        "TargetDocument_Grounding": 1,
        "Reference_Consistency": 1,
        "Actionability": 2,
    }
    assert session.exec(select(LabelRevision)).all() == []  # drafts are not history
