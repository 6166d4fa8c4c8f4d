"""Subcommands that load on first use, so `rubric-studio --help` starts in a fraction of a second.

Each domain's commands live in its own `cli.py`, which imports the domain's services and with them
SQLAlchemy, FastAPI and the judge engine: seconds of imports that `--help` or `db upgrade` never
need. The top-level group lists those commands from a table (name → module, attribute, one line
of help) and imports a module only when its command runs or shows its own help.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# Typer carries its own copy of Click (typer._click); these are its Command and Context types.
Command = Any
Context = Any


@dataclass(frozen=True)
class LazyCommand:
    module: str
    attribute: str
    help: str


def _load(name: str, spec: LazyCommand) -> Command:
    target = getattr(importlib.import_module(spec.module), spec.attribute)
    command: Command
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)
    else:  # a plain function: a one-command Typer turns it into a click command
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _Deferred(TyperCommand):
    """Stands in for a command in the group's listing; loads the real one when it runs."""

    def __init__(self, name: str, spec: LazyCommand) -> None:
        super().__init__(name, help=spec.help, short_help=spec.help)
        self._spec = spec
        self._real: Command | None = None

    def real(self) -> Command:
        if self._real is None:
            self._real = _load(self.name or "", self._spec)
        return self._real

    def make_context(
        self, info_name: str | None, args: list[str], parent: Context = None, **extra: Any
    ) -> Context:
        return self.real().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Context) -> Any:
        return self.real().invoke(ctx)


class LazyGroup(TyperGroup):
    """A Typer group whose `lazy` table adds commands that import their module on first use."""

    lazy: dict[str, LazyCommand] = {}

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        return _Deferred(cmd_name, self.lazy[cmd_name])
