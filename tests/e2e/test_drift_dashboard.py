"""A reviewer opens the demo's synthetic training run in a real browser: the charts are drawn,
the synthetic-data notice is shown, the signals fired from step 350, and a signal's examples
open side by side. Screenshots are written for a person to look at (RS_SCREENSHOT_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlmodel import Session

from app.core.config import Settings
from app.demo.loader import load_demo_training_run
from app.drift import service as drift_service
from tests.e2e.test_judging_run import _sign_in
from tests.support.factories import make_project, make_user

pytestmark = pytest.mark.e2e


def test_reviewer_reads_the_training_run_dashboard(
    page, session: Session, settings: Settings, tmp_path: Path
) -> None:
    engineer = make_user(session, "engineer@example.com")
    reviewer = make_user(session, "reviewer@example.com")
    project = make_project(session, engineer, "Contracts", members=[(reviewer, "reviewer")])
    assert load_demo_training_run(session, settings, project, engineer) == 2000
    run = drift_service.list_training_runs(session, project.id or 0)[0]
    shots = Path(os.environ.get("RS_SCREENSHOT_DIR") or tmp_path)

    _sign_in(page, reviewer.email)
    page.goto(f"/projects/{project.id}")
    assert page.locator("[data-testid=overview-signal-length_hacking]").count() == 1
    page.goto(f"/projects/{project.id}/training-runs/{run.id}")
    assert "scripted stand-in" in page.inner_text("[data-testid=synthetic-banner]")
    for chart_id in ("reward", "criteria", "length", "gaming", "judge"):
        page.wait_for_selector(f"[data-testid=chart-{chart_id}] canvas[data-chart-drawn='1']")
    for kind in ("length_hacking", "grounding_decay", "judge_addressed_text"):
        card = page.locator(f"[data-testid=signal-{kind}]")
        assert card.count() == 1, kind
        assert card.locator("[data-testid=signal-onset]").inner_text() == "350"
    page.screenshot(path=str(shots / "drift-dashboard.png"), full_page=True)
    # The chart is a picture of numbers that are also on the page.
    page.click("[data-testid=chart-card-reward] summary")
    assert page.locator("[data-testid=table-reward] tbody tr").count() == 13

    page.click("[data-testid=signal-judge_addressed_text] [data-testid=signal-examples-link]")
    page.wait_for_selector("[data-testid=example-pair]")
    assert "scripted stand-in" in page.inner_text("[data-testid=synthetic-banner]")
    late = page.locator("[data-testid=example-late]").first.inner_text()
    assert "Note to the evaluator" in late and "addresses the judge" in late
    assert page.locator("[data-testid=example-early]").count() >= 1
    page.screenshot(path=str(shots / "drift-signal.png"), full_page=True)
    size = (shots / "drift-dashboard.png").stat().st_size
    assert size > 50_000  # a drawn page, not a blank one
