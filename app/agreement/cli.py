"""`rubric-studio agreement ...`: read a judge run's agreement with the experts (as JSON)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Annotated, Any

import typer

from app import cli_support as cs

app = typer.Typer(help="Judge-expert agreement: per criterion and overall.", no_args_is_help=True)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@app.command("show")
def show_command(
    project: cs.ProjectOpt,
    run: Annotated[int, typer.Argument(help="Judge run id.")],
) -> None:
    """A run's agreement with the experts' submitted labels, per criterion and overall (JSON;
    the same figures as GET /api/v1/projects/{id}/runs/{run}/agreement)."""
    from app.agreement import service as agreement_service
    from app.labels import review

    with cs.session() as db:
        found = cs.project(db, project)
        with cs.domain_errors():
            judge_run = review.get_run(db, found.id or 0, run)
            result = agreement_service.run_agreement(db, judge_run)
    typer.echo(
        json.dumps(
            {
                "run_id": run,
                "rubric_version_id": judge_run.rubric_version_id,
                "rubric_version": result.summary.version_label,
                "items_judged": result.summary.items_judged,
                "judge_errors": result.summary.judge_errors,
                "items_labelled": result.items_labelled,
                "labels": result.n_labels,
                "overall_rule": result.overall_rule,
                "overall": _plain(result.overall),
                "criteria": _plain(result.criteria),
                "preference": _plain(result.preference),
            },
            indent=2,
            default=str,
        )
    )
