"""The probe pages: the form (kept as typed when refused), a run's progress fragment (with and
without htmx), the report once the worker is done, and who may do what."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.core.config import Settings
from app.worker import run_worker
from tests.integration.exports.world import build_world
from tests.support.factories import make_project, make_user
from tests.support.judge_server import JudgeServer
from tests.support.web import csrf_for, data_testids, find_all, login


def test_start_follow_and_read_a_probe_run_in_pages(
    client: TestClient, session: Session, engine, settings: Settings
) -> None:
    with JudgeServer(mode="gullible") as server:
        world = build_world(session, server.base_url, contracts=1)
        base = f"/projects/{world.project.id}/probes"
        login(client, world.engineer.email)
        page = client.get(base)
        assert page.status_code == 200
        assert {"probe-form", "probe-runs"} <= data_testids(page.text)
        token = csrf_for(client, base)
        form = {
            "csrf_token": token,
            "rubric_version_id": str(world.version.id),
            "judge_config_id": str(world.judge.id),
            "probes": ["verbosity", "format_only"],
            "gold_split": "test",
            "sample": "three",
            "seed": "9",
        }
        refused = client.post(base, data=form, follow_redirects=False)
        assert refused.status_code == 400
        assert "whole number" in refused.text
        assert find_all(refused.text, "data-testid", "probe-sample")[0]["value"] == "three"

        form["sample"] = "3"
        created = client.post(base, data=form, follow_redirects=False)
        assert created.status_code == 303, created.text
        run_url = created.headers["location"]
        queued = client.get(run_url)
        assert find_all(queued.text, "data-testid", "probe-progress")[0]["data-status"] == "queued"
        fragment = client.get(f"{run_url}/progress", headers={"HX-Request": "true"})
        assert fragment.status_code == 200 and "<html" not in fragment.text
        assert "HX-Refresh" not in fragment.headers

        run_worker(engine, settings, once=True)
    done = client.get(f"{run_url}/progress", headers={"HX-Request": "true"})
    assert done.headers.get("HX-Refresh") == "true"
    report = client.get(run_url)
    rows = find_all(report.text, "data-testid", "probe-row")
    assert [r["data-probe"] for r in rows] == ["verbosity", "format_only"]
    assert find_all(report.text, "data-testid", "probe-example")
    assert "probe-seed" in data_testids(report.text)

    # A reviewer reads but may not start or cancel; another project's members see nothing.
    login(client, world.reviewer.email)
    assert "probe-form" not in data_testids(client.get(base).text)
    assert client.get(run_url).status_code == 200
    outsider = make_user(session, "outsider@example.com")
    make_project(session, outsider, "Elsewhere")
    login(client, outsider.email)
    assert client.get(run_url).status_code in (403, 404)
