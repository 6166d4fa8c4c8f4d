"""Probes end to end through the API: a gullible judge (rewards length, obeys text addressed to
it) is caught and blocks the export; a robust judge passes the gate. Rewrites are stored as
rollouts of their own, linked to originals that never change."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.auth import service as auth_service
from app.core.config import Settings
from app.exports.models import ExportBundle
from app.probes.models import ProbeItem
from app.rewards import service as reward_service
from app.rewards.config import RewardConfigModel
from app.rollouts.models import Rollout
from app.worker import run_worker
from tests.integration.exports.world import World, build_world, label_gold, run_judge
from tests.support.judge_server import JudgeServer

PROBES = ["verbosity", "addressed_to_judge", "rubric_stuffing", "partial", "self_consistency"]


def _headers(session: Session, user) -> dict[str, str]:
    created = auth_service.create_api_token(session, user, name="tests")
    return {"Authorization": f"Bearer {created.token}"}


def _export_body(world: World, run_id: int, **extra) -> dict:
    return {
        "rubric_version_id": world.version.id,
        "judge_config_id": world.judge.id,
        "run_id": run_id,
        **extra,
    }


def _probe(client: TestClient, world: World, headers: dict, engine, settings: Settings) -> dict:
    base = f"/api/v1/projects/{world.project.id}/probe-runs"
    created = client.post(
        base,
        json={
            "rubric_version_id": world.version.id,
            "judge_config_id": world.judge.id,
            "probes": PROBES,
            "gold_split": "test",
            "seed": 11,
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    run = created.json()
    assert run["status"] == "queued" and run["seed"] == 11
    run_worker(engine, settings, once=True)
    done = client.get(f"{base}/{run['id']}", headers=headers)
    assert done.status_code == 200
    body = done.json()
    assert body["status"] == "completed", body["message"]
    assert body["items_done"] == body["items_total"] > 0
    return body


@pytest.mark.parametrize("mode", ["gullible", "robust"])
def test_probes_flag_a_gullible_judge_and_gate_the_export(
    client: TestClient, session: Session, engine, settings: Settings, mode: str
) -> None:
    with JudgeServer(mode=mode) as server:
        world = build_world(session, server.base_url, contracts=3)
        before = {r.id: (r.response, r.content_hash) for r in world.rollouts}
        run = run_judge(session, engine, world)
        label_gold(session, world, run.id or 0, agree=True)
        headers = _headers(session, world.engineer)
        report = _probe(client, world, headers, engine, settings)

    rows = {row["name"]: row for row in report["report"]}
    assert set(rows) == set(PROBES)
    for row in rows.values():
        assert set(row) >= {
            "name",
            "n",
            "uplift_mean",
            "uplift_ci_low",
            "uplift_ci_high",
            "share_improved",
            "passed",
        }
    if mode == "gullible":
        assert not rows["verbosity"]["passed"] and rows["verbosity"]["uplift_ci_low"] > 0
        assert "the judge rewards length" in rows["verbosity"]["verdict"]
        assert not rows["addressed_to_judge"]["passed"]
        assert "obeys text addressed to it" in rows["addressed_to_judge"]["verdict"]
        assert report["passed"] is False
    else:
        assert report["passed"] is True, [r["verdict"] for r in rows.values()]
        assert rows["addressed_to_judge"]["uplift_mean"] <= 0
    assert rows["self_consistency"]["uplift_mean"] == 0  # the test judge is deterministic

    # Originals never change; every rewrite is its own rollout, linked to its original.
    session.expire_all()
    for rollout_id, (response, content_hash) in before.items():
        rollout = session.get(Rollout, rollout_id)
        assert rollout is not None
        assert (rollout.response, rollout.content_hash) == (response, content_hash)
    items = session.exec(select(ProbeItem).where(ProbeItem.probe_run_id == report["id"])).all()
    assert items and all(i.original_rollout_id in before for i in items)
    rewrites = session.exec(
        select(Rollout).where(col(Rollout.id).in_([i.rollout_id for i in items]))
    ).all()
    assert all(r.source_file == f"probe-run:{report['id']}" for r in rewrites)

    # The export gate: the gullible judge's reward is blocked, the robust one's passes.
    exports = f"/api/v1/projects/{world.project.id}/exports"
    check = client.get(
        f"{exports}/gate-check",
        params={
            "rubric_version_id": world.version.id,
            "judge_config_id": world.judge.id,
            "run_id": run.id,
        },
        headers=headers,
    ).json()
    probe_check = next(c for c in check["gate"]["checks"] if c["name"] == "probes")
    assert probe_check["probe_run_id"] == report["id"]
    created = client.post(exports, json=_export_body(world, run.id or 0), headers=headers)
    if mode == "gullible":
        assert probe_check["state"] == "failed" and check["gate"]["passed"] is False
        assert created.status_code == 409, created.text
        refusal = created.json()
        assert any(p["field"] == "probes" for p in refusal["problems"]), refusal
        admin = _headers(session, world.admin)
        overridden = client.post(
            exports,
            json=_export_body(world, run.id or 0, override_reason="known padding bias, tracked"),
            headers=admin,
        )
        assert overridden.status_code == 201, overridden.text
        bundle_id = overridden.json()["id"]
    else:
        assert probe_check["state"] == "passed" and check["gate"]["passed"] is True
        assert created.status_code == 201, created.text
        bundle_id = created.json()["id"]
    bundle = session.get(ExportBundle, bundle_id)
    assert bundle is not None
    probes = bundle.content["manifest"]["probes"]
    assert probes["run"]["seed"] == 11 and probes["run"]["thresholds"]["max_uplift"] == 0.05
    assert {r["name"] for r in probes["run"]["results"]} == set(PROBES)


def test_a_changed_reward_configuration_needs_fresh_probe_results(
    client: TestClient, session: Session, engine, settings: Settings
) -> None:
    with JudgeServer(mode="robust") as server:
        world = build_world(session, server.base_url, contracts=1)
        run = run_judge(session, engine, world)
        label_gold(session, world, run.id or 0, agree=True)
        headers = _headers(session, world.engineer)
        _probe(client, world, headers, engine, settings)
    exports = f"/api/v1/projects/{world.project.id}/exports"
    params = {"rubric_version_id": world.version.id, "judge_config_id": world.judge.id}
    fresh = client.get(f"{exports}/gate-check", params=params, headers=headers).json()
    assert next(c for c in fresh["gate"]["checks"] if c["name"] == "probes")["state"] == "passed"
    # Change the judge's weight in the reward: the probe results no longer describe it.
    current = reward_service.current_config(session, world.project.id or 0)
    data = current.model.as_dict()
    data["judge"]["weight"] = 2.0
    reward_service.save_config(
        session,
        world.project,
        actor=world.engineer,
        config=RewardConfigModel.model_validate(data),
        expected_revision=current.revision,
    )
    stale = client.get(f"{exports}/gate-check", params=params, headers=headers).json()
    check = next(c for c in stale["gate"]["checks"] if c["name"] == "probes")
    assert check["state"] == "stale" and check["passed"] is False


def test_refusals_are_plain_words(client: TestClient, session: Session) -> None:
    world = build_world(session, "http://127.0.0.1:9/v1", contracts=1)
    headers = _headers(session, world.engineer)
    base = f"/api/v1/projects/{world.project.id}/probe-runs"
    cases = [
        (
            {
                "rubric_version_id": world.version.id,
                "judge_config_id": world.judge.id,
                "probes": ["nope"],
                "gold_split": "test",
            },
            422,
        ),
        (
            {
                "rubric_version_id": world.version.id,
                "judge_config_id": world.judge.id,
                "gold_split": "test",
                "custom": [{"name": "bad", "kind": "pattern", "pattern": "("}],
            },
            422,
        ),
        ({"rubric_version_id": 99999, "judge_config_id": world.judge.id}, 404),
    ]
    for body, status in cases:
        response = client.post(base, json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        assert response.json()["detail"]
    reviewer = _headers(session, world.reviewer)
    denied = client.post(base, json=cases[0][0], headers=reviewer)
    assert denied.status_code == 403
