"""What every command line shares: the settings, or a clean exit that says what is wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from app.core.config import Settings


def cli_settings() -> Settings:
    """The process's settings; a configuration error ends the command with exit code 2."""
    from app.core.config import get_settings  # lazily: `--help` stays fast

    try:
        return get_settings()
    except ValueError as exc:
        typer.secho(f"Configuration error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
