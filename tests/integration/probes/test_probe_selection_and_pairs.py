"""Which rollouts a probe run takes (the gold set's development split by default, all rollouts
with a note when it has none; never drift samples or earlier probe rewrites), and the probes
that judge a pair: position (the pair swapped) and self-consistency (judged again), through
the API and the worker against gullible, robust and noisy test judges."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.auth import service as auth_service
from app.core.config import Settings
from app.drift.models import DriftSample, TrainingRun
from app.judging.models import JudgeRun
from app.labels.models import GoldItem
from app.projects.models import Project
from app.rollouts.models import Rollout
from app.worker import run_worker
from tests.support.factories import (
    insert_pairs,
    insert_rollouts,
    make_judge_config,
    make_project,
    make_user,
    make_version,
)
from tests.support.judge_server import JudgeServer


def _setup(session: Session) -> tuple[Project, dict[str, str]]:
    owner = make_user(session, "owner@example.com")
    engineer = make_user(session, "engineer@example.com")
    project = make_project(session, owner, "Probes", members=[(engineer, "engineer")])
    token = auth_service.create_api_token(session, engineer, name="tests").token
    return project, {"Authorization": f"Bearer {token}"}


def _drift_samples(session: Session, project: Project, rollout_ids: list[int]) -> None:
    """Record these rollouts as drift samples of a training run (as a drift import does)."""
    run = TrainingRun(project_id=project.id or 0, name="run-1", synthetic=True)
    session.add(run)
    session.flush()
    for index, rollout_id in enumerate(rollout_ids):
        session.add(
            DriftSample(
                project_id=project.id or 0,
                training_run_id=run.id or 0,
                record_id=f"s{index}",
                content_hash=f"{index:064d}",
                rollout_id=rollout_id,
                step=index,
                recorded_at=datetime(2026, 12, 1, tzinfo=UTC),
                reward=0.5,
            )
        )
    session.commit()


def _start(client: TestClient, project: Project, headers: dict, **body) -> dict:
    response = client.post(f"/api/v1/projects/{project.id}/probe-runs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _finish(client: TestClient, project, headers, run: dict, engine, settings) -> dict:
    run_worker(engine, settings, once=True)
    done = client.get(f"/api/v1/projects/{project.id}/probe-runs/{run['id']}", headers=headers)
    body = done.json()
    assert body["status"] == "completed", body["message"]
    return body


def _originals(session: Session, run_id: int) -> list[int]:
    from app.probes.models import ProbeRun

    session.expire_all()
    run = session.get(ProbeRun, run_id)
    assert run is not None
    return list(run.selection["rollout_ids"])


def test_probes_take_the_development_split_and_never_drift_samples_or_rewrites(
    client: TestClient, session: Session, engine, settings: Settings
) -> None:
    project, headers = _setup(session)
    version = make_version(session, project)
    policy = insert_rollouts(session, project, 4, prefix="policy")
    recorded = insert_rollouts(session, project, 6, prefix="drift")
    _drift_samples(session, project, recorded)
    with JudgeServer(mode="robust") as server:
        judge = make_judge_config(session, project, base_url=server.base_url)
        body = {"rubric_version_id": version.id, "judge_config_id": judge.id, "seed": 1}

        # No gold set: the default falls back to every rollout, says so, and leaves the six
        # drift samples out.
        first = _start(client, project, headers, **body, probes=["verbosity"])
        assert "no development split" in first["selection"]["note"]
        assert _originals(session, first["id"]) == policy
        report = _finish(client, project, headers, first, engine, settings)
        page = client.get(f"/projects/{project.id}/probes/{first['id']}", headers=headers)
        assert "no development split" in page.text

        # Its rewrites are rollouts of the project now; a second run never takes them.
        rewrites = session.exec(
            select(Rollout.id).where(col(Rollout.source_file) == f"probe-run:{first['id']}")
        ).all()
        assert rewrites
        again = _start(client, project, headers, **body, gold_split=None, probes=["verbosity"])
        assert _originals(session, again["id"]) == policy and not again["selection"]["note"]

        # A development split: the default takes it (a drift sample in it is still left out).
        for rollout_id in (policy[1], policy[2], recorded[0]):
            session.add(
                GoldItem(project_id=project.id or 0, rollout_id=rollout_id, split="development")
            )
        session.commit()
        dev = _start(client, project, headers, **body)
        assert _originals(session, dev["id"]) == [policy[1], policy[2]]
        assert not dev["selection"]["note"] and dev["selection"]["gold_split"] == "development"
        # Position is in the default list and skipped with its reason on a single-answer rubric.
        assert "position" in dev["probes"]
        report = _finish(client, project, headers, dev, engine, settings)

    rows = {row["name"]: row for row in report["report"]}
    assert rows["position"]["n"] == 0 and rows["position"]["passed"] is True
    assert "no pair to swap" in rows["position"]["verdict"]
    # An empty explicit split is refused in plain words.
    empty = client.post(
        f"/api/v1/projects/{project.id}/probe-runs",
        json={**body, "gold_split": "test"},
        headers=headers,
    )
    assert empty.status_code == 422 and "no rollouts to probe" in empty.json()["detail"]


@pytest.mark.parametrize("mode", ["gullible", "robust"])
def test_position_probe_swaps_each_pair_through_the_engine(
    client: TestClient, session: Session, engine, settings: Settings, mode: str
) -> None:
    project, headers = _setup(session)
    version = make_version(session, project, "pairwise_preference")
    pairs = insert_pairs(
        session, project, insert_rollouts(session, project, 12, response="ans {i}")
    )
    with JudgeServer(mode=mode) as server:
        judge = make_judge_config(session, project, base_url=server.base_url)
        run = _start(
            client, project, headers, rubric_version_id=version.id, judge_config_id=judge.id
        )
        # A preference rubric: the pair probes by default, over pairs (none in a gold set here).
        assert run["probes"] == ["position", "self_consistency"]
        assert "all its pairs" in run["selection"]["note"]
        done = _finish(client, project, headers, run, engine, settings)
        requests = server.requests
    judge_run = session.get(JudgeRun, done["judge_run_id"])
    assert judge_run is not None and judge_run.kind == "pairwise"
    # Each pair in both orders, judged four times (the first judging and three more).
    assert judge_run.items_total == requests == len(pairs) * 2 * 4
    rows = {row["name"]: row for row in done["report"]}
    position = rows["position"]
    assert position["n"] == len(pairs)
    if mode == "gullible":  # always picks the response shown first: every winner flips
        assert position["share_changed"] == 1.0 and position["passed"] is False
        assert position["share_changed_ci_low"] > 0.5
        assert "the judge prefers a position" in position["verdict"]
        assert "shown first won both times in 100%" in position["verdict"]
        assert done["passed"] is False
    else:
        assert position["share_changed"] == 0.0 and position["passed"] is True
        assert position["share_changed_ci_high"] < 0.5
        assert done["passed"] is True
    # The test judges are deterministic: judged again, no pair changes.
    assert rows["self_consistency"]["share_changed"] == 0.0
    assert rows["self_consistency"]["passed"] is True
    page = client.get(f"/projects/{project.id}/probes/{done['id']}", headers=headers)
    assert page.status_code == 200
    if mode == "gullible":
        assert 'data-testid="probe-pair-example"' in page.text


def test_self_consistency_reports_a_noisy_judge_without_blocking(
    client: TestClient, session: Session, engine, settings: Settings
) -> None:
    project, headers = _setup(session)
    single = make_version(session, project)
    # JSON answers: the default reward's format gate lets them through to the judge.
    insert_rollouts(session, project, 8, response='{{"answer": "The answer, number {i}."}}')
    preference = make_version(session, project, "pairwise_preference")
    insert_pairs(session, project, insert_rollouts(session, project, 8, prefix="p"))
    with JudgeServer(mode="noisy") as server:
        judge = make_judge_config(session, project, base_url=server.base_url)
        runs = [
            _start(
                client,
                project,
                headers,
                rubric_version_id=version.id,
                judge_config_id=judge.id,
                gold_split=None,
                probes=["self_consistency"],
                seed=2,
            )
            for version in (single, preference)
        ]
        run_worker(engine, settings, once=True)
        done = [
            client.get(f"/api/v1/projects/{project.id}/probe-runs/{r['id']}", headers=headers)
            for r in runs
        ]
    for response in done:
        body = response.json()
        assert body["status"] == "completed", body["message"]
        [row] = body["report"]
        assert row["name"] == "self_consistency" and row["n"] > 0
        assert row["share_changed"] > 0 and row["spread_mean"] > 0
        assert row["share_changed_ci_low"] <= row["share_changed"] <= row["share_changed_ci_high"]
        assert row["passed"] is True and "the verdict changes on" in row["verdict"]
