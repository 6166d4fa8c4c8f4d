"""A reviewer's journey on the demo's synthetic training run, in a real browser: the dashboard's
charts and signals, a signal's examples, a new stratified audit, three samples labelled with the
keyboard alone (each criterion, "did it deserve its reward?", submit), and agreement over steps
changing on the dashboard. Screenshots for a person to look at go to RS_SCREENSHOT_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlmodel import Session

from app.core.config import Settings
from app.demo.audit import load_demo_audit
from app.demo.loader import load_demo_training_run
from app.drift import service as drift_service
from app.rubrics import demo as rubric_demo
from tests.e2e.test_labeling_keyboard import _sign_in_with_the_keyboard
from tests.support.factories import make_project, make_user

pytestmark = pytest.mark.e2e


def _section(page) -> dict[str, int]:
    page.wait_for_selector("[data-testid=agreement-section]")
    section = page.locator("[data-testid=agreement-section]")
    return {
        "pairs": int(section.get_attribute("data-pairs") or 0),
        "samples": int(section.get_attribute("data-samples") or 0),
    }


def test_reviewer_audits_the_demo_run_with_the_keyboard(
    page, session: Session, settings: Settings, tmp_path: Path
) -> None:
    admin = make_user(session, "admin@example.com")
    reviewer = make_user(session, "reviewer@example.com")
    project = make_project(session, admin, "Contract review", members=[(reviewer, "reviewer")])
    rubric_demo.ensure_demo_rubric(session, project, admin)
    load_demo_training_run(session, settings, project, admin)
    run = drift_service.list_training_runs(session, project.id or 0)[0]
    assert load_demo_audit(session, project, run, admin) > 0
    shots = Path(os.environ.get("RS_SCREENSHOT_DIR") or tmp_path)
    run_url = f"/projects/{project.id}/training-runs/{run.id}"

    _sign_in_with_the_keyboard(page, reviewer.email)
    page.goto(run_url)
    assert "scripted stand-in" in page.inner_text("[data-testid=synthetic-banner]")
    for chart_id in ("reward", "criteria", "length"):
        page.wait_for_selector(f"[data-testid=chart-{chart_id}] canvas[data-chart-drawn='1']")
    # The demo's labelled audit makes the agreement signals fire, next to the gaming ones.
    for kind in ("agreement_drop", "length_hacking", "judge_addressed_text"):
        assert page.locator(f"[data-testid=signal-{kind}]").count() == 1, kind
    before = _section(page)
    assert before["samples"] > 0
    page.wait_for_selector("[data-testid=chart-agreement-over-steps] canvas[data-chart-drawn='1']")
    assert page.locator("[data-testid=early-late]").count() == 1
    page.screenshot(path=str(shots / "drift-review-dashboard.png"), full_page=True)

    # A signal's examples, side by side with an early sample of the same prompt.
    page.click("[data-testid=signal-length_hacking] [data-testid=signal-examples-link]")
    page.wait_for_selector("[data-testid=example-pair]")
    page.go_back()

    # A new stratified audit, small and seeded.
    page.click("[data-testid=new-audit]")
    page.fill("[data-testid=audit-size]", "6")
    page.fill("[data-testid=audit-seed]", "7")
    page.fill("[data-testid=audit-step-buckets]", "3")
    page.fill("[data-testid=audit-quantiles]", "2")
    page.screenshot(path=str(shots / "drift-review-new-audit.png"), full_page=True)
    page.click("[data-testid=audit-create]")
    page.wait_for_selector("[data-testid=queue-start]")
    assert page.locator("[data-testid=stat-items]").inner_text() == "6"
    page.click("[data-testid=queue-start]")

    # Three samples with the keyboard alone: three levels, "y"/"x", Ctrl+Enter.
    for answer in ("y", "x", "y"):
        page.wait_for_selector("[data-testid=label-form]")
        assert page.locator("[data-testid=deserved]").count() == 1
        # Blind: neither the reward nor the judge's scores are on the page before submitting.
        assert page.locator("[data-testid=reveal]").count() == 0
        current = page.url
        for level in ("2", "3", "2"):
            page.keyboard.press(level)
        page.keyboard.press(answer)
        assert page.locator("input[name=deserved]:checked").get_attribute("value") == (
            "yes" if answer == "y" else "no"
        )
        if answer == "x":
            page.screenshot(path=str(shots / "drift-review-label.png"), full_page=True)
        page.keyboard.press("Control+Enter")
        page.wait_for_url(lambda url, current=current: url != current)

    page.goto(run_url)
    after = _section(page)
    assert after["pairs"] == before["pairs"] + 9  # 3 samples x 3 criteria, one reviewer
    assert page.locator("[data-testid=audit-row]").count() == 2
    page.locator("[data-testid=agreement-section]").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "drift-review-after.png"), full_page=True)
    assert page.console_errors == []  # type: ignore[attr-defined]
