"""An engineer starts a judge run in a real browser, watches its progress update live, and
cancels it; the judge server then stops receiving calls."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.judging.models import JudgeRun
from app.worker import start_embedded_worker
from tests.support.factories import (
    insert_rollouts,
    make_judge_config,
    make_project,
    make_user,
    make_version,
)
from tests.support.judge_server import JudgeServer
from tests.support.web import PASSWORD

pytestmark = pytest.mark.e2e


@pytest.fixture
def judge_server() -> Iterator[JudgeServer]:
    with JudgeServer(latency_s=0.2) as server:
        yield server


def _sign_in(page, email: str) -> None:
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def _number(page, testid: str) -> int:
    return int(page.inner_text(f"[data-testid={testid}]").replace(",", ""))


def test_live_progress_and_cancel_in_the_browser(
    page, session: Session, engine: Engine, settings, judge_server: JudgeServer
) -> None:
    engineer = make_user(session, "judge-engineer@example.com")
    project = make_project(session, engineer, "Browser judging")
    make_version(session, project)
    insert_rollouts(session, project, 80)
    make_judge_config(session, project, base_url=judge_server.base_url, concurrency=2)
    settings.worker_poll_interval_s = 0.2
    stop = start_embedded_worker(engine, settings)
    try:
        _sign_in(page, engineer.email)
        page.goto(f"/projects/{project.id}/judges/runs/new")
        page.click("[data-testid=estimate-button]")
        page.wait_for_selector("[data-testid=estimate]")
        assert "80</strong> subjects" in page.inner_html("[data-testid=estimate]")
        page.click("[data-testid=run-start]")
        page.wait_for_selector("[data-testid=run-progress]")
        assert "/judges/runs/" in page.url

        # The numbers change without reloading the page (htmx polls the progress fragment).
        page.wait_for_function(
            "() => Number(document.querySelector('[data-testid=progress-done]')?.innerText ?? 0)"
            " > 0"
        )
        first = _number(page, "progress-done")
        done_js = "Number(document.querySelector('[data-testid=progress-done]')?.innerText ?? 0)"
        page.wait_for_function(f"() => {done_js} > {first}")
        assert page.inner_text("[data-testid=progress-status]") == "running"
        assert page.inner_text("[data-testid=progress-rate]") != "—"
        assert _number(page, "progress-total") == 80

        page.click("[data-testid=run-cancel]")
        page.wait_for_selector("[data-testid=run-resume]")
        assert page.inner_text("[data-testid=progress-status]") == "cancelled"
        at_cancel = judge_server.requests

        # The worker stops calling the judge: the server's counter settles, well short of 80.
        settled, last = 0, at_cancel
        while settled < 10:
            time.sleep(0.2)
            current = judge_server.requests
            settled = settled + 1 if current == last else 0
            last = current
        assert last - at_cancel <= 6
        assert last < 80

        session.expire_all()
        run = session.exec(select(JudgeRun)).one()
        assert run.status == "cancelled" and run.items_done < 80
        # The progress element no longer polls once the run has ended.
        assert page.get_attribute("[data-testid=run-progress]", "hx-trigger") is None
        assert page.console_errors == []
    finally:
        stop.set()
