"""An expert builds a rubric from the legal template in a real browser: edits a criterion,
previews it on a rollout, publishes, edits again, publishes v2 and compares it with v1."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlmodel import Session

from app.projects import service as project_service
from app.rollouts.models import Rollout
from tests.support.factories import make_project, make_user
from tests.support.web import PASSWORD

pytestmark = pytest.mark.e2e

SYSTEM_MESSAGE = "[data-testid=preview-message][data-role=system]"
RESPONSE = '[{"text_excerpt": "governed by the laws of Texas", "rule": "R1", "concern": "x"}]'


def sign_in(page, email: str) -> None:
    page.goto("/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=nav-account]")


def wait_for_revision(page, revision: int) -> None:
    page.wait_for_selector(f"[data-testid=draft-status][data-revision='{revision}']")


def test_expert_builds_previews_publishes_and_compares_a_rubric(page, session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    expert = make_user(session, "lawyer@example.com")
    project = make_project(session, owner, "Contract review", members=[(expert, "expert")])
    rollout = Rollout(
        project_id=project.id or 0,
        external_id="cuad-0007-gen-2",
        content_hash="e" * 64,
        input_messages=[{"role": "user", "content": "Review this contract against the playbook."}],
        target_document="12. Governing law. This Agreement is governed by the laws of Texas.",
        reference_documents=[{"title": "Playbook", "text": "R1: Delaware or New York law."}],
        response=RESPONSE,
        model="nova-lite-rft",
        step=300,
    )
    session.add(rollout)
    session.commit()

    sign_in(page, expert.email)
    page.goto(f"/projects/{project.id}/rubrics")
    page.fill("[data-testid=rubric-create] input[name=name]", "Contract comments")
    page.check("[data-testid=template-legal_contract_review]")
    page.click("[data-testid=rubric-create] button[type=submit]")
    page.wait_for_selector("[data-testid=rubric-form]")
    assert page.inner_text("[data-testid=rubric-name]") == "Contract comments"

    # The live preview renders the rollout with the judge's exact messages.
    page.wait_for_selector("[data-testid=preview-message][data-role=user]")
    user_message = page.inner_text("[data-testid=preview-message][data-role=user]")
    assert "governed by the laws of Texas" in user_message
    assert re.search(r"≈ [\d,]+ tokens", page.inner_text("[data-testid=preview-tokens]"))
    selected = page.locator("[data-testid=preview-rollout]").input_value()
    assert selected == str(rollout.id)

    # Edit a criterion: saved as you type, and the preview follows.
    third = page.locator("[data-testid=criterion]").nth(2)
    third.locator("[data-testid=criterion-name]").fill("Clear next step for the reviewer")
    wait_for_revision(page, 2)
    expect(page.locator(SYSTEM_MESSAGE)).to_contain_text("Clear next step for the reviewer")

    page.fill("[data-testid=change-note]", "Rename the actionability criterion")
    page.click("[data-testid=publish-button]")
    page.wait_for_selector("[data-testid=version-number]")
    assert page.inner_text("[data-testid=version-number]") == "version 1"
    assert "Rename the actionability" in page.inner_text("[data-testid=change-note]")
    # The publisher cannot sign off alone until the project allows a single approver.
    assert "another expert signs it off" in page.inner_text("[data-testid=own-version]")
    project_service.set_single_approver(session, project, actor=owner, allowed=True)
    page.reload()
    page.click("[data-testid=approve-button]")
    page.wait_for_selector("[data-testid=approval]")
    assert expert.email in page.inner_text("[data-testid=approval]")

    # Edit again: the draft is still editable, version 1 stays as it was.
    page.goto(f"/projects/{project.id}/rubrics")
    page.click("[data-testid=rubric-row] a")
    page.wait_for_selector("[data-testid=rubric-form]")
    first = page.locator("[data-testid=criterion]").first
    first.locator("[data-testid=criterion-description]").fill(
        "Does text_excerpt quote the contract word for word, never the playbook?"
    )
    wait_for_revision(page, 3)
    page.fill("[data-testid=change-note]", "Stricter grounding question")
    page.click("[data-testid=publish-button]")
    page.wait_for_selector("[data-testid=version-number]:has-text('version 2')")

    # Compare v2 with v1: the changed line is highlighted.
    page.click("[data-testid=compare-form] button[type=submit]")
    page.wait_for_selector("[data-testid=compare-title]")
    assert page.inner_text("[data-testid=compare-title]") == "Version 1 → Version 2"
    change = page.locator(
        "[data-testid=criterion-change][data-key=TargetDocument_Grounding][data-field=description]"
    )
    assert "never the playbook" in change.inner_text()
    row = page.locator(
        "[data-testid=rendered-system-diff] [data-testid=diff-row][data-kind=changed]",
        has_text="never the playbook",
    )
    assert row.count() == 1
    right = row.locator(".diff-right")
    assert right.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(227, 246, 232)"
    left = row.locator(".diff-left")
    assert "word for word" in left.inner_text() and "never" not in left.inner_text()
    assert page.console_errors == []


def eventually(page, condition, attempts: int = 100) -> None:
    """Autosave is debounced: poll the database until the browser's last save has landed."""
    for _ in range(attempts):
        if condition():
            return
        page.wait_for_timeout(100)
    assert condition()


def test_criteria_can_be_added_reordered_and_removed(page, session: Session) -> None:
    from app.rubrics import service as rubric_service
    from app.rubrics.models import Rubric

    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Generic")
    rubric = rubric_service.create_rubric(
        session, project, actor=owner, name="Checks", template="blank_rubric"
    )
    sign_in(page, owner.email)
    page.goto(f"/projects/{project.id}/rubrics/{rubric.id}")
    page.wait_for_selector("[data-testid=preview-message]")

    page.click("[data-testid=add-criterion]")
    added = page.locator("#criteria [data-testid=criterion]").nth(1)
    added.locator("[data-testid=criterion-name]").fill("Cites the clause number")
    added.locator("[data-testid=criterion-type]").select_option("scale")
    assert added.locator("[data-testid=level]").count() == 5
    for index, level in enumerate(added.locator("[data-testid=level-description]").all()):
        level.fill(f"Level {index + 1} behaviour")
    added.locator("[data-action=move-up]").click()
    expect(page.locator(SYSTEM_MESSAGE)).to_contain_text("1. Cites the clause number")
    expect(page.locator("[data-testid=draft-ready]")).to_be_visible()

    def stored() -> dict:
        session.expire_all()
        row = session.get(Rubric, rubric.id)
        assert row is not None and row.draft is not None
        return row.draft

    eventually(
        page,
        lambda: (
            [c["key"] for c in stored()["criteria"]] == ["Cites_the_clause_number", "Criterion_1"]
        ),
    )
    eventually(page, lambda: stored()["criteria"][0]["levels"][4]["description"] != "")
    criteria = stored()["criteria"]
    assert [level["value"] for level in criteria[0]["levels"]] == [1, 2, 3, 4, 5]
    assert criteria[0]["levels"][4]["description"] == "Level 5 behaviour"

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#criteria [data-testid=criterion]").nth(1).locator(
        "[data-testid=remove-criterion]"
    ).click()
    expect(page.locator(SYSTEM_MESSAGE)).not_to_contain_text("Criterion 1")
    eventually(
        page, lambda: [c["name"] for c in stored()["criteria"]] == ["Cites the clause number"]
    )
    assert page.console_errors == []
