"""The engineer's and admin's actions from the command line, with one convention everywhere:
--project is an id or a slug, --rubric-version an id or name:N, --as (or RS_CLI_AS) the account."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings, get_settings
from app.exports.models import ExportBundle
from app.judging.models import JudgeConfig
from app.labels.models import GoldItem
from app.projects import service as project_service
from app.projects.models import Membership, Project
from app.rollouts.models import Rollout
from app.rubrics.models import Rubric, RubricApproval, RubricVersion
from tests.support.factories import insert_rollouts, make_user
from tests.support.web import login

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[None]:
    monkeypatch.setenv("RS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("RS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RS_ENV", "test")
    monkeypatch.setenv("RS_OUTBOUND_ALLOW_LOOPBACK", "true")
    monkeypatch.delenv("RS_CLI_AS", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.output


def test_projects_members_and_settings_from_the_command_line(
    cli_env: None, session: Session, monkeypatch: pytest.MonkeyPatch, client: TestClient
) -> None:
    admin = make_user(session, "admin@example.com")
    make_user(session, "bob@example.com")
    code, out = run("projects", "create", "Legal review")
    assert code == 2 and "give --as EMAIL, or set RS_CLI_AS" in out
    code, out = run("projects", "create", "Legal review", "--as", admin.email)
    assert code == 0, out
    project = session.exec(select(Project).where(Project.slug == "legal-review")).one()

    # RS_CLI_AS stands for --as in every command.
    monkeypatch.setenv("RS_CLI_AS", admin.email)
    get_settings.cache_clear()
    assert run("projects", "members", "add", "-p", "legal-review", "bob@example.com",
               "--role", "reviewer")[0] == 0  # fmt: skip
    code, out = run("projects", "members", "role", "-p", str(project.id), "bob@example.com",
                    "--role", "engineer")  # fmt: skip
    assert code == 0, out
    membership = session.exec(select(Membership).where(Membership.role == "engineer")).one()
    assert membership.project_id == project.id

    # Where the document is: typed values checked, the field named.
    code, out = run("projects", "update", "-p", "legal-review", "--document-source", "metadata")
    assert code == 1 and "document_location.metadata_key" in out
    code, out = run(
        "projects", "update", "-p", "legal-review", "--document-source", "user_message",
        "--start-marker", "<contract>", "--end-marker", "</contract>",
    )  # fmt: skip
    assert code == 0, out
    session.expire_all()
    location = project_service.document_location(session.get(Project, project.id))
    assert (location.source, location.start_marker) == ("user_message", "<contract>")
    login(client, admin.email)
    body = client.get(f"/api/v1/projects/{project.id}").json()
    assert body["document_location"]["end_marker"] == "</contract>"

    # The acting account's role must allow the action.
    code, out = run("projects", "update", "-p", "legal-review", "--name", "X",
                    "--as", "bob@example.com")  # fmt: skip
    assert code == 1 and "(engineer) may not do this" in out
    assert run("projects", "members", "remove", "-p", "legal-review", "bob@example.com")[0] == 0
    assert session.exec(select(Membership).where(Membership.project_id == project.id)).all()
    code, out = run("projects", "list", "--json")
    assert code == 0 and json.loads(out)[0]["slug"] == "legal-review"


def test_rubric_design_loop_gold_reward_and_export_from_the_command_line(
    cli_env: None, session: Session, tmp_path: Path
) -> None:
    admin = make_user(session, "admin@example.com")
    expert = make_user(session, "expert@example.com")
    assert run("projects", "create", "Contracts", "--as", admin.email)[0] == 0
    project = session.exec(select(Project)).one()
    run("projects", "members", "add", "-p", "contracts", expert.email, "--role", "expert",
        "--as", admin.email)  # fmt: skip
    rollout_ids = insert_rollouts(session, project, 3)

    code, out = run("rubrics", "create", "-p", "contracts", "Legal", "--template",
                    "legal_contract_review", "--as", expert.email)  # fmt: skip
    assert code == 0, out
    code, out = run("rubrics", "publish", "-p", "contracts", "Legal", "--change-note", "v1",
                    "--as", expert.email)  # fmt: skip
    assert code == 0 and "Published Legal:1" in out, out
    version = session.exec(select(RubricVersion)).one()
    # The publisher may not sign off alone; another expert (the admin) may, naming name:N.
    code, out = run("rubrics", "approve", "-p", "contracts", "--rubric-version", "Legal:1",
                    "--as", expert.email)  # fmt: skip
    assert code == 1 and "another expert must sign it off" in out
    code, out = run("rubrics", "approve", "-p", str(project.id), "--rubric-version",
                    str(version.id), "--as", admin.email)  # fmt: skip
    assert code == 0, out
    assert session.exec(select(RubricApproval)).one().rubric_version_id == version.id
    code, out = run("rubrics", "render", "-p", "contracts", "--rubric-version", "Legal",
                    "--rollout", str(rollout_ids[0]))  # fmt: skip
    assert code == 0 and json.loads(out)["messages"], out
    assert run("rubrics", "archive", "-p", "contracts", "Legal", "--as", admin.email)[0] == 0
    session.expire_all()
    assert session.exec(select(Rubric)).one().archived

    # Judge configurations.
    code, out = run("judge", "config", "create", "-p", "contracts", "--name", "local",
                    "--provider", "openai_compat", "--model-id", "m",
                    "--base-url", "http://127.0.0.1:9/v1", "--as", admin.email)  # fmt: skip
    assert code == 0, out
    code, out = run("judge", "config", "update", "-p", "contracts", "local",
                    "--temperature", "0.5", "--as", admin.email)  # fmt: skip
    assert code == 0, out
    session.expire_all()
    judge = session.exec(select(JudgeConfig)).one()
    assert judge.params["temperature"] == 0.5 and judge.model_id == "m"
    code, out = run("judge", "config", "create", "-p", "contracts", "--name", "bad",
                    "--provider", "nope", "--model-id", "m")  # fmt: skip
    assert code == 1 and "--provider" in out

    # Labels imported (as an engineer would), then the gold set: add to development, lock into
    # test; a test item cannot be removed.
    keys = ["TargetDocument_Grounding", "Reference_Consistency", "Actionability"]
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        "".join(
            json.dumps(
                {"rollout": r.external_id, "annotator": "Jane", "values": dict.fromkeys(keys, 4)}
            )
            + "\n"
            for r in session.exec(select(Rollout).order_by(Rollout.id)).all()[:2]
        ),
        encoding="utf-8",
    )
    code, out = run("labels", "import", str(labels), "-p", "contracts",
                    "--rubric-version", "Legal:1", "--as", admin.email)  # fmt: skip
    assert code == 0 and "2 labels imported" in out, out
    code, out = run("gold", "add", "-p", "contracts", str(rollout_ids[0]), str(rollout_ids[1]),
                    "--split", "development", "--as", expert.email)  # fmt: skip
    assert code == 0, out
    first = session.exec(select(GoldItem).order_by(GoldItem.id)).first()
    assert first is not None
    assert run("gold", "lock", "-p", "contracts", str(first.id), "--as", expert.email)[0] == 0
    code, out = run("gold", "remove", "-p", "contracts", str(first.id), "--as", expert.email)
    assert code == 1 and "test" in out

    # The reward configuration: shown, set from a file, refused with the field named.
    code, out = run("reward", "show", "-p", "contracts")
    shown = json.loads(out)
    shown["config"]["length"]["weight"] = 0.3
    good = tmp_path / "reward.json"
    good.write_text(json.dumps(shown), encoding="utf-8")
    code, out = run("reward", "set", "-p", "contracts", str(good), "--as", admin.email)
    assert code == 0 and "revision 1" in out, out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"length": {"weight": "heavy"}}), encoding="utf-8")
    code, out = run("reward", "set", "-p", "contracts", str(bad), "--as", admin.email)
    assert code == 1 and "length" in out and "weight" in out

    # The gate blocks without figures (exit 3); an admin overrides it with a reason.
    code, out = run("exports", "gate", "-p", "contracts", "--rubric-version", "Legal:1",
                    "--judge", "local")  # fmt: skip
    assert code == 3 and json.loads(out.split("\nwarning:")[0])["gate"]["passed"] is False
    code, out = run("exports", "create", "-p", "contracts", "--rubric-version", "Legal:1",
                    "--judge", "local", "--as", expert.email)  # fmt: skip
    assert code == 1 and "may not do this" in out  # experts do not export
    code, out = run("exports", "create", "-p", "contracts", "--rubric-version", "Legal:1",
                    "--judge", "local", "--override-reason", "a command-line test",
                    "--as", admin.email)  # fmt: skip
    assert code == 0 and "gate overridden" in out, out
    bundle = session.exec(select(ExportBundle)).one()
    target = tmp_path / "reward.py"
    code, out = run("exports", "write", str(bundle.id), "--target", "trl", "--out", str(target))
    assert code == 0 and target.read_text(encoding="utf-8").startswith('"""'), out
    assert "gate overridden" not in run("exports", "list", "-p", "contracts")[1]


def test_identifiers_are_refused_in_plain_words(cli_env: None, session: Session) -> None:
    admin = make_user(session, "admin@example.com")
    run("projects", "create", "Contracts", "--as", admin.email)
    assert run("rubrics", "list", "-p", "nope")[1].startswith("No project 'nope'")
    code, out = run("rubrics", "approve", "-p", "contracts", "--rubric-version", "Legal:x",
                    "--as", admin.email)  # fmt: skip
    assert code == 1 and "is not a whole number" in out
    code, out = run("rubrics", "approve", "-p", "contracts", "--rubric-version", "Legal:1",
                    "--as", "ghost@example.com")  # fmt: skip
    assert code == 1 and "No published version" in out
