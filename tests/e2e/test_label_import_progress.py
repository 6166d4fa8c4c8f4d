"""In a real browser: a large label file uploaded on the labeling page opens its import job's
page, whose progress bar the page refreshes (htmx polling) until the worker has stored every
label; the counts and the rubric version's id are shown."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from app.core.config import Settings
from app.labels.models import Label
from app.worker import run_worker
from tests.support.factories import make_project, make_rollouts, make_user, make_version
from tests.support.web import PASSWORD

pytestmark = pytest.mark.e2e

SHOTS = os.environ.get("RS_E2E_SHOTS")


@pytest.fixture
def worker(engine: Engine, settings: Settings) -> Iterator[None]:
    settings.worker_poll_interval_s = 0.2
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(engine, settings, stop), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=20)


def test_a_large_label_file_shows_its_progress(
    page, session: Session, tmp_path: Path, worker: None
) -> None:
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Label import")
    version = make_version(session, project)
    make_rollouts(session, project, 300)
    critique = "The answer cites the clause but misses the indemnity cap. " * 5
    lines = [
        json.dumps(
            {
                "rollout": f"r-{i:04d}",
                "annotator": "Counsel K.",
                "values": {"Safe": "pass", "Clear": i % 3 != 0},
                "overall_critique": critique,
            }
        )
        for i in range(300)
    ]
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size > 64 * 1024  # imported as a job

    page.goto("/login")
    page.fill("input[name=email]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    page.goto(f"/projects/{project.id}/labels")
    form = page.locator("[data-testid=import-form]")
    form.locator("input[name=file]").set_input_files(str(path))
    form.locator("select[name=rubric_version_id]").select_option(str(version.id))
    page.click("[data-testid=import-submit]")
    page.wait_for_url(lambda url: "/imports/" in url)
    assert page.locator("[data-testid=import-progress]").count() == 1
    status = page.locator("[data-testid=import-status]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=import-status]')"
        "?.getAttribute('data-status') === 'done'",
        timeout=30_000,
    )
    assert status.get_attribute("data-status") == "done"
    assert page.locator("[data-testid=import-inserted]").inner_text() == "300"
    assert page.locator("[data-testid=import-progress]").get_attribute("value") == "1000"
    assert "300 labels imported" in page.locator("[data-testid=import-message]").inner_text()
    assert f"version id {version.id}" in status.inner_text()
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "label-import-done.png"), full_page=True)
    count = session.exec(select(func.count()).where(Label.project_id == project.id)).one()
    assert count == 300
    assert not page.console_errors  # type: ignore[attr-defined]
