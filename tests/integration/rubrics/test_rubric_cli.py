"""`rubric-studio rubrics list/export/import`: rubric files from the command line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings, get_settings
from app.rubrics import files as rubric_files
from app.rubrics import publishing as rubric_publishing
from app.rubrics import service as rubric_service
from app.rubrics.models import Rubric
from app.rubrics.serialization import load_rubric
from tests.integration.rubrics.conftest import World

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[None]:
    monkeypatch.setenv("RS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("RS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RS_ENV", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_export_then_import_from_the_command_line(
    cli_env: None, session: Session, world: World, tmp_path: Path
) -> None:
    rubric = rubric_service.create_rubric(
        session, world.project, actor=world.expert, name="Legal", template="legal_contract_review"
    )
    rubric_publishing.publish_version(session, rubric, actor=world.expert, change_note="v1")
    listed = runner.invoke(cli, ["rubrics", "list", "--project", str(world.pid)])
    assert listed.exit_code == 0 and f"{rubric.id}\tLegal\trubric\tv1" in listed.output

    target = tmp_path / "legal.rubric.json"
    args = ["rubrics", "export", "--project", str(world.pid), "--rubric", str(rubric.id)]
    exported = runner.invoke(cli, [*args, "--format", "json", "-o", str(target)])
    assert exported.exit_code == 0, exported.output
    original = load_rubric(target.read_text(encoding="utf-8"), "json")
    assert [v.number for v in original.versions] == [1]

    imported = runner.invoke(
        cli,
        [
            "rubrics",
            "import",
            str(target),
            "--project",
            str(world.pid),
            "--user",
            world.admin.email,
            "--name",
            "Legal copy",
        ],
    )
    assert imported.exit_code == 0, imported.output
    copy = session.exec(select(Rubric).where(Rubric.name == "Legal copy")).one()
    assert rubric_files.export_document(session, copy) == original.model_copy(
        update={"name": "Legal copy"}
    )

    again = runner.invoke(
        cli,
        [
            "rubrics",
            "import",
            str(target),
            "--project",
            str(world.pid),
            "--user",
            world.admin.email,
        ],
    )
    assert again.exit_code == 1 and "already has a rubric named" in again.output
    missing = runner.invoke(cli, [*args[:4], "--rubric", "999999"])
    assert missing.exit_code == 1 and "No rubric '999999'" in missing.output
    to_stdout = runner.invoke(cli, [*args, "--version", "1"])
    assert to_stdout.exit_code == 0 and to_stdout.output.startswith("format_version: 1")
