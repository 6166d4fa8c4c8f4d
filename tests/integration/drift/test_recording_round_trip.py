"""Drift samples out of training and back into the studio, end to end:

- the exported TRL function POSTs its records to the studio's API (a real HTTP server running
  the app) and a worker imports them with the trainer's steps;
- the exported Nova Lambda, unzipped into a fresh folder with only what it declares, writes to a
  moto S3 bucket, and the studio's S3 import reads them back unchanged.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
import uvicorn
from moto import mock_aws
from sqlmodel import Session, col, select

from app.auth import service as auth_service
from app.drift import service as drift_service
from app.drift.models import DriftSample, TrainingRun
from app.exports.targets.trl_verl import build_module
from app.rewards.config import RewardConfigModel
from app.rollouts.models import Rollout, RolloutImport
from tests.integration.drift.conftest import run_drift_worker
from tests.unit.exports.builders import legal_content
from tests.unit.exports.test_drift_lambda import lambda_drift_run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_url(app):
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trl_function_sends_samples_to_the_studio_api(
    monkeypatch, tmp_path: Path, session: Session, engine, settings, drift_world, live_url
) -> None:
    token = auth_service.create_api_token(session, drift_world.engineer, name="trainer").token
    monkeypatch.setenv("RUBRIC_STUDIO_TOKEN", token)
    config = RewardConfigModel.model_validate(
        {
            "drift": {
                "enabled": True,
                "sample_rate": 1.0,
                "training_run": "trl-live",
                "trainer_destination": "api",
                "api_url": live_url,
                "api_project": str(drift_world.project.id),
            }
        }
    ).as_dict()
    path = tmp_path / "reward_api.py"
    path.write_text(build_module(legal_content(reward=config)))
    module = _load(path, "reward_api_under_test")
    for step in (3, 9):
        module.reward_func_sync(
            prompts=["Review it", "Review it"],
            completions=["Looks fine.", "All good."],
            trainer_state=SimpleNamespace(global_step=step),
        )
    drift = module.get_engine().drift
    assert drift.flush(15.0) and drift.stats["written"] == 4, drift.stats
    jobs = session.exec(
        select(RolloutImport).where(RolloutImport.project_id == drift_world.project.id)
    ).all()
    for job in jobs:
        run_drift_worker(engine, settings, job.id or 0)
    run = drift_service.find_training_run(session, drift_world.project.id or 0, "trl-live")
    assert run is not None
    samples = session.exec(
        select(DriftSample)
        .where(DriftSample.training_run_id == run.id)
        .order_by(col(DriftSample.step))
    ).all()
    assert [s.step for s in samples] == [3, 3, 9, 9]
    assert {s.source for s in samples} == {"trl"} and {s.reward for s in samples} == {0.0}
    assert all(s.rollout_id is not None for s in samples)


def test_nova_lambda_samples_in_s3_import_back_unchanged(
    tmp_path: Path, session: Session, engine, settings, drift_world, demo_rollouts_for_drift
) -> None:
    result = lambda_drift_run(tmp_path, demo_rollouts_for_drift)
    written = [
        json.loads(line) for text in result["objects"].values() for line in text.splitlines()
    ]
    assert len(written) == 6
    run = drift_service.create_training_run(
        session, drift_world.project, drift_world.engineer, name="nova-legal-1"
    )
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="drift-bucket")
        for key, text in result["objects"].items():
            s3.put_object(Bucket="drift-bucket", Key=key, Body=gzip.compress(text.encode()))
        job = drift_service.create_drift_import(
            session,
            settings,
            drift_world.project,
            run,
            drift_world.engineer,
            filename="s3",
            s3={"bucket": "drift-bucket", "prefix": "runs/nova-legal-1/"},
        )
        done = run_drift_worker(engine, settings, job.id or 0)
    assert done.status == "done", done.model_dump()
    stored = {
        s.record_id: s
        for s in session.exec(select(DriftSample).where(DriftSample.training_run_id == run.id))
    }
    assert set(stored) == {r["id"] for r in written}
    for record in written:
        sample = stored[record["id"]]
        assert sample.reward == record["reward"] and sample.source == "nova-lambda"
        assert sample.sample_id == record["sample_id"] and sample.group_id == record["group_id"]
        assert sample.gated_by == record["gated_by"]
        assert sample.judge_status == record["judge"]["status"]
        expected = {k: float(v) for k, v in record["judge"]["criteria"].items()}
        assert sample.judge_criteria == expected
        assert sample.components == record["components"]
        assert sample.recorded_at.isoformat().startswith(record["recorded_at"][:19])
        rollout = session.get(Rollout, sample.rollout_id)
        assert rollout is not None and rollout.response == record["rollout"]["response"]
    session.refresh(run)
    assert isinstance(run, TrainingRun) and run.sample_count == 6


@pytest.fixture(scope="session")
def demo_rollouts_for_drift():
    from tests.unit.exports.builders import demo_sample_rollouts

    return demo_sample_rollouts()
