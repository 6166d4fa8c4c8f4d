"""`rubric-studio export BUNDLE_ID --target ... --out PATH`: write a target generated from a bundle
(and optionally deploy the Nova Lambda with boto3)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlmodel import Session

    from app.projects.models import Project

TARGET_HELP = (
    "nova-lambda | nova-recipe | nova-iam | trl | verl | openrlhf | trainer-requirements | "
    "openai-grader | foundry-grader | bundle"
)


def export_command(
    bundle_id: Annotated[int, typer.Argument(help="Id of the export bundle (see its page).")],
    target: Annotated[str, typer.Option("--target", help=TARGET_HELP)],
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    model_id: Annotated[
        str | None, typer.Option(help="Judge model for the package (e.g. a Bedrock model id).")
    ] = None,
    provider: Annotated[
        str | None, typer.Option(help="Judge provider for the package: bedrock or openai_compat.")
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region of the Bedrock judge.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Base URL of an OpenAI-compatible judge.")
    ] = None,
    function_name: Annotated[str | None, typer.Option(help="Lambda function name.")] = None,
    number_generation: Annotated[int, typer.Option(help="Generations per prompt.")] = 8,
    lambda_concurrency_limit: Annotated[
        int, typer.Option(help="Concurrent Lambda invocations allowed in the recipe.")
    ] = 100,
    architecture: Annotated[
        str,
        typer.Option(help="nova-lambda: Lambda architecture, x86_64 or arm64 (wheels, deploy)."),
    ] = "x86_64",
    vendor: Annotated[
        bool,
        typer.Option(help="nova-lambda only: pip-install the requirements into the zip."),
    ] = False,
    deploy: Annotated[
        bool, typer.Option(help="nova-lambda only: create or update the function with boto3.")
    ] = False,
    role_arn: Annotated[str | None, typer.Option(help="--deploy: the execution role ARN.")] = None,
    s3_bucket: Annotated[
        str | None, typer.Option(help="--deploy: upload the zip to this bucket first.")
    ] = None,
) -> None:
    """Generate a training package from an export bundle and write it to --out."""
    from pydantic import ValidationError
    from sqlmodel import Session

    from app.core.cli import cli_settings as _settings
    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.exports import service as export_service
    from app.exports.models import ExportBundle
    from app.exports.schemas import TARGET_NAMES, TargetQuery

    if target not in TARGET_NAMES:
        typer.secho(f"--target must be one of: {TARGET_HELP}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if vendor and target != "nova-lambda":
        typer.secho("--vendor needs --target nova-lambda.", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if deploy and (target != "nova-lambda" or not role_arn):
        typer.secho(
            "--deploy needs --target nova-lambda and --role-arn.", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(2)
    try:
        query = TargetQuery(
            provider=provider,
            model_id=model_id,
            region=region,
            base_url=base_url,
            function_name=function_name,
            number_generation=number_generation,
            lambda_concurrency_limit=lambda_concurrency_limit,
            lambda_architecture=architecture,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in exc.errors()
        )
        typer.secho(problems, fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    settings = _settings()
    with Session(get_engine(settings.resolved_database_url)) as session:
        bundle = session.get(ExportBundle, bundle_id)
        if bundle is None:
            typer.secho(f"No export bundle with id {bundle_id}.", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        try:
            file = export_service.target_file(bundle, target, query.options())
        except DomainError as exc:
            typer.secho(exc.message, fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        content_hash = bundle.content_hash
    data = file.data
    if vendor:
        from app.exports.deploy import vendor_zip

        data = vendor_zip(data, architecture=architecture)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    typer.echo(f"Wrote {target} ({len(data):,} bytes) to {out} (bundle sha256 {content_hash}).")
    if deploy:
        from app.exports.deploy import deploy_lambda
        from app.exports.targets.nova_lambda import default_function_name

        name = function_name or default_function_name(content_hash)
        result = deploy_lambda(
            data,
            function_name=name,
            role_arn=role_arn or "",
            region=region,
            s3_bucket=s3_bucket,
            architecture=architecture,
        )
        verb = "Created" if result.created else "Updated"
        typer.echo(f"{verb} {result.function_arn} (code: {result.code_location}).")


# ---- `rubric-studio exports ...`: the gate, bundles, targets -------------------------------------

exports_app = typer.Typer(
    help="Exports: check the gate, create a bundle, list them, write targets.",
    no_args_is_help=True,
)
exports_app.command("write")(export_command)


def _choices(
    db: Session, project: str, rubric_version: str, judge: str
) -> tuple[Project, int, int]:
    from app import cli_support as cs

    found = cs.project(db, project)
    version = cs.rubric_version(db, found, rubric_version)
    config = cs.judge_config(db, found, judge)
    return found, version.id or 0, config.id or 0


@exports_app.command("gate")
def gate_command(
    project: Annotated[str, typer.Option("--project", "-p", help="Project id or slug.")],
    rubric_version: Annotated[
        str, typer.Option(help="Rubric version: its id, or 'rubric name:N'.")
    ],
    judge: Annotated[str, typer.Option(help="Judge configuration id or name.")],
    run: Annotated[int | None, typer.Option(help="Judge run giving the figures.")] = None,
) -> None:
    """The agreement on the gold test split and the export gate, without exporting (JSON; exit
    3 when the gate blocks)."""
    import json

    from app import cli_support as cs
    from app.exports import service as export_service

    with cs.session() as db:
        found, version_id, judge_id = _choices(db, project, rubric_version, judge)
        with cs.domain_errors():
            check = export_service.check_gate(
                db,
                found,
                rubric_version_id=version_id,
                judge_config_id=judge_id,
                run_id=run,
            )
    typer.echo(json.dumps({"agreement": check.summary, "gate": check.gate}, indent=2, default=str))
    for warning in check.gate.get("warnings") or []:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    if not check.gate.get("passed"):
        raise typer.Exit(3)


@exports_app.command("create")
def create_command(
    project: Annotated[str, typer.Option("--project", "-p", help="Project id or slug.")],
    rubric_version: Annotated[
        str, typer.Option(help="Rubric version: its id, or 'rubric name:N'.")
    ],
    judge: Annotated[str, typer.Option(help="Judge configuration id or name.")],
    run: Annotated[int | None, typer.Option(help="Judge run giving the figures.")] = None,
    override_reason: Annotated[
        str | None, typer.Option(help="Admins: export although the gate blocks, saying why.")
    ] = None,
    as_email: Annotated[
        str | None,
        typer.Option("--as", help="Email of the account acting (default: RS_CLI_AS)."),
    ] = None,
) -> None:
    """Freeze an export bundle (blocked by a failing gate unless an admin overrides it)."""
    from app import cli_support as cs
    from app.auth.policies import Permission
    from app.exports import service as export_service

    with cs.session() as db:
        found, version_id, judge_id = _choices(db, project, rubric_version, judge)
        user = cs.person(db, found, as_email, Permission.export_create)
        with cs.domain_errors():
            bundle = export_service.create_bundle(
                db,
                found,
                actor=user,
                can_override=cs.may(db, found, user, Permission.export_override),
                rubric_version_id=version_id,
                judge_config_id=judge_id,
                run_id=run,
                override_reason=override_reason,
            )
    note = " (gate overridden)" if bundle.override_reason else ""
    typer.echo(f"Export bundle {bundle.id} #{bundle.number}: sha256 {bundle.content_hash}{note}.")


@exports_app.command("list")
def list_command(
    project: Annotated[str, typer.Option("--project", "-p", help="Project id or slug.")],
) -> None:
    """Export bundles, newest first: id, number, hash, gate."""
    from app import cli_support as cs
    from app.exports import service as export_service

    with cs.session() as db:
        found = cs.project(db, project)
        bundles = export_service.list_bundles(db, found.id or 0)
    for b in bundles:
        gate = "passed" if b.gate_passed else ("overridden" if b.override_reason else "failed")
        typer.echo(f"{b.id}\t#{b.number}\t{b.content_hash}\t{gate}")
