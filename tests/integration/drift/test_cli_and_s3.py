"""`rubric-studio drift ...` and imports from an S3 prefix (moto; no real AWS is reached)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings, get_settings
from app.drift import service as drift_service
from app.drift.models import DriftSample
from app.drift.synthetic import records, step_log
from tests.integration.drift.conftest import DriftWorld, jsonl, run_drift_worker

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[None]:
    monkeypatch.setenv("RS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("RS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RS_ENV", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def _samples(session: Session, run_id: int | None) -> int:
    query = (
        select(func.count()).select_from(DriftSample).where(DriftSample.training_run_id == run_id)
    )
    return int(session.exec(query).one())


def test_cli_import_is_idempotent_and_series_and_signals_print(
    cli_env: None, tmp_path: Path, session: Session, drift_world: DriftWorld
) -> None:
    path = tmp_path / "samples.jsonl.gz"
    path.write_bytes(jsonl(records(2000, run="nova-1", steps=600, gaming_from=350), gz=True))
    slug = drift_world.project.slug
    args = ["drift", "import", str(path), "--project", slug, "--training-run", "nova-1"]
    missing = runner.invoke(cli, args)
    assert missing.exit_code == 2 and "--create" in missing.output
    result = runner.invoke(cli, [*args, "--create"])
    assert result.exit_code == 0, result.output
    assert "imported 2,000 drift samples" in result.output
    again = runner.invoke(cli, args)
    assert again.exit_code == 0 and "2,000 already imported" in again.output
    run = drift_service.find_training_run(session, drift_world.project.id or 0, "nova-1")
    assert run is not None and _samples(session, run.id) == 2000
    series = runner.invoke(cli, ["drift", "series", "--project", slug, "--training-run", "nova-1"])
    assert series.exit_code == 0 and json.loads(series.output)["bucket_width"] == 50
    signals = runner.invoke(
        cli, ["drift", "signals", "--project", slug, "--training-run", "nova-1"]
    )
    assert signals.exit_code == 3  # something fired
    assert "length_hacking" in {s["kind"] for s in json.loads(signals.output)}


def test_cli_reports_bad_lines_by_line_and_field(
    cli_env: None, tmp_path: Path, drift_world: DriftWorld
) -> None:
    rows = list(records(3, run="run-1", steps=2))
    rows[1]["reward"] = None
    path = tmp_path / "bad.jsonl"
    path.write_bytes(jsonl(rows))
    result = runner.invoke(
        cli,
        [
            "drift",
            "import",
            str(path),
            "--project",
            drift_world.project.slug,
            "--training-run",
            "run-1",
        ],
    )
    assert result.exit_code == 1
    assert "line 2, field 'reward'" in result.output


def test_import_from_an_s3_prefix_with_gzip_objects_and_a_step_map(
    aws: None, session: Session, settings: Settings, engine: Engine, drift_world: DriftWorld
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="rft-drift")
    rows = list(records(90, run="run-1", steps=29, with_step=False))
    for part in range(3):
        body = "".join(json.dumps(r) + "\n" for r in rows[part * 30 : (part + 1) * 30]).encode()
        key = f"runs/run-1/batch-{part}.jsonl" + (".gz" if part % 2 else "")
        s3.put_object(Bucket="rft-drift", Key=key, Body=gzip.compress(body) if part % 2 else body)
    s3.put_object(Bucket="rft-drift", Key="other/x.jsonl", Body=b"not json\n")
    job = drift_service.create_drift_import(
        session,
        settings,
        drift_world.project,
        drift_world.run,
        drift_world.engineer,
        filename="s3",
        s3={"bucket": "rft-drift", "prefix": "runs/run-1/"},
    )
    finished = run_drift_worker(engine, settings, job.id or 0)
    assert finished.status == "done", finished.message
    assert finished.inserted == 90
    assert not Path(finished.stored_path).exists()  # the downloaded copy is removed
    drift_service.set_step_map(session, drift_world.run, drift_world.engineer, step_log(29))
    assert drift_service.unstepped_count(session, drift_world.run) == 0
    data = drift_service.series(session, drift_world.run)
    assert sum(b["n"] for b in data.buckets) == 90


def test_s3_prefix_without_objects_fails_in_plain_words(
    aws: None, session: Session, settings: Settings, engine: Engine, drift_world: DriftWorld
) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="empty-bucket")
    job = drift_service.create_drift_import(
        session,
        settings,
        drift_world.project,
        drift_world.run,
        None,
        filename="s3",
        s3={"bucket": "empty-bucket", "prefix": "nothing/"},
    )
    finished = run_drift_worker(engine, settings, job.id or 0)
    assert (
        finished.status == "failed"
        and "no objects under s3://empty-bucket/nothing/" in finished.message
    )
