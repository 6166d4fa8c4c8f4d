"""`rubric-studio import` runs an import inline; the demo loader imports the legal and the
preference demo through the same service, once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.audit.models import AuditEvent
from app.cli import cli
from app.core.config import Settings, get_settings
from app.demo import drift as demo_drift
from app.demo import loader
from app.demo.legal import ATTRIBUTION
from app.projects.models import Project
from app.rollouts.models import Rollout, RolloutImport
from tests.integration.rollouts.conftest import World, jsonl, pair_count, rollout_count, studio_row
from tests.support.factories import make_user
from tests.support.web import data_testids, find_all, login

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[None]:
    monkeypatch.setenv("RS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("RS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RS_ENV", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_import_runs_inline_and_keeps_the_file(
    cli_env: None, session: Session, world: World, tmp_path: Path
) -> None:
    path = tmp_path / "run.jsonl"
    path.write_bytes(jsonl([studio_row(n) for n in range(25)]))
    args = ["import", str(path), "--project", str(world.pid), "--user", world.engineer.email]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "run.jsonl: imported 25 rollouts" in result.output
    assert rollout_count(session, world.pid) == 25
    assert path.exists(), "the CLI must not delete the user's file"
    job = session.exec(select(RolloutImport)).one()
    assert (job.status, job.created_by_id, job.attempts) == ("done", world.engineer.id, 1)

    again = runner.invoke(cli, args)
    assert again.exit_code == 0
    assert "0 rollouts; 25 rollouts already imported before (skipped)" in again.output


def test_cli_import_reports_problems_and_fails(
    cli_env: None, session: Session, world: World, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(jsonl([studio_row(1), {"input": [], "response": "x"}]))
    result = runner.invoke(cli, ["import", str(path), "--project", str(world.pid)])
    assert result.exit_code == 1
    assert "1 line of 2 has problems, so nothing was imported" in result.output
    assert (
        "line 2, field 'input': expected at least one message, got an empty list" in result.output
    )
    skipped = runner.invoke(
        cli, ["import", str(path), "--project", str(world.pid), "--skip-invalid"]
    )
    assert skipped.exit_code == 0, skipped.output
    assert rollout_count(session, world.pid) == 1


def test_cli_import_refuses_bad_arguments(cli_env: None, world: World, tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[{"input": []}]')
    refused = runner.invoke(cli, ["import", str(path), "--project", str(world.pid)])
    assert refused.exit_code == 1
    assert "a.json: the file is a JSON array" in refused.output
    no_project = runner.invoke(cli, ["import", str(path), "--project", "999"])
    # The same words and exit status as every command (app/cli_support.py).
    assert (
        no_project.exit_code == 1 and "No project '999' (give its id or slug)" in no_project.output
    )
    bad_format = runner.invoke(
        cli, ["import", str(path), "--project", str(world.pid), "--format", "xml"]
    )
    assert bad_format.exit_code == 1 and "unknown format 'xml'" in bad_format.output
    assert runner.invoke(cli, ["import", "--help"]).exit_code == 0


def test_demo_loads_grouped_legal_rollouts_and_pairs_once(
    session: Session, settings: Settings, client: TestClient
) -> None:
    admin = make_user(session, "admin@demo.example.com")
    summary = loader.load_demo(session, settings, admin)
    assert "48 rollouts in 12 groups" in summary and "12 preference pairs" in summary
    assert "200 pairs with expert labels, 2 GPT-4 runs" in summary  # the calibration demo
    legal = session.exec(select(Project).where(Project.slug == loader.LEGAL_SLUG)).one()
    pairs = session.exec(select(Project).where(Project.slug == loader.PREFERENCE_SLUG)).one()
    # The 48 curated rollouts, plus the synthetic training run's samples (each is a rollout).
    drift_samples = demo_drift.GROUPS * demo_drift.GROUP_SIZE
    assert rollout_count(session, legal.id or 0) == 48 + drift_samples
    assert (rollout_count(session, pairs.id or 0), pair_count(session, pairs.id or 0)) == (24, 12)
    groups = set(session.exec(select(Rollout.group_key).where(Rollout.project_id == legal.id)))
    assert len(groups) == 12 + demo_drift.GROUPS

    again = loader.load_demo(session, settings, admin)
    assert again.count("Demo project already loaded") == 3
    assert rollout_count(session, legal.id or 0) == 48 + drift_samples
    imports = session.exec(select(RolloutImport)).all()
    # legal, preference pairs, calibration pairs, and the training run's drift samples
    assert len(imports) == 4, "running the demo again must not import again"
    assert session.exec(select(AuditEvent).where(AuditEvent.action == "rollout.import.done")).all()

    login(client, "admin@demo.example.com")
    page = client.get(f"/projects/{legal.id}/rollouts/groups")
    assert len(find_all(page.text, "data-testid", "group-row")) >= 12
    assert "attribution" in data_testids(page.text)
    assert "CUAD" in ATTRIBUTION and "CC BY 4.0" in page.text
    first = session.exec(select(Rollout).where(Rollout.project_id == legal.id)).first()
    assert first is not None
    detail = client.get(f"/projects/{legal.id}/rollouts/{first.id}")
    assert {"target-document", "rollout-response", "attribution"} <= data_testids(detail.text)
