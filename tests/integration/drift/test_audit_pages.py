"""Audits, agreement over steps and drift checks over HTTP: pages, fragments and the API."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.auth import service as auth_service
from app.labels.models import AnnotationQueue, QueueItem
from tests.integration.drift.audit_world import CRITERIA, make_world
from tests.support.web import csrf_for, data_testids, find_all, login


def _token(session: Session, user) -> dict[str, str]:
    created = auth_service.create_api_token(session, user, name="tests")
    return {"Authorization": f"Bearer {created.token}"}


def test_reviewer_creates_an_audit_labels_it_and_agreement_appears(
    client: TestClient, session: Session
) -> None:
    w = make_world(session, samples=300)
    pid, rid = w.project.id, w.run.id
    login(client, w.reviewer.email)
    page = client.get(f"/projects/{pid}/training-runs/{rid}/audit-section")
    assert page.status_code == 200
    assert {"agreement-section", "no-agreement", "new-audit"} <= data_testids(page.text)
    # A bad size keeps what was typed and says why.
    token = csrf_for(client, f"/projects/{pid}/training-runs/{rid}/audits/new")
    form = {
        "csrf_token": token,
        "size": "0",
        "seed": "11",
        "step_buckets": "3",
        "reward_quantiles": "2",
        "extra": "none",
        "rubric_version_id": str(w.version.id),
        "assignee": str(w.reviewer.id),
    }
    bad = client.post(f"/projects/{pid}/training-runs/{rid}/audits", data=form)
    assert bad.status_code == 422 and "form-error" in data_testids(bad.text)
    assert find_all(bad.text, "data-testid", "audit-seed")[0]["value"] == "11"
    good = client.post(
        f"/projects/{pid}/training-runs/{rid}/audits",
        data=form | {"size": "12"},
        follow_redirects=False,
    )
    assert good.status_code == 303
    queue_id = int(good.headers["location"].rsplit("/", 1)[1])
    queue = session.get(AnnotationQueue, queue_id)
    assert queue.kind == "audit"
    # Label two items through the annotation view's own routes (form posts, as the page does).
    items = session.exec(
        select(QueueItem).where(QueueItem.queue_id == queue_id).order_by(QueueItem.position)
    ).all()
    for item in items[:2]:
        url = f"/projects/{pid}/queues/{queue_id}/items/{item.id}"
        view = client.get(url)
        assert "deserved" in data_testids(view.text)
        data = {"csrf_token": csrf_for(client, url), "deserved": "yes"}
        data |= {f"value__{k}": "pass" for k in CRITERIA}
        done = client.post(url + "/submit", data=data, follow_redirects=False)
        assert done.status_code == 303, done.text
    section = client.get(
        f"/projects/{pid}/training-runs/{rid}/audit-section", headers={"HX-Request": "true"}
    )
    ids = data_testids(section.text)
    assert "agreement-table" in ids and "audits-table" in ids and "no-agreement" not in ids
    assert "<html" not in section.text  # the fragment alone for htmx

    api = client.get(f"/api/v1/projects/{pid}/training-runs/{rid}/agreement")
    body = api.json()
    assert api.status_code == 200 and body["samples"] == 2
    assert sum(b["samples"] for b in body["buckets"]) == 2
    assert "Wilson" in body["definition"]
    audits = client.get(f"/api/v1/projects/{pid}/training-runs/{rid}/audits").json()
    assert audits[0]["queue_id"] == queue_id and audits[0]["design"]["seed"] == 11


def test_audit_api_roles_and_design(client: TestClient, session: Session) -> None:
    w = make_world(session, samples=120)
    pid, rid = w.project.id, w.run.id
    body = {"size": 8, "rubric_version_id": w.version.id, "seed": 3, "step_buckets": 2}
    expert = client.post(
        f"/api/v1/projects/{pid}/training-runs/{rid}/audits",
        json=body,
        headers=_token(session, w.expert),
    )
    assert expert.status_code == 403
    created = client.post(
        f"/api/v1/projects/{pid}/training-runs/{rid}/audits",
        json=body | {"assignee_ids": [w.reviewer.id, w.reviewer2.id], "overlap": 2},
        headers=_token(session, w.reviewer),
    )
    assert created.status_code == 201, created.text
    audit = created.json()
    assert audit["samples"] == 8 and audit["labelled"] == 0
    assert len(audit["design"]["strata"]) == 2 * 4
    again = client.get(
        f"/api/v1/projects/{pid}/audits/{audit['id']}", headers=_token(session, w.expert)
    )
    assert again.status_code == 200 and again.json()["design"] == audit["design"]
    bad = client.post(
        f"/api/v1/projects/{pid}/training-runs/{rid}/audits",
        json=body | {"extra": "criterion", "criterion": "nope"},
        headers=_token(session, w.reviewer),
    )
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "criterion"


def test_cli_audit_and_agreement(monkeypatch, settings, session: Session) -> None:
    import json

    from typer.testing import CliRunner

    from app.cli import cli
    from app.core.config import get_settings

    monkeypatch.setenv("RS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("RS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RS_ENV", "test")
    get_settings.cache_clear()
    try:
        w = make_world(session, samples=100)
        runner = CliRunner()
        args = ["drift", "audit", "--project", str(w.project.id), "--training-run", "run-a"]
        args += ["--size", "10", "--seed", "5", "--user", w.reviewer.email]
        args += ["--rubric-version", str(w.version.id)]
        made = runner.invoke(cli, args)
        assert made.exit_code == 0, made.output
        assert "10 samples" in made.output and "seed 5" in made.output
        refused = runner.invoke(cli, [*args[:-2], "--rubric-version", "999999"])
        assert refused.exit_code == 1
        where = ["--project", str(w.project.id), "--training-run", "run-a"]
        listed = runner.invoke(cli, ["drift", "audits", *where])
        assert listed.exit_code == 0, listed.output
        assert "0/10 labelled" in listed.output and "seed 5" in listed.output
        as_json = json.loads(runner.invoke(cli, ["drift", "audits", *where, "--json"]).output)
        assert [(a["samples"], a["labelled"], a["seed"]) for a in as_json] == [(10, 0, 5)]
        shown = runner.invoke(
            cli, ["drift", "agreement", "--project", str(w.project.id), "--training-run", "run-a"]
        )
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.output)["samples"] == 0
    finally:
        get_settings.cache_clear()
