"""A researcher opens the calibration demo's runs leaderboard in a real browser, sorts it,
opens a run's figures sliced by a metadata field, and sees the charts drawn (with their tables)
and the real data's attribution, and the plain statement that the data names no models (so no
ratings). An engineer corrects the judge's pass rate on a checkpoint's unlabelled rollouts with
the htmx form, sees a typing error shown in place, and sees checkpoint ratings drawn."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from sqlmodel import Session, select

from app.core.config import Settings
from app.demo.calibration import SLUG, load_calibration_demo
from app.projects.models import Project
from app.rubrics.builtin import BUILTIN_TEMPLATES
from tests.support.factories import (
    add_label,
    boolean_answer,
    make_pair_run,
    make_pairs,
    make_project,
    make_rollouts,
    make_run,
    make_user,
    make_version,
)
from tests.support.web import PASSWORD

# Screenshots for a person to look at (set RS_E2E_SHOTS to a folder); none by default.
SHOTS = os.environ.get("RS_E2E_SHOTS")


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def _login(page, email: str) -> None:
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


pytestmark = pytest.mark.e2e


def test_leaderboard_sort_slices_and_charts(page, session: Session, settings: Settings) -> None:
    admin = make_user(session, "admin@example.com", is_admin=True)
    load_calibration_demo(session, settings, admin)
    project = session.exec(select(Project).where(Project.slug == SLUG)).one()

    _login(page, admin.email)

    page.goto(f"/projects/{project.id}/agreement")
    page.click("[data-testid=leaderboard-link]")
    _shot(page, "calibration-leaderboard")
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
    # LLMBar's pairs name no models: the page says so instead of inventing ratings.
    undefined = page.locator("[data-testid=ratings-undefined]")
    assert "does not guess names" in undefined.inner_text()
    _shot(page, "calibration-run")
    assert not page.console_errors  # type: ignore[attr-defined]


KEYS = [c.key for c in BUILTIN_TEMPLATES["generic_pass_fail"].criteria]


def test_corrected_estimate_form_and_checkpoint_ratings(page, session: Session) -> None:
    """Test data built for the test (the judge is a fixture, not a real LLM)."""
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Corrected in the browser")
    version = make_version(session, project)
    rollouts = make_rollouts(session, project, 80)
    rng = random.Random(3)
    for index, rollout in enumerate(rollouts):
        rollout.checkpoint = "step-400" if index % 2 else "step-100"
        session.add(rollout)
    session.commit()
    truth = {r.id: {k: rng.random() < 0.7 for k in KEYS} for r in rollouts}
    judged = {
        rid: {k: (v if rng.random() < 0.85 else not v) for k, v in t.items()}
        for rid, t in truth.items()
    }
    run = make_run(
        session,
        project,
        version,
        {rid: boolean_answer(version.definition, j) for rid, j in judged.items()},
    )
    for rollout in rollouts[:30]:
        add_label(session, project, version, rollout, owner, truth[rollout.id])
    # A pairwise run over checkpoints whose quality is known: the ratings' order is known too.
    pair_version = make_version(session, project, "pairwise_preference")
    pair_rollouts = make_rollouts(session, project, 60, prefix="p")
    skill = {"ckpt-a": 0, "ckpt-b": 1, "ckpt-c": 2}
    for rollout in pair_rollouts:
        rollout.checkpoint = rng.choice(list(skill))
        session.add(rollout)
    session.commit()
    pairs = make_pairs(session, project, pair_rollouts)
    by_id = {r.id: r for r in pair_rollouts}
    shown = {}
    for pair in pairs:
        a, b = by_id[pair.rollout_a_id], by_id[pair.rollout_b_id]
        better = "A" if skill[a.checkpoint or ""] >= skill[b.checkpoint or ""] else "B"
        add_label(session, project, pair_version, a, owner, preference=better, pair=pair)
        shown[pair.id] = (better, "B" if better == "A" else "A")
    pair_run = make_pair_run(session, project, pair_version, shown, {p.id: p for p in pairs})

    _login(page, owner.email)
    page.goto(f"/projects/{project.id}/agreement")
    page.click("[data-testid=corrected-link]")
    page.select_option("[data-testid=corrected-run]", str(run.id))
    page.fill("[data-testid=corrected-checkpoint]", "step-400")
    page.click("[data-testid=corrected-submit]")
    result = page.locator("[data-testid=corrected-selection]")
    result.wait_for()
    assert result.get_attribute("data-n-selected") == "25"  # 40 at step 400, 15 labelled
    page.wait_for_url(lambda url: "checkpoint=step-400" in url)  # the selection is linkable
    sentence = page.locator(f"[data-testid=corrected-sentence-{KEYS[0]}]").inner_text()
    assert "The judge says" in sentence and "corrected for its error rate" in sentence
    assert "would pass" in sentence
    assert page.locator("[data-testid=corrected-mean]").is_visible()
    _shot(page, "corrected-estimates")

    page.fill("[data-testid=corrected-step-min]", "ten")
    page.click("[data-testid=corrected-submit]")
    error = page.locator("[data-testid=corrected-error]")
    error.wait_for()
    assert "whole number" in error.inner_text()
    assert page.locator("[data-testid=corrected-step-min]").input_value() == "ten"
    _shot(page, "corrected-error")

    # The run page bootstraps every figure: give it time on a loaded machine.
    page.goto(f"/projects/{project.id}/agreement/runs/{pair_run.id}", timeout=90_000)
    assert page.locator("[data-testid=ratings-judge] tbody tr").count() == 3
    page.wait_for_function(
        "() => { const c = document.querySelector('[data-testid=chart-ratings] canvas');"
        " return c && window.Chart && Chart.getChart(c) }"
    )
    tau = page.locator("[data-testid=ratings-tau]").inner_text()
    assert float(tau) > 0
    _shot(page, "checkpoint-ratings")
    # The only console messages are the browser's note of the refused (422) form.
    assert all("422" in m for m in page.console_errors)  # type: ignore[attr-defined]
