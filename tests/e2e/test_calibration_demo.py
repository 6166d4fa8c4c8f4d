"""A researcher opens the calibration demo's runs leaderboard in a real browser, sorts it,
opens a run's figures sliced by a metadata field, and sees the charts drawn (with their tables)
and the real data's attribution."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from app.core.config import Settings
from app.demo.calibration import SLUG, load_calibration_demo
from app.projects.models import Project
from tests.support.factories import make_user
from tests.support.web import PASSWORD

pytestmark = pytest.mark.e2e


def test_leaderboard_sort_slices_and_charts(page, session: Session, settings: Settings) -> None:
    admin = make_user(session, "admin@example.com", is_admin=True)
    load_calibration_demo(session, settings, admin)
    project = session.exec(select(Project).where(Project.slug == SLUG)).one()

    page.goto("/login")
    page.fill("input[name=email]", admin.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)

    page.goto(f"/projects/{project.id}/agreement")
    page.click("[data-testid=leaderboard-link]")
    rows = page.locator("[data-testid=leaderboard-row]")
    assert rows.count() == 2
    assert "Zeng et al., ICLR 2024" in page.locator("[data-testid=attribution]").inner_text()
    assert "MIT" in page.locator("[data-testid=attribution]").inner_text()
    page.click("[data-testid=sort-positional_agreement]")
    page.wait_for_url(lambda url: "sort=positional_agreement" in url)
    judges = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(2)]
    page.click("[data-testid=sort-positional_agreement]")
    page.wait_for_url(lambda url: "dir=asc" in url)
    assert [rows.nth(i).locator("td").nth(1).inner_text() for i in range(2)] == judges[::-1]
    # The chart is drawn by the vendored Chart.js (a canvas with pixels), beside its table.
    page.wait_for_function(
        "() => { const c = document.querySelector('[data-testid=chart-leaderboard] canvas');"
        " return c && c.width > 0 && window.Chart && Chart.getChart(c) }"
    )

    rows.first.locator("[data-testid=lb-slices]").click()
    page.fill("[data-testid=slice-input]", "metadata.longer_response")
    page.click("[data-testid=slice-form] button[type=submit]")
    page.wait_for_url(lambda url: "metadata.longer_response" in url)
    values = page.locator("[data-testid=slice-row]")
    assert [values.nth(i).get_attribute("data-value") for i in range(values.count())] == ["A", "B"]
    assert page.locator("[data-testid=slice-mean]").is_visible()
    page.wait_for_function(
        "() => { const c = document.querySelector('[data-testid=chart-slices] canvas');"
        " return c && window.Chart && Chart.getChart(c) }"
    )

    page.click("text=All figures")
    assert page.locator("[data-testid=pairwise-definitions]").is_visible()
    assert page.locator("[data-testid=headline-card]").is_visible()
    page.wait_for_function(
        "() => { const c = document.querySelector('[data-testid=chart-pairwise-intervals] canvas');"
        " return c && window.Chart && Chart.getChart(c) }"
    )
    assert page.locator("[data-testid=pw-accuracy_ab]").get_attribute("data-value") in (
        "0.795",
        "0.805",
    )
    assert not page.console_errors  # type: ignore[attr-defined]
