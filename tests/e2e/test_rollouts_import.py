"""In a real browser: upload a JSONL file, watch the import finish, then open a rollout whose
response is hostile HTML and check that it shows as text and nothing runs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.core.config import Settings
from app.worker import run_worker
from tests.support.factories import make_project, make_user
from tests.support.web import PASSWORD

pytestmark = pytest.mark.e2e

HOSTILE = (
    "Summary: <script>alert(1)</script> and <img src=x onerror=alert(2)> and "
    '<a href="javascript:alert(3)">a link</a>'
)


@pytest.fixture
def worker(engine: Engine, settings: Settings) -> Iterator[None]:
    """A background worker, as `rubric-studio worker` runs it (tests have no embedded one)."""
    settings.worker_poll_interval_s = 0.2
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(engine, settings, stop), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=20)


def rollout_file(tmp_path: Path) -> Path:
    rows = [
        {
            "id": f"c-{n}",
            "input": [{"role": "user", "content": f"Review clause {n}."}],
            "response": f"Clause {n} is fine.",
            "group": "contract-1",
            "step": n * 100,
        }
        for n in range(11)
    ]
    rows.append(
        {
            "id": "hostile",
            "input": [{"role": "user", "content": "<b>Review</b> this"}],
            "response": HOSTILE,
            "target_document": "<iframe src=javascript:alert(4)></iframe>",
        }
    )
    path = tmp_path / "rollouts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_upload_import_and_read_a_hostile_rollout_safely(
    page, session: Session, worker: None, tmp_path: Path
) -> None:
    engineer = make_user(session, "engineer@example.com")
    project = make_project(session, engineer, "Contract review")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto("/login")
    page.fill("input[name=email]", engineer.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=project-list]")

    page.goto(f"/projects/{project.id}/imports")
    page.set_input_files("[data-testid=import-file]", str(rollout_file(tmp_path)))
    page.click("[data-testid=import-submit]")

    page.wait_for_selector("[data-testid=import-progress]")  # the job page with its bar
    page.wait_for_selector("[data-testid=import-status][data-status=done]", timeout=30_000)
    assert page.inner_text("[data-testid=import-inserted]") == "12"
    assert page.get_attribute("[data-testid=import-progress]", "value") == "1000"
    assert "imported 12 rollouts" in page.inner_text("[data-testid=import-message]")

    page.click("[data-testid=import-rollouts-link]")
    page.wait_for_selector("[data-testid=rollout-list]")
    assert page.locator("[data-testid=rollout-row]").count() == 12
    page.click("[data-testid=rollout-row][data-rollout-id] >> text=hostile")

    page.wait_for_selector("[data-testid=response-text]")
    shown = page.inner_text("[data-testid=response-text]")
    assert "<script>alert(1)</script>" in shown
    assert "<img src=x onerror=alert(2)>" in shown
    assert '<a href="javascript:alert(3)">a link</a>' in shown
    assert "<iframe src=javascript:alert(4)></iframe>" in page.inner_text(
        "[data-testid=target-document]"
    )
    assert "<b>Review</b> this" in page.inner_text("[data-testid=rollout-input]")
    # Nothing from the rollout became an element.
    assert page.locator("main script, main img, main iframe, main b").count() == 0
    assert page.locator("main a[href^='javascript']").count() == 0
    page.wait_for_timeout(300)  # give an injected handler (onerror) the chance to fire
    assert dialogs == []
    assert page.console_errors == []
