"""The command starts fast: `--help` lists every command without importing the domains."""

from __future__ import annotations

import json
import subprocess
import sys

import typer
from typer.core import TyperCommand, TyperGroup
from typer.testing import CliRunner

from app.cli import RootGroup, cli
from app.cli_lazy import _load

HEAVY = ("sqlalchemy", "sqlmodel", "fastapi", "alembic", "uvicorn", "app.core.db", "app.judging")


def test_importing_the_command_and_its_help_import_no_heavy_module() -> None:
    code = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from app.cli import cli\n"
        "result = CliRunner().invoke(cli, ['--help'])\n"
        f"print(json.dumps([result.exit_code, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    exit_code, loaded = json.loads(out.strip().splitlines()[-1])
    assert exit_code == 0
    assert loaded == []


def test_help_lists_every_lazy_command_with_its_line() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in RootGroup.lazy:
        assert name in result.output


def test_every_lazy_command_loads_into_a_real_command() -> None:
    for name, spec in RootGroup.lazy.items():
        command = _load(name, spec)
        assert isinstance(command, TyperCommand | TyperGroup)
        assert command.name == name


def test_a_lazy_command_shows_its_own_help() -> None:
    result = CliRunner().invoke(cli, ["judge", "--help"])
    assert result.exit_code == 0
    assert "run" in result.output and "cancel" in result.output
    assert isinstance(typer.main.get_command(cli), RootGroup)


def test_every_command_group_loads_without_heavy_modules() -> None:
    """`rubric-studio <group> --help` imports only its command module: no database, web or judge
    engine code (they load when a command runs)."""
    modules = sorted({spec.module for spec in RootGroup.lazy.values()})
    # The domain packages themselves are empty; their services and engines are what is heavy.
    heavy = (*HEAVY[:-1], "app.judging.engine", "app.judging.service", "app.rubrics.service")
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
