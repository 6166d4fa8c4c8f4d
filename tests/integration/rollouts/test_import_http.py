"""Imports over HTTP: the browser upload with its progress fragment, the CSV column mapping
step, the JSON API with a token, bad files answered with 422 and a readable message."""

from __future__ import annotations

import csv
import io
import json

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.auth import service as auth_service
from app.core.config import Settings
from app.rollouts.models import RolloutImport
from app.worker import run_worker
from tests.integration.rollouts.conftest import World, jsonl, rollout_count, studio_row
from tests.support.web import csrf_for, data_testids, find_all, login

HTMX = {"HX-Request": "true"}


def upload(client: TestClient, pid: int, data: bytes, filename: str, **form: str):
    token = csrf_for(client, f"/projects/{pid}/imports")
    return client.post(
        f"/projects/{pid}/imports",
        data={"csrf_token": token, **form},
        files={"file": (filename, data, "application/octet-stream")},
        follow_redirects=False,
    )


def job_id_from(response) -> int:
    location = response.headers.get("location") or response.headers["hx-redirect"]
    return int(location.rstrip("/").rsplit("/", 1)[-1])


def test_browser_upload_shows_progress_then_the_imported_count(
    client: TestClient, session: Session, engine: Engine, settings: Settings, world: World
) -> None:
    login(client, world.engineer.email)
    page = client.get(f"/projects/{world.pid}/imports")
    assert {"import-form", "import-file", "import-skip-invalid", "no-imports"} <= data_testids(
        page.text
    )

    response = upload(client, world.pid, jsonl([studio_row(n) for n in range(5)]), "run.jsonl")
    assert response.status_code == 303
    import_id = job_id_from(response)

    waiting = client.get(f"/projects/{world.pid}/imports/{import_id}")
    status = find_all(waiting.text, "data-testid", "import-status")[0]
    assert status["data-status"] == "queued"
    assert status["hx-trigger"] == "every 1s"  # the page polls until the import ends
    poll = client.get(f"/projects/{world.pid}/imports/{import_id}/status", headers=HTMX)
    assert poll.status_code == 200

    run_worker(engine, settings, once=True)

    done = client.get(f"/projects/{world.pid}/imports/{import_id}/status", headers=HTMX)
    assert done.status_code == 286  # tells htmx to stop polling
    status = find_all(done.text, "data-testid", "import-status")[0]
    assert status["data-status"] == "done"
    assert "hx-trigger" not in status
    assert "<html" not in done.text  # the fragment only
    assert ">5<" in done.text.split('data-testid="import-inserted"')[1][:20]
    assert "import-rollouts-link" in data_testids(done.text)
    full = client.get(f"/projects/{world.pid}/imports/{import_id}/status")
    assert full.status_code == 200  # without htmx: no polling code
    assert rollout_count(session, world.pid) == 5
    history = client.get(f"/projects/{world.pid}/imports")
    rows = find_all(history.text, "data-testid", "import-row")
    assert [row["data-status"] for row in rows] == ["done"]


def test_htmx_upload_redirects_with_hx_redirect(client: TestClient, world: World) -> None:
    login(client, world.engineer.email)
    token = csrf_for(client, f"/projects/{world.pid}/imports")
    response = client.post(
        f"/projects/{world.pid}/imports",
        headers={**HTMX, "X-CSRF-Token": token},
        files={"file": ("a.jsonl", jsonl([studio_row(1)]), "application/octet-stream")},
    )
    assert response.status_code == 204
    assert response.headers["hx-redirect"].startswith(f"/projects/{world.pid}/imports/")


def test_a_refused_upload_answers_422_with_the_reason(
    client: TestClient, session: Session, world: World
) -> None:
    login(client, world.engineer.email)
    response = upload(client, world.pid, json.dumps([studio_row(1)]).encode(), "rows.json")
    assert response.status_code == 422
    messages = find_all(response.text, "data-testid", "error-message")
    assert messages
    assert "the file is a JSON array; expected one JSON object per line (JSONL)" in response.text
    assert session.exec(select(RolloutImport)).all() == []


def test_problems_csv_neutralises_formulas_from_the_file(
    client: TestClient, engine: Engine, settings: Settings, world: World
) -> None:
    """A field name taken from the uploaded file cannot become a spreadsheet formula."""
    login(client, world.engineer.email)
    data = jsonl([studio_row(1), {"input": "q", "response": "r", "=cmd|' /C calc'!A0": 1}])
    import_id = job_id_from(upload(client, world.pid, data, "bad.jsonl"))
    run_worker(engine, settings, once=True)
    as_csv = client.get(f"/projects/{world.pid}/imports/{import_id}/problems.csv")
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    fields = [row[1] for row in rows[1:]]
    assert "'=cmd|' /C calc'!A0" in fields
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_a_rejected_file_lists_its_problems_for_download(
    client: TestClient, engine: Engine, settings: Settings, world: World
) -> None:
    login(client, world.engineer.email)
    data = jsonl([studio_row(1), {"input": [], "response": "x"}, {"respone": "typo"}])
    import_id = job_id_from(upload(client, world.pid, data, "bad.jsonl"))
    run_worker(engine, settings, once=True)

    page = client.get(f"/projects/{world.pid}/imports/{import_id}")
    assert find_all(page.text, "data-testid", "import-status")[0]["data-status"] == "rejected"
    assert len(find_all(page.text, "data-testid", "import-problem")) == 4
    assert "nothing was imported" in page.text

    as_csv = client.get(f"/projects/{world.pid}/imports/{import_id}/problems.csv")
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0] == ["line", "field", "kind", "message"]
    assert rows[1] == ["2", "input", "invalid", "expected at least one message, got an empty list"]
    assert [row[:2] for row in rows[2:]] == [["3", "input"], ["3", "respone"], ["3", "response"]]

    as_jsonl = client.get(f"/projects/{world.pid}/imports/{import_id}/problems.jsonl")
    lines = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert len(lines) == 4
    assert lines[0] == {
        "line": 2,
        "field": "input",
        "kind": "invalid",
        "message": "expected at least one message, got an empty list",
    }
    assert client.get(f"/projects/{world.pid}/imports/{import_id}/problems.txt").status_code == 404


def test_csv_columns_are_chosen_in_the_browser(
    client: TestClient, session: Session, engine: Engine, settings: Settings, world: World
) -> None:
    login(client, world.engineer.email)
    data = b"Prompt,Answer,Reviewer\nWhat is 2+2?,4,ana\nName a colour,blue,ben\n"
    import_id = job_id_from(upload(client, world.pid, data, "sheet.csv"))
    page = client.get(f"/projects/{world.pid}/imports/{import_id}")
    status = find_all(page.text, "data-testid", "import-status")[0]
    assert status["data-status"] == "awaiting_mapping"
    assert "hx-trigger" not in status
    options = find_all(page.text, "value", "Prompt")
    assert any("selected" in option for option in options), "Prompt not preselected"
    assert {"map-input", "map-response", "mapping-submit"} <= data_testids(page.text)

    token = csrf_for(client, f"/projects/{world.pid}/imports/{import_id}")
    wrong = client.post(
        f"/projects/{world.pid}/imports/{import_id}/mapping",
        data={"csrf_token": token, "map_input": "Prompt"},
        follow_redirects=False,
    )
    assert wrong.status_code == 422
    assert "the CSV file needs a column for &#39;response&#39;" in wrong.text

    chosen = client.post(
        f"/projects/{world.pid}/imports/{import_id}/mapping",
        data={"csrf_token": token, "map_input": "Prompt", "map_response": "Answer"},
        follow_redirects=False,
    )
    assert chosen.status_code == 303
    run_worker(engine, settings, once=True)
    job = session.get(RolloutImport, import_id)
    assert job is not None
    session.refresh(job)
    assert (job.status, job.inserted, job.options["csv_mapping"]) == (
        "done",
        2,
        {"input": "Prompt", "response": "Answer"},
    )


def test_an_expert_may_see_imports_but_not_upload(client: TestClient, world: World) -> None:
    login(client, world.expert.email)
    page = client.get(f"/projects/{world.pid}/imports")
    assert page.status_code == 200
    assert "import-form" not in data_testids(page.text)
    response = upload(client, world.pid, jsonl([studio_row(1)]), "a.jsonl")
    assert response.status_code == 403


# ---------------------------------------------------------------------------- API


def api_client(client: TestClient, session: Session, world: World) -> dict[str, str]:
    token = auth_service.create_api_token(session, world.engineer, "ci").token
    return {"Authorization": f"Bearer {token}"}


def test_import_with_an_api_token(
    client: TestClient, session: Session, engine: Engine, settings: Settings, world: World
) -> None:
    headers = api_client(client, session, world)
    rows = [studio_row(n) for n in range(3)]
    response = client.post(
        f"/api/v1/projects/{world.pid}/imports",
        headers=headers,
        files={"file": ("api.jsonl", jsonl(rows), "application/x-ndjson")},
        data={"skip_invalid": "false"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["status"], body["filename"], body["format"], body["finished"]) == (
        "queued",
        "api.jsonl",
        "studio",
        False,
    )
    run_worker(engine, settings, once=True)
    job = client.get(f"/api/v1/projects/{world.pid}/imports/{body['id']}", headers=headers).json()
    assert (job["status"], job["inserted"], job["progress"], job["finished"]) == (
        "done",
        3,
        1.0,
        True,
    )
    listed = client.get(f"/api/v1/projects/{world.pid}/imports", headers=headers).json()
    assert [item["id"] for item in listed] == [body["id"]]

    again = client.post(
        f"/api/v1/projects/{world.pid}/imports",
        headers=headers,
        files={"file": ("api.jsonl", jsonl(rows), "application/x-ndjson")},
    ).json()
    run_worker(engine, settings, once=True)
    second = client.get(f"/api/v1/projects/{world.pid}/imports/{again['id']}", headers=headers)
    assert (second.json()["inserted"], second.json()["duplicates"]) == (0, 3)
    assert rollout_count(session, world.pid) == 3


def test_api_csv_import_takes_the_mapping_as_json(
    client: TestClient, session: Session, engine: Engine, settings: Settings, world: World
) -> None:
    headers = api_client(client, session, world)
    data = b"Q,A\nhello,world\n"
    missing = client.post(
        f"/api/v1/projects/{world.pid}/imports",
        headers=headers,
        files={"file": ("s.csv", data, "text/csv")},
    )
    assert missing.status_code == 422
    assert missing.json()["detail"] == (
        "the CSV file needs a column for 'input' and 'response'; its columns are: Q, A — choose "
        "which column holds each field"
    )
    bad_json = client.post(
        f"/api/v1/projects/{world.pid}/imports",
        headers=headers,
        files={"file": ("s.csv", data, "text/csv")},
        data={"csv_mapping": "{not json"},
    )
    assert bad_json.status_code == 422
    assert bad_json.json()["detail"].startswith("csv_mapping must be a JSON object")
    ok = client.post(
        f"/api/v1/projects/{world.pid}/imports",
        headers=headers,
        files={"file": ("s.csv", data, "text/csv")},
        data={"csv_mapping": json.dumps({"input": "Q", "response": "A"})},
    )
    assert ok.status_code == 202
    run_worker(engine, settings, once=True)
    assert rollout_count(session, world.pid) == 1


def test_api_refuses_bad_files_and_bad_options_with_422(
    client: TestClient, session: Session, world: World
) -> None:
    headers = api_client(client, session, world)
    empty = client.post(
        f"/api/v1/projects/{world.pid}/imports",
        headers=headers,
        files={"file": ("e.jsonl", b"", "application/x-ndjson")},
    )
    assert empty.status_code == 422
    assert empty.json() == {
        "detail": "the file is empty",
        "problems": [{"line": None, "field": None, "message": "the file is empty"}],
    }
    unknown = client.post(
        f"/api/v1/projects/{world.pid}/imports",
        headers=headers,
        files={"file": ("a.jsonl", jsonl([studio_row(1)]), "application/x-ndjson")},
        data={"format": "xml"},
    )
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == (
        "unknown format 'xml'; choose one of: auto, studio, nova, openai, csv"
    )
    no_file = client.post(f"/api/v1/projects/{world.pid}/imports", headers=headers)
    assert no_file.status_code == 422
    assert "file" in no_file.json()["detail"]
    assert session.exec(select(RolloutImport)).all() == []


def test_api_problem_download_and_unknown_import(
    client: TestClient, session: Session, engine: Engine, settings: Settings, world: World
) -> None:
    headers = api_client(client, session, world)
    created = client.post(
        f"/api/v1/projects/{world.pid}/imports",
        headers=headers,
        files={"file": ("b.jsonl", jsonl([studio_row(1), {"input": 3, "response": "x"}]), "x")},
    ).json()
    run_worker(engine, settings, once=True)
    job = client.get(f"/api/v1/projects/{world.pid}/imports/{created['id']}", headers=headers)
    assert job.json()["status"] == "rejected"
    assert job.json()["problems"] == [
        {
            "line": 2,
            "field": "input",
            "kind": "invalid",
            "message": "expected a list, got the number 3",
        }
    ]
    problems = client.get(job.json()["problems_url"] + "?format=csv", headers=headers)
    assert problems.status_code == 200
    assert problems.text.splitlines()[1] == '2,input,invalid,"expected a list, got the number 3"'
    missing = client.get(f"/api/v1/projects/{world.pid}/imports/999999", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["detail"] == "No such import in this project."
