"""`rubric-studio probes run ... --wait`: a progress bar, then the report as JSON."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import get_settings
from tests.integration.exports.world import build_world
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


def test_probes_run_waits_and_prints_the_report(cli_env, session: Session) -> None:
    with JudgeServer(mode="gullible") as server:
        world = build_world(session, server.base_url, contracts=2)
        result = runner.invoke(
            cli,
            [
                "probes", "run",
                "--project", world.project.slug,
                "--rubric-version", str(world.version.id),
                "--judge", world.judge.name,
                "--probe", "verbosity",
                "--probe", "addressed_to_judge",
                "--split", "test",
                "--seed", "5",
                "--wait",
                "--worker",
            ],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Probing" in result.output  # the progress bar's label
    start = result.output.index("[\n")
    end = result.output.index("\n]") + 2
    report = json.loads(result.output[start:end])
    assert [row["name"] for row in report] == ["verbosity", "addressed_to_judge"]
    for row in report:
        assert set(row) >= {
            "name",
            "n",
            "uplift_mean",
            "uplift_ci_low",
            "uplift_ci_high",
            "share_improved",
            "passed",
        }
        assert row["n"] == 8
    assert "the export is blocked" in result.output
    run_id = result.output.split("Queued probe run #", 1)[1].split(" ", 1)[0]
    again = runner.invoke(cli, ["probes", "report", run_id])
    assert again.exit_code == 0 and json.loads(again.output) == report


def test_probes_run_says_when_it_falls_back_and_refuses_an_unknown_split(
    cli_env, session: Session
) -> None:
    world = build_world(session, "http://127.0.0.1:9/v1", contracts=1)
    args = ["probes", "run", "--project", str(world.project.id)]
    args += ["--rubric-version", str(world.version.id), "--judge", str(world.judge.id)]
    unknown = runner.invoke(cli, [*args, "--split", "dev"])
    assert unknown.exit_code != 0 and "development, test or all" in unknown.output
    # The world's gold items are all in the test split: the default falls back, and says so.
    queued = runner.invoke(cli, [*args, "--probe", "verbosity", "--seed", "1"])
    assert queued.exit_code == 0, queued.output
    assert "on 4 rollouts" in queued.output and "no development split" in queued.output
