"""Pages as their users see them at common laptop sizes, with no CSP violations: the annotation
page opens with its header in view and its submit bar never covers the active criterion; the
rubric editor, used as an expert uses it, triggers no Content-Security-Policy violation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import Session

from app.labels import queues
from app.labels.queues import QueueSelection
from app.rollouts.models import Rollout
from tests.support.factories import make_legal_rollouts, make_project, make_user, make_version
from tests.support.web import PASSWORD

pytestmark = pytest.mark.e2e

RECORD_CSP = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation', e => window.__csp.push("
    "e.violatedDirective + ' ' + (e.sourceFile || '') + ':' + e.lineNumber + ' ' + e.sample));"
)


def sign_in(page, email: str) -> None:
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=nav-account]")


def _structured(record: dict[str, Any]) -> bool:
    try:
        return bool(json.loads(record["response"]))
    except ValueError:
        return False


@pytest.fixture
def annotation_url(session: Session) -> tuple[str, str]:
    owner = make_user(session, "owner@example.com")
    lawyer = make_user(session, "lawyer@example.com")
    project = make_project(session, owner, "Supply contracts", members=[(lawyer, "expert")])
    version = make_version(session, project, "legal_contract_review")
    make_legal_rollouts(session, project, limit=2, where=_structured)
    queue = queues.create_queue(
        session,
        project,
        actor=owner,
        name="Reviews",
        rubric_version_id=version.id,
        assignee_ids=[lawyer.id],
        overlap=1,
        selection=QueueSelection(),
    )
    return f"/projects/{project.id}/queues/{queue.id}/next", lawyer.email


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (1366, 900)])
def test_annotation_page_keeps_its_header_and_the_active_criterion_in_view(
    page, annotation_url: tuple[str, str], width: int, height: int
) -> None:
    url, email = annotation_url
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, email)
    page.goto(url)
    page.wait_for_selector("[data-testid=submit]")
    page.wait_for_timeout(200)
    assert page.evaluate("window.scrollY") == 0, "the page opened scrolled past its header"
    head = page.locator("[data-testid=nav-account]").bounding_box()
    assert head is not None and head["y"] >= 0

    # Walk to the last criterion with the keyboard: it must end up above the submit bar.
    page.locator("body").click(position={"x": 5, "y": 5})
    for _ in range(6):
        page.keyboard.press("j")
    active = page.locator("fieldset.lcriterion.active").bounding_box()
    bar = page.locator(".formactions").bounding_box()
    assert active is not None and bar is not None
    assert active["y"] + min(active["height"], 120) <= bar["y"] + 1, (active, bar)
    assert bar["y"] + bar["height"] <= height, "the submit bar is below the window"
    page.screenshot(path=f"/tmp/annotate-{width}x{height}.png")


def test_rubric_editor_has_no_csp_violations(page, session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Contract review")
    session.add(
        Rollout(
            project_id=project.id or 0,
            external_id="cuad-0001",
            content_hash="a" * 64,
            input_messages=[{"role": "user", "content": "Review the contract."}],
            target_document="This Agreement is governed by the laws of Texas.",
            response='[{"text_excerpt": "laws of Texas", "rule": "R1", "concern": "x"}]',
        )
    )
    session.commit()
    page.set_viewport_size({"width": 1366, "height": 900})
    page.context.add_init_script(RECORD_CSP)
    sign_in(page, owner.email)
    page.goto(f"/projects/{project.id}/rubrics")
    page.fill("[data-testid=rubric-create] input[name=name]", "Contract comments")
    page.check("[data-testid=template-legal_contract_review]")
    page.click("[data-testid=rubric-create] button[type=submit]")
    page.wait_for_selector("[data-testid=rubric-form]")
    page.wait_for_selector("[data-testid=preview-message][data-role=user]")
    # Use it: edit, add a criterion, make it a scale (adds levels), and let it autosave.
    page.locator("[data-testid=criterion-name]").first.fill("Grounded in the contract text")
    page.click("[data-action=add-criterion]")
    page.locator("[data-testid=criterion-name]").last.fill("Clear next step")
    page.locator("[data-role=criterion-type]").last.select_option("scale")
    page.wait_for_timeout(1500)
    page.mouse.wheel(0, 4000)
    page.wait_for_timeout(300)
    violations = page.evaluate("window.__csp")
    assert violations == [], violations
    assert not [e for e in page.console_errors if "Content Security Policy" in e]
