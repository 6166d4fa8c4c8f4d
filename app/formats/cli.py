"""`rubric-studio formats ...`: the file formats, their JSON Schemas, and checking a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from app.formats.registry import FORMATS, Shape, check_value

app = typer.Typer(
    help="File formats: list them, print a JSON Schema, check a file.", no_args_is_help=True
)


def _known(name: str) -> str:
    if name not in FORMATS:
        raise typer.BadParameter(f"choose one of: {', '.join(FORMATS)}")
    return name


@app.command("list")
def list_command() -> None:
    """Each format: name, shape, documentation page, who reads it."""
    for f in FORMATS.values():
        typer.echo(f"{f.name}\t{f.shape.value}\tdocs/{f.doc}\t{f.title}")


@app.command("schema")
def schema_command(
    name: Annotated[str, typer.Argument(help="Format name (see `formats list`).")],
) -> None:
    """Print a format's JSON Schema."""
    typer.echo(json.dumps(FORMATS[_known(name)].schema(), indent=2, ensure_ascii=False))


def check_text(name: str, text: str, suffix: str) -> list[str]:
    """Problems of a whole file, each as 'line N: field: message' (or 'field: message')."""
    fmt = FORMATS[name]
    problems: list[str] = []
    if fmt.shape == Shape.lines:
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                value: Any = json.loads(raw)
            except ValueError as exc:
                problems.append(f"line {number}: not valid JSON ({exc})")
                continue
            for field, message in check_value(name, value):
                problems.append(f"line {number}: {field or 'line'}: {message}")
        return problems
    try:
        value = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line = getattr(exc, "lineno", None) or (mark.line + 1 if mark is not None else None)
        return [f"line {line}: not readable: {exc}" if line else f"not readable: {exc}"]
    return [f"{field or '(document)'}: {message}" for field, message in check_value(name, value)]


@app.command("check")
def check_command(
    name: Annotated[str, typer.Argument(help="Format name (see `formats list`).")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The file.")],
) -> None:
    """Check a file against a format's schema (exit 1 with each problem's line and field)."""
    problems = check_text(_known(name), file.read_text(encoding="utf-8-sig"), file.suffix)
    for problem in problems[:100]:
        typer.echo(problem, err=True)
    if problems:
        typer.secho(f"{file}: {len(problems):,} problem(s).", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(f"{file}: a valid {name} file.")
