"""Every action has a command and a JSON route: derived from the app, not from a list by hand.

The browser's state-changing routes and the engineer's and admin's permissions come from the app
itself; each must be covered by an entry of app/actions.py, whose command must exist in the CLI and
whose route must exist in the route table. docs/cli-and-api.md must show the same table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.routing import APIRoute

from app.actions import ACTIONS, SESSION_PAGES, markdown_table
from app.auth.policies import ROLE_PERMISSIONS, Permission
from app.cli import cli
from app.main import all_routers
from app.projects.models import Role

CHANGES = {"POST", "PUT", "PATCH", "DELETE"}
DOC = Path(__file__).resolve().parents[3] / "docs" / "cli-and-api.md"


def _routes() -> list[APIRoute]:
    return [r for router in all_routers() for r in router.routes if isinstance(r, APIRoute)]


def _browser_actions() -> set[str]:
    return {
        f"{r.endpoint.__module__}:{r.endpoint.__name__}"
        for r in _routes()
        if not r.path.startswith("/api/") and r.methods & CHANGES
    }


def test_every_state_changing_browser_route_is_an_action() -> None:
    listed = {page for action in ACTIONS for page in action.pages}
    missing = _browser_actions() - listed - set(SESSION_PAGES)
    assert not missing, f"browser actions without a CLI command and API route: {sorted(missing)}"
    stale = listed - _browser_actions()
    assert not stale, f"app/actions.py names browser routes that do not exist: {sorted(stale)}"


def test_every_permission_of_engineers_and_admins_has_an_action() -> None:
    held = ROLE_PERMISSIONS[Role.engineer] | ROLE_PERMISSIONS[Role.admin]
    covered = {a.permission for a in ACTIONS if a.permission is not None}
    assert held == set(Permission)
    assert not (held - covered), f"permissions without an action: {sorted(held - covered)}"


def test_every_action_has_its_api_route() -> None:
    table = {(m, r.path) for r in _routes() for m in r.methods}
    for action in ACTIONS:
        method, path = action.api.split(" ", 1)
        assert (method, path) in table, f"{action.title}: no route {action.api}"


def _command(words: list[str]) -> Any:
    # Typer carries its own copy of Click: use the command's own context class.
    command: Any = typer.main.get_command(cli)
    ctx = command.context_class(command)
    for word in words:
        assert hasattr(command, "get_command"), f"{' '.join(words)}: {word} is not a group"
        found = command.get_command(ctx, word)
        assert found is not None, f"no command `rubric-studio {' '.join(words)}`"
        if hasattr(found, "real"):  # a lazy command: load it
            found = found.real()
        command = found
        ctx = command.context_class(command, parent=ctx)
    return command


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.cli)
def test_every_action_has_its_command(action) -> None:
    words = action.cli.split()
    names = [w for w in words if not w.startswith("--")]
    options = [w for w in words if w.startswith("--")]
    command = _command(names)
    declared = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    for option in options:
        assert option in declared, f"`rubric-studio {' '.join(names)}` has no {option}"


def test_the_documented_table_is_the_registry() -> None:
    assert markdown_table() in DOC.read_text(encoding="utf-8"), (
        "docs/cli-and-api.md is out of date: paste app.actions.markdown_table() into it"
    )
