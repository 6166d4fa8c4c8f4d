"""The judging JSON API with an API token: configurations, runs, progress, verdict pages, import."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.auth import service as auth_service
from app.judging import engine as judge_engine
from app.projects.models import Project
from tests.support.factories import (
    fast_options,
    insert_rollouts,
    make_project,
    make_user,
    make_version,
)
from tests.support.judge_server import JudgeServer


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    engineer = make_user(session, "api-engineer@example.com")
    expert = make_user(session, "api-expert@example.com")
    owner = make_user(session, "api-owner@example.com")
    project = make_project(
        session, owner, "API judging", members=[(engineer, "engineer"), (expert, "expert")]
    )
    return {
        "project": project,
        "engineer": {
            "Authorization": f"Bearer {auth_service.create_api_token(session, engineer, 't').token}"
        },
        "expert": {
            "Authorization": f"Bearer {auth_service.create_api_token(session, expert, 't').token}"
        },
    }


def _config_body(base_url: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "api judge",
        "provider": "openai_compat",
        "model_id": "judge-test",
        "base_url": base_url,
        "concurrency": 4,
        "timeout_s": 5,
        "max_attempts": 3,
        "base_delay_s": 0.01,
        "max_delay_s": 0.05,
        "price_input_per_1k": 0.5,
    }
    body.update(overrides)
    return body


def test_configurations_and_runs_over_the_api(
    client: TestClient, session: Session, engine: Engine, world: dict[str, Any]
) -> None:
    project: Project = world["project"]
    headers = world["engineer"]
    base = f"/api/v1/projects/{project.id}"
    version = make_version(session, project)
    insert_rollouts(session, project, 7)

    with JudgeServer() as server:
        created = client.post(
            f"{base}/judge-configs", json=_config_body(server.base_url), headers=headers
        )
        assert created.status_code == 201, created.text
        config = created.json()
        assert config["params"]["max_tokens"] == 1024 and config["revision"] == 1

        updated = client.put(
            f"{base}/judge-configs/{config['id']}",
            json={**_config_body(server.base_url, concurrency=2), "revision": 1},
            headers=headers,
        )
        assert updated.status_code == 200 and updated.json()["concurrency"] == 2
        stale = client.put(
            f"{base}/judge-configs/{config['id']}",
            json={**_config_body(server.base_url), "revision": 1},
            headers=headers,
        )
        assert stale.status_code == 409 and "Someone else saved" in stale.json()["detail"]

        request = {
            "rubric_version_id": version.id,
            "judge_config_ids": [config["id"]],
            "selection": {"sample": 5, "seed": 11},
            "repeats": 2,
        }
        estimate = client.post(f"{base}/judge-runs/estimate", json=request, headers=headers)
        assert estimate.status_code == 200
        assert estimate.json()["calls_per_judge"] == 10 and estimate.json()["input_tokens"] > 0

        started = client.post(f"{base}/judge-runs", json=request, headers=headers)
        assert started.status_code == 201
        (run,) = started.json()
        assert run["status"] == "queued" and run["items_total"] == 10
        assert run["selection"]["seed"] == 11 and run["judge_name"] == "api judge"

        judge_engine.work_on_run(engine, run["id"], fast_options())

    got = client.get(f"{base}/judge-runs/{run['id']}", headers=headers).json()
    assert got["status"] == "completed" and got["items_done"] == 10
    assert got["cost"] == pytest.approx(got["input_tokens"] / 1000 * 0.5)
    listed = client.get(f"{base}/judge-runs", headers=headers).json()
    assert [r["id"] for r in listed] == [run["id"]]

    # One convention for every list: an opaque next_cursor, sent back as cursor.
    page = client.get(
        f"{base}/judge-runs/{run['id']}/verdicts", params={"limit": 4}, headers=headers
    ).json()
    assert len(page["items"]) == 4 and isinstance(page["next_cursor"], str)
    assert not page["next_cursor"].isdigit()  # opaque: not an id to compute with
    seen = [v["id"] for v in page["items"]]
    while page["next_cursor"]:
        page = client.get(
            f"{base}/judge-runs/{run['id']}/verdicts",
            params={"limit": 4, "cursor": page["next_cursor"]},
            headers=headers,
        ).json()
        seen += [v["id"] for v in page["items"]]
    assert len(seen) == len(set(seen)) == 10
    # The old id cursor still works (deprecated), and gives the same pages.
    old = client.get(
        f"{base}/judge-runs/{run['id']}/verdicts",
        params={"limit": 4, "after_id": seen[3]},
        headers=headers,
    ).json()
    assert [v["id"] for v in old["items"]] == seen[4:8] and old["next_after_id"] == seen[7]
    bad = client.get(
        f"{base}/judge-runs/{run['id']}/verdicts", params={"cursor": "nonsense"}, headers=headers
    )
    assert bad.status_code == 422 and "next_cursor" in bad.json()["detail"]

    cancel = client.post(f"{base}/judge-runs/{run['id']}/cancel", headers=headers)
    assert cancel.status_code == 409
    in_use = client.delete(f"{base}/judge-configs/{config['id']}", headers=headers)
    assert in_use.status_code == 409


def test_the_api_refuses_bad_input_and_roles_without_permission(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    project: Project = world["project"]
    base = f"/api/v1/projects/{project.id}"
    bad = client.post(
        f"{base}/judge-configs",
        json=_config_body("http://x/v1", api_key_env="sk-abcdef123456"),
        headers=world["engineer"],
    )
    assert bad.status_code == 422
    assert any("NAME of an environment variable" in p["message"] for p in bad.json()["problems"])
    for name in ("RS_SECRET_KEY", "RS_DATABASE_URL", "AWS_SECRET_ACCESS_KEY"):
        refused = client.post(
            f"{base}/judge-configs",
            json=_config_body("http://x/v1", api_key_env=name),
            headers=world["engineer"],
        )
        assert refused.status_code == 422
        (problem,) = refused.json()["problems"]
        assert problem["field"] == "api_key_env" and "RS_JUDGE_KEY_" in problem["message"]
    metadata = client.post(
        f"{base}/judge-configs",
        json=_config_body("http://[::ffff:169.254.169.254]/v1"),
        headers=world["engineer"],
    )
    assert metadata.status_code == 422
    assert metadata.json()["problems"][0]["field"] == "base_url"
    extra = client.post(
        f"{base}/judge-configs",
        json={**_config_body("http://x/v1"), "api_key": "sk-secret"},
        headers=world["engineer"],
    )
    assert extra.status_code == 422  # unknown fields (a pasted key) are refused outright
    expert = client.post(
        f"{base}/judge-configs", json=_config_body("http://x/v1"), headers=world["expert"]
    )
    assert expert.status_code == 403
    runs = client.post(
        f"{base}/judge-runs",
        json={"rubric_version_id": 1, "judge_config_ids": []},
        headers=world["engineer"],
    )
    assert runs.status_code == 422
    missing = client.get(f"{base}/judge-runs/999999", headers=world["engineer"])
    assert missing.status_code == 404 and missing.json()["detail"]


def test_verdicts_are_imported_over_the_api(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    project: Project = world["project"]
    version = make_version(session, project)
    insert_rollouts(session, project, 1)
    scores = {c["key"]: True for c in version.definition["criteria"]}
    body = json.dumps({"rollout_id": "r-0", "judge": "outside", "scores": scores}) + "\n"
    response = client.post(
        f"/api/v1/projects/{project.id}/judge-runs/import",
        data={"rubric_version_id": str(version.id)},
        files={"file": ("v.jsonl", body.encode(), "application/jsonl")},
        headers=world["engineer"],
    )
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["verdicts"] == 1 and result["runs"][0]["kind"] == "external"
    assert result["runs"][0]["judge_name"] == "outside"

    bad = client.post(
        f"/api/v1/projects/{project.id}/judge-runs/import",
        data={"rubric_version_id": str(version.id)},
        files={"file": ("v.jsonl", b'{"rollout_id": "nope", "judge": "x", "scores": {}}\n')},
        headers=world["engineer"],
    )
    assert bad.status_code == 422
    assert bad.json()["problems"][0]["field"].startswith("line 1")
