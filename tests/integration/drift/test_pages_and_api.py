"""Training-run pages and API: create, import over the API, series and signals JSON, the
dashboard's charts, tables and signal cards, the CSV (formula-safe), roles."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.core.config import Settings
from app.drift.signal_types import SignalKind
from app.drift.synthetic import records
from tests.integration.drift.conftest import DriftWorld, jsonl, run_drift_worker
from tests.support.web import csrf_for, login


def _import(
    client: TestClient, engine: Engine, settings: Settings, world: DriftWorld, data: bytes
) -> dict:
    pid, rid = world.project.id, world.run.id
    response = client.post(
        f"/api/v1/projects/{pid}/training-runs/{rid}/imports",
        files={"file": ("s.jsonl", data, "application/x-ndjson")},
        headers={"X-CSRF-Token": csrf_for(client)},
    )
    assert response.status_code == 202, response.text
    job = run_drift_worker(engine, settings, response.json()["id"])
    assert job.status == "done", job.message
    return response.json()


def test_api_create_import_series_and_signals(
    client: TestClient,
    session: Session,
    engine: Engine,
    settings: Settings,
    drift_world: DriftWorld,
) -> None:
    login(client, drift_world.engineer.email)
    pid = drift_world.project.id
    created = client.post(
        f"/api/v1/projects/{pid}/training-runs",
        json={"name": "run-2", "base_model": "m"},
        headers={"X-CSRF-Token": csrf_for(client)},
    )
    assert created.status_code == 201, created.text
    again = client.post(
        f"/api/v1/projects/{pid}/training-runs",
        json={"name": "run-2"},
        headers={"X-CSRF-Token": csrf_for(client)},
    )
    assert again.status_code == 409 and again.json()["detail"]
    _import(
        client,
        engine,
        settings,
        drift_world,
        jsonl(records(2000, run="run-1", steps=600, gaming_from=350)),
    )
    series = client.get(f"/api/v1/projects/{pid}/training-runs/{drift_world.run.id}/series").json()
    assert series["bucket_width"] == 50 and len(series["buckets"]) == 13
    first = series["buckets"][0]
    for key in ("step_start", "step_end", "n", "reward_mean", "length_mean", "criteria"):
        assert key in first
    assert set(first["criteria"]) == {"grounding", "actionability", "consistency"}
    signals = client.get(
        f"/api/v1/projects/{pid}/training-runs/{drift_world.run.id}/signals"
    ).json()
    kinds = {s["kind"] for s in signals}
    assert {"length_hacking", "judge_addressed_text", "grounding_decay"} <= kinds, signals
    for s in signals:
        assert set(s) == {"kind", "onset_step", "severity", "evidence"}
        assert 300 <= s["onset_step"] <= 400
    base = f"/api/v1/projects/{pid}/training-runs/{drift_world.run.id}/signals"
    examples = client.get(f"{base}/judge_addressed_text/examples").json()
    assert examples["fired"] and examples["onset_step"] == next(
        s["onset_step"] for s in signals if s["kind"] == "judge_addressed_text"
    )
    assert 1 <= len(examples["examples"]) <= 3
    for pair in examples["examples"]:
        late, early = pair["late"], pair["early"]
        assert late["judge_addressed"] and late["step"] >= examples["onset_step"]
        assert late["response"] and len(late["response"]) == late["response_chars"]
        if early is not None:  # the same prompt, from before the onset
            assert early["prompt_key"] == late["prompt_key"]
            assert early["step"] < examples["onset_step"]
    assert any(pair["early"] for pair in examples["examples"])
    quiet = client.get(f"{base}/judge_failing/examples").json()
    assert quiet == {
        "kind": "judge_failing",
        "fired": False,
        "onset_step": None,
        "examples": [],
    }
    unknown = client.get(f"{base}/nonsense/examples")
    assert unknown.status_code == 422 and "judge_addressed_text" in unknown.text


def test_dashboard_shows_charts_tables_signals_and_safe_csv(
    client: TestClient,
    session: Session,
    engine: Engine,
    settings: Settings,
    drift_world: DriftWorld,
) -> None:
    login(client, drift_world.engineer.email)
    rows = list(records(2000, run="run-1", steps=600, gaming_from=350))
    rows[0]["judge"]["criteria"]['=HYPERLINK("x")'] = True
    _import(client, engine, settings, drift_world, jsonl(rows))
    login(client, drift_world.reviewer.email)
    base = f"/projects/{drift_world.project.id}/training-runs/{drift_world.run.id}"
    page = client.get(base)
    assert page.status_code == 200
    html = page.text
    for chart_id in ("reward", "criteria", "components", "length", "gaming", "judge", "latency"):
        assert (
            f'data-testid="chart-{chart_id}"' in html and f'data-testid="table-{chart_id}"' in html
        )
    assert 'data-testid="signal-length_hacking"' in html
    assert "<script>" not in html  # configs travel as JSON data, never inline script
    card = client.get(f"{base}/signals/length_hacking")
    assert card.status_code == 200 and 'data-testid="example-pair"' in card.text
    for kind in SignalKind:
        assert client.get(f"{base}/signals/{kind.value}").status_code == 200, kind
    assert client.get(f"{base}/signals/nonsense").status_code == 404
    csv_text = client.get(f"{base}/series.csv").text
    header = next(csv.reader(io.StringIO(csv_text)))
    assert "step_start" in header
    cells = [cell for row in csv.reader(io.StringIO(csv_text)) for cell in row]
    assert not any(cell.startswith(("=", "+", "@")) for cell in cells)
    overview = client.get(f"/projects/{drift_world.project.id}")
    assert 'data-testid="overview-signal-length_hacking"' in overview.text


def test_reviewer_may_read_but_not_import(client: TestClient, drift_world: DriftWorld) -> None:
    login(client, drift_world.reviewer.email)
    pid, rid = drift_world.project.id, drift_world.run.id
    assert client.get(f"/projects/{pid}/training-runs").status_code == 200
    response = client.post(
        f"/api/v1/projects/{pid}/training-runs/{rid}/imports",
        files={"file": ("s.jsonl", b"{}\n", "application/x-ndjson")},
        headers={"X-CSRF-Token": csrf_for(client)},
    )
    assert response.status_code == 403


def test_compare_two_runs_and_per_project_thresholds(
    client: TestClient,
    session: Session,
    engine: Engine,
    settings: Settings,
    drift_world: DriftWorld,
) -> None:
    from app.drift import service as drift_service

    login(client, drift_world.engineer.email)
    _import(client, engine, settings, drift_world, jsonl(records(400, run="run-1", steps=100)))
    other = drift_service.create_training_run(
        session, drift_world.project, drift_world.engineer, name="run-b"
    )
    pid = drift_world.project.id
    page = client.get(f"/projects/{pid}/training-runs/{drift_world.run.id}?compare={other.id}")
    assert page.status_code == 200 and 'data-testid="chart-reward"' in page.text
    saved = client.post(
        f"/projects/{pid}/drift-settings",
        data={"csrf_token": csrf_for(client), "alpha": "0.01", "length_ratio": "1.5"},
        follow_redirects=False,
    )
    assert saved.status_code in (302, 303)
    session.refresh(drift_world.project)
    assert drift_service.thresholds(drift_world.project).length_ratio == 1.5
    bad = client.post(
        f"/projects/{pid}/drift-settings",
        data={"csrf_token": csrf_for(client), "alpha": "2"},
    )
    assert bad.status_code == 422 and "alpha" in bad.text
    login(client, drift_world.reviewer.email)
    refused = client.post(
        f"/projects/{pid}/drift-settings", data={"csrf_token": csrf_for(client), "alpha": "0.1"}
    )
    assert refused.status_code == 403
