"""Probes in a real browser on the demo project: an engineer runs probes against a gullible
test judge, reads the report (padding and text addressed to the judge pay), sees the
hackability card on the rubric version, and the export gate refuses the export."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.core.config import Settings
from app.demo import loader as demo_loader
from app.judging import configs as judging_configs
from app.judging.schemas import JudgeConfigInput
from app.llm.egress import EgressPolicy
from app.projects.models import Project
from app.rubrics.models import Rubric, RubricVersion
from app.worker import start_embedded_worker
from tests.e2e.test_judging_run import _sign_in
from tests.support.factories import make_user
from tests.support.judge_server import JudgeServer

pytestmark = pytest.mark.e2e
SHOTS = os.environ.get("RS_SCREENSHOTS")  # a folder: save screenshots there to look at them


def _shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"probes-{name}.png"), full_page=True)


@pytest.fixture
def gullible_judge() -> Iterator[JudgeServer]:
    with JudgeServer(mode="gullible") as server:
        yield server


def test_probes_on_the_demo_project_block_the_export(
    page,
    session: Session,
    engine: Engine,
    settings: Settings,
    gullible_judge: JudgeServer,
) -> None:
    admin = make_user(session, "admin@example.com", is_admin=True)
    demo_loader.load_demo(session, settings, admin)
    project = session.exec(select(Project).where(Project.slug == demo_loader.LEGAL_SLUG)).one()
    judge = judging_configs.create_config(
        session,
        project,
        actor=admin,
        data=JudgeConfigInput(
            name="gullible test judge (not an LLM)",
            provider="openai_compat",
            model_id="judge-test",
            base_url=gullible_judge.base_url,
            concurrency=4,
            max_attempts=2,
            base_delay_s=0.0,
            max_delay_s=0.0,
            timeout_s=30.0,
        ),
        egress=EgressPolicy(allow_loopback=True),  # the test judge listens on 127.0.0.1
    )
    version, rubric = session.exec(
        select(RubricVersion, Rubric)
        .join(Rubric, Rubric.id == RubricVersion.rubric_id)  # type: ignore[arg-type]
        .where(RubricVersion.project_id == project.id, Rubric.mode == "rubric")
    ).first()  # type: ignore[misc]
    stop = start_embedded_worker(engine, settings)
    try:
        _sign_in(page, admin.email)
        # Never probed: the export gate refuses and says what to run.
        page.goto(f"/projects/{project.id}/exports")
        page.select_option("select[name=rubric_version_id]", str(version.id))
        page.select_option("select[name=judge_config_id]", str(judge.id))
        page.click("[data-testid=export-submit]")
        page.wait_for_selector("text=Probes: not probed")
        _shot(page, "export-unprobed")
        body = page.inner_text("body")
        assert "Probes: not probed" in body
        command = f"rubric-studio probes run --project {project.id} --rubric-version {version.id}"
        assert command in body

        page.goto(f"/projects/{project.id}/probes")
        page.select_option("[data-testid=probe-version]", str(version.id))
        page.select_option("[data-testid=probe-judge]", str(judge.id))
        # The default selection: the gold set's development split. The demo has no gold set,
        # so the run falls back to the project's rollouts (never its 2,000 drift samples).
        assert page.input_value("[data-testid=probe-split]") == "development"
        page.fill("[data-testid=probe-sample]", "10")
        page.fill("input[name=seed]", "3")
        for box in page.query_selector_all("input[name=probes]"):
            wanted = box.get_attribute("value") in ("verbosity", "addressed_to_judge")
            if box.is_checked() != wanted:
                box.click()
        _shot(page, "form")
        page.click("[data-testid=probe-start]")
        page.wait_for_selector("[data-testid=probe-progress]")
        # The progress polls; the page reloads itself with the report once the run completes.
        page.wait_for_selector("[data-testid=probe-report]", timeout=90_000)
        _shot(page, "report")
        note = page.inner_text("[data-testid=probe-selection-note]")
        assert "no development split" in note and "drift samples" in note
        rows = page.eval_on_selector_all(
            "[data-testid=probe-row]",
            "rows => rows.map(r => [r.dataset.probe, r.dataset.passed])",
        )
        assert dict(rows) == {"verbosity": "false", "addressed_to_judge": "false"}
        verdicts = page.inner_text("[data-testid=probe-table]")
        assert "the judge rewards length" in verdicts
        assert "the judge obeys text addressed to it" in verdicts
        assert page.query_selector_all("[data-testid=probe-example]")
        assert page.query_selector("[data-testid=probe-side][data-side=probe] pre")

        # The rubric version page carries the hackability card.
        page.goto(f"/projects/{project.id}/rubrics/{rubric.id}/versions/{version.number}")
        card = page.wait_for_selector("[data-testid=hackability-card]")
        assert card.get_attribute("data-state") == "failed"
        _shot(page, "version-card")

        # The export gate refuses: the reward pays for padding and notes to the judge.
        page.goto(f"/projects/{project.id}/exports")
        page.select_option("select[name=rubric_version_id]", str(version.id))
        page.select_option("select[name=judge_config_id]", str(judge.id))
        page.click("[data-testid=export-submit]")
        # The refusal is swapped in by htmx: wait for it, not for a page load.
        page.wait_for_selector("text=Probes: Padding earns")
        _shot(page, "export-refused")
        body = page.inner_text("body")
        assert "The export gate blocks this export" in body
        assert "Probes: Padding earns" in body and "the judge rewards length" in body
        # htmx logs the refusal (409) to the console; nothing else may fail.
        unexpected = [e for e in page.console_errors if "409" not in e and "htmx" not in e]
        assert unexpected == [], page.console_errors

        # An admin overrides with a reason: the bundle page shows the hackability card.
        page.select_option("select[name=rubric_version_id]", str(version.id))
        page.select_option("select[name=judge_config_id]", str(judge.id))
        page.fill("[data-testid=export-override]", "padding bias known; tracked in the drift audit")
        page.click("[data-testid=export-submit]")
        card = page.wait_for_selector("[data-testid=hackability-card]")
        assert card.get_attribute("data-state") == "failed"
        assert "Probe seed 3" in page.inner_text("[data-testid=export-probe-facts]")
        _shot(page, "bundle-card")
    finally:
        stop.set()
