"""An engineer tunes the reward configuration, previews rewards from a real judge run, probes
the saved reward, freezes an export whose gate passes, then downloads the TRL reward function,
in a real browser."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.core.config import Settings
from app.exports.models import ExportBundle
from app.rewards.models import RewardConfig
from app.worker import start_embedded_worker
from tests.e2e.test_judging_run import _number, _sign_in
from tests.integration.exports.world import GATE_PROBES, build_world, label_gold, run_judge
from tests.support.judge_server import JudgeServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def judge_server() -> Iterator[JudgeServer]:
    with JudgeServer() as server:
        yield server


def test_reward_config_preview_and_export_in_the_browser(
    page, session: Session, engine: Engine, settings: Settings, judge_server: JudgeServer
) -> None:
    world = build_world(session, judge_server.base_url)
    # The engine runs its own event loop; Playwright's occupies this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = pool.submit(run_judge, session, engine, world).result()
    label_gold(session, world, run.id or 0, agree=True)
    project_url = f"/projects/{world.project.id}"
    _sign_in(page, world.engineer.email)

    # Reward configuration: change the judge's weight and save (htmx), revision 1 appears.
    page.goto(f"{project_url}/rewards")
    assert "not saved yet" in page.inner_text("[data-testid=reward-revision]")
    page.fill("[data-testid='field-judge.weight']", "2")
    page.click("[data-testid=reward-save]")
    page.wait_for_function(
        "() => (document.querySelector('[data-testid=reward-revision]')?.innerText ?? '')"
        ".includes('revision 1')"
    )
    assert float(page.input_value("[data-testid='field-judge.weight']")) == 2.0
    session.expire_all()
    saved = session.exec(select(RewardConfig)).one()
    assert saved.revision == 1 and saved.config["judge"]["weight"] == 2

    # Reward preview over the run's stored verdicts, in place (no page load).
    page.select_option("[data-testid=reward-preview-form] select[name=run_id]", str(run.id))
    page.click("[data-testid=reward-preview-form] button[type=submit]")
    page.wait_for_selector("[data-testid=reward-preview]")
    assert _number(page, "preview-count") == len(world.rollouts)
    bins = page.eval_on_selector_all(
        "[data-testid=hist-bin]", "rows => rows.map(r => Number(r.dataset.count))"
    )
    assert sum(bins) == len(world.rollouts)
    components = page.eval_on_selector_all(
        "[data-testid=component-row]", "rows => rows.map(r => r.dataset.component)"
    )
    assert "judge" in components and "format" in components

    # Probe the reward as saved (the gate refuses a configuration never probed): the two
    # probes the export tests use, on the gold test split, judged by a worker.
    stop = start_embedded_worker(engine, settings)
    try:
        page.goto(f"{project_url}/probes")
        page.select_option("[data-testid=probe-split]", "test")
        page.fill("input[name=seed]", "5")
        for box in page.query_selector_all("input[name=probes]"):
            if box.is_checked() != (box.get_attribute("value") in GATE_PROBES):
                box.click()
        page.click("[data-testid=probe-start]")
        page.wait_for_selector("[data-testid=probe-report]", timeout=90_000)
        assert page.inner_text("[data-testid=probe-report-status]") == "no probe pays"
    finally:
        stop.set()

    # Freeze an export: the gate passes on the gold test split and the bundle page shows it.
    page.goto(f"{project_url}/exports")
    page.select_option("[data-testid=export-run]", str(run.id))
    page.click("[data-testid=export-submit]")
    page.wait_for_selector("[data-testid=gate-status]")
    assert page.inner_text("[data-testid=gate-status]") == "passed"
    assert "/exports/" in page.url
    bundle = session.exec(select(ExportBundle)).one()
    assert bundle.gate_passed
    assert page.inner_text("[data-testid=export-hash]").strip() == bundle.content_hash

    # The TRL reward function downloads as a Python file built from the frozen bundle.
    with page.expect_download() as download_info:
        page.click("[data-testid=download-trl]")
    download = download_info.value
    assert download.suggested_filename.endswith(".py")
    with open(download.path(), encoding="utf-8") as handle:
        source = handle.read()
    compile(source, download.suggested_filename, "exec")  # valid Python
    assert bundle.content_hash in source
    assert page.console_errors == []
