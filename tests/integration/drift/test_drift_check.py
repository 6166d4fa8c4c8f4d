"""Judge drift check: the locked gold test split re-run with an export bundle's exact judge
settings as a normal judge run, compared with the manifest's figures, flipped items listed."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from app.core.errors import InvalidInput
from app.drift import check_service
from app.exports import service as export_service
from app.judging import engine as judge_engine
from app.judging.models import JudgeRun
from app.labels.models import GoldItem
from tests.integration.exports.world import build_world, label_gold, run_judge
from tests.support.judge_server import JudgeServer
from tests.support.web import csrf_for, data_testids, login


@pytest.fixture
def judge_server():
    with JudgeServer() as server:
        yield server


def _bundle(session: Session, world, run_id: int):
    return export_service.create_bundle(
        session,
        world.project,
        actor=world.engineer,
        can_override=True,
        rubric_version_id=world.version.id or 0,
        judge_config_id=world.judge.id or 0,
        run_id=run_id,
        override_reason="tests: a gate result is not what this checks",
    )


def test_drift_check_reruns_gold_with_the_bundles_judge_and_lists_flips(
    session: Session, engine, judge_server: JudgeServer, client
) -> None:
    world = build_world(session, judge_server.base_url)
    export_run = run_judge(session, engine, world)
    label_gold(session, world, export_run.id or 0, agree=True)
    bundle = _bundle(session, world, export_run.id or 0)
    # The configuration is edited after the export: the check must still use the bundle's.
    world.judge.model_id = "another-model"
    session.add(world.judge)
    session.commit()

    check = check_service.start_check(session, world.project, bundle, actor=world.engineer)
    run = session.get(JudgeRun, check.run_id)
    assert run.status == "queued" and run.selection["gold_split"] == "test"
    assert run.judge_snapshot["model_id"] == bundle.content["spec"]["judge"]["model_id"]
    assert (
        run.judge_snapshot["params"]["max_tokens"] == bundle.content["spec"]["judge"]["max_tokens"]
    )
    waiting = check_service.report(session, check, world.engineer)
    assert waiting.finished is False and waiting.flips == []

    judge_engine.work_on_run(engine, run.id or 0, judge_engine.EngineOptions(worker_id="t"))
    session.expire_all()
    same = check_service.report(session, check, world.engineer)
    assert same.finished and same.n_now == same.n_at_export
    assert all(row.change == 0 for row in same.figures if row.at_export is not None)
    assert same.flips == []

    # The judge behind the same settings now fails everything: agreement drops, flips listed.
    judge_server.mode = "harsh"  # every comment of every response scored lowest
    drifted = check_service.start_check(session, world.project, bundle, actor=world.engineer)
    judge_engine.work_on_run(engine, drifted.run_id, judge_engine.EngineOptions(worker_id="t"))
    session.expire_all()
    result = check_service.report(session, drifted, world.engineer)
    agreement = next(row for row in result.figures if row.key == "agreement")
    assert agreement.at_export == 1.0 and agreement.now < 1.0 and agreement.change < 0
    assert result.flips and {f.now for f in result.flips} == {"1"}
    assert all(f.at_export != f.now for f in result.flips)

    # The page (and its polling fragment, which stops once the run is done) and the API.
    login(client, world.engineer.email)
    url = f"/projects/{world.project.id}/drift-checks/{drifted.id}"
    page = client.get(url)
    assert page.status_code == 200
    assert {"check-figures", "check-flips"} <= data_testids(page.text)
    assert client.get(url, headers={"HX-Request": "true"}).status_code == 286
    api = client.get(f"/api/v1/projects/{world.project.id}/drift-checks/{drifted.id}").json()
    assert api["finished"] and len(api["flips"]) == len(result.flips)
    started = client.post(
        f"/api/v1/projects/{world.project.id}/exports/{bundle.id}/drift-checks",
        json={},
        headers={"X-CSRF-Token": csrf_for(client, url)},
    )
    assert started.status_code == 202, started.text
    assert started.json()["run_status"] == "queued"


def test_drift_check_needs_a_gold_test_split(session: Session, judge_server) -> None:
    world = build_world(session, judge_server.base_url)
    bundle = _bundle(session, world, None)
    for item in session.exec(select(GoldItem)).all():
        session.delete(item)
    session.commit()
    with pytest.raises(InvalidInput, match="gold test"):
        check_service.start_check(session, world.project, bundle, actor=world.engineer)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings):
    from app.core.config import get_settings

    monkeypatch.setenv("RS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("RS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RS_ENV", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_drift_check_waits_and_exits_by_result(
    cli_env, session: Session, engine, judge_server: JudgeServer
) -> None:
    from typer.testing import CliRunner

    from app.cli import cli

    world = build_world(session, judge_server.base_url)
    export_run = run_judge(session, engine, world)
    label_gold(session, world, export_run.id or 0, agree=True)
    bundle = _bundle(session, world, export_run.id or 0)
    runner = CliRunner()
    steady = runner.invoke(
        cli, ["drift", "check", "--bundle", str(bundle.id), "--wait", "--worker"]
    )
    assert steady.exit_code == 0, steady.output
    report = json.loads(steady.output[steady.output.index("{") :])
    assert report["finished"] and report["flips"] == []
    judge_server.mode = "harsh"  # every comment of every response scored lowest
    moved = runner.invoke(cli, ["drift", "check", "--bundle", str(bundle.id), "--wait", "--worker"])
    assert moved.exit_code == 3, moved.output
    missing = runner.invoke(cli, ["drift", "check", "--bundle", "999999"])
    assert missing.exit_code == 2 and "No export bundle" in missing.output
