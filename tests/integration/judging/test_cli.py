"""`rubric-studio judge ...`: run with a progress bar (judged in-process), cancel, resume,
import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import get_settings
from app.judging.models import JudgeRun, Verdict
from tests.support.factories import (
    insert_rollouts,
    make_judge_config,
    make_project,
    make_user,
    make_version,
)
from tests.support.judge_server import JudgeServer

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings):
    monkeypatch.setenv("RS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("RS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RS_ENV", "test")
    monkeypatch.setenv("RS_WORKER_POLL_INTERVAL_S", "0.1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_judge_run_waits_with_a_progress_bar_until_the_run_completes(
    cli_env, session: Session
) -> None:
    project = make_project(session, make_user(session), "CLI judging")
    version = make_version(session, project, name="Generic checks")
    insert_rollouts(session, project, 12)
    with JudgeServer() as server:
        make_judge_config(session, project, base_url=server.base_url, name="local")
        result = runner.invoke(
            cli,
            [
                "judge", "run",
                "--project", project.slug,
                "--rubric-version", "Generic checks:1",
                "--judge", "local",
                "--sample", "5",
                "--repeats", "2",
                "--wait",
                "--worker",
            ],
        )  # fmt: skip
        requests = server.requests
    assert result.exit_code == 0, result.output
    assert "Estimate: 10 calls per judge" in result.output
    assert "Judging" in result.output  # the progress bar's label
    assert "completed; 10/10 done, 0 errors" in result.output
    run = session.exec(select(JudgeRun)).one()
    assert run.status == "completed" and run.rubric_version_id == version.id
    assert requests == 10
    assert len(session.exec(select(Verdict)).all()) == 10


def test_judge_run_without_wait_only_queues(cli_env, session: Session) -> None:
    project = make_project(session, make_user(session), "CLI queue")
    version = make_version(session, project)
    insert_rollouts(session, project, 3)
    config = make_judge_config(session, project)
    result = runner.invoke(
        cli,
        ["judge", "run", "--project", str(project.id), "--rubric-version", str(version.id),
         "--judge", str(config.id)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = session.exec(select(JudgeRun)).one()
    assert f"Queued judge run #{run.id} (3 items)" in result.output
    assert run.status == "queued"

    cancelled = runner.invoke(cli, ["judge", "cancel", str(run.id)])
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    again = runner.invoke(cli, ["judge", "cancel", str(run.id)])
    assert again.exit_code == 1 and "only a queued or running run" in again.output
    resumed = runner.invoke(cli, ["judge", "resume", str(run.id)])
    assert resumed.exit_code == 0
    session.refresh(run)
    assert run.status == "queued"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "nope", "--rubric-version", "1", "--judge", "1"], "No project 'nope'"),
        (["--rubric-version", "No such rubric", "--judge", "1"], "No published version"),
        (["--rubric-version", "{version}", "--judge", "ghost"], "No judge configuration 'ghost'"),
        (["--rubric-version", "{version}", "--judge", "{config}", "--repeats", "0"], "repeats"),
    ],
)
def test_judge_run_explains_bad_options(
    cli_env, session: Session, args: list[str], message: str
) -> None:
    project = make_project(session, make_user(session), "CLI errors")
    version = make_version(session, project)
    insert_rollouts(session, project, 1)
    config = make_judge_config(session, project)
    filled = [a.format(version=version.id, config=config.id) for a in args]
    if "--project" not in filled:
        filled = ["--project", project.slug, *filled]
    result = runner.invoke(cli, ["judge", "run", *filled])
    assert result.exit_code == 1, result.output
    assert message in result.output


def test_import_verdicts_from_the_command_line(cli_env, session: Session, tmp_path: Path) -> None:
    project = make_project(session, make_user(session), "CLI import")
    version = make_version(session, project)
    insert_rollouts(session, project, 2)
    scores = {c["key"]: True for c in version.definition["criteria"]}
    good = tmp_path / "verdicts.jsonl"
    good.write_text(
        "\n".join(
            json.dumps({"rollout_id": f"r-{i}", "judge": "legacy-judge", "scores": scores})
            for i in range(2)
        )
    )
    result = runner.invoke(
        cli,
        ["judge", "import-verdicts", str(good), "--project", project.slug,
         "--rubric-version", str(version.id)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Imported 2 verdicts" in result.output and "legacy-judge" in result.output

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"rollout_id": "r-9", "judge": "x", "scores": scores}) + "\n")
    failed = runner.invoke(
        cli,
        ["judge", "import-verdicts", str(bad), "--project", project.slug,
         "--rubric-version", str(version.id)],
    )  # fmt: skip
    assert failed.exit_code == 1
    assert "line 1: rollout_id" in failed.output and "no rollout with id 'r-9'" in failed.output


def test_judge_test_connection_prints_the_answer_or_the_error(cli_env, session: Session) -> None:
    project = make_project(session, make_user(session), "CLI connection")
    with JudgeServer() as server:
        make_judge_config(session, project, base_url=server.base_url, name="local")
        ok = runner.invoke(cli, ["judge", "test-connection", project.slug, "local"])
    assert ok.exit_code == 0, ok.output
    assert "local: connected; judge-test answered in" in ok.output
    make_judge_config(session, project, base_url="http://127.0.0.1:9/v1", name="nowhere")
    refused = runner.invoke(cli, ["judge", "test-connection", project.slug, "nowhere"])
    assert refused.exit_code == 1
    assert "nowhere: the judge could not be reached or refused" in refused.output
