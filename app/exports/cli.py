"""`rubric-studio export BUNDLE_ID --target ... --out PATH`: write a target generated from a bundle
(and optionally deploy the Nova Lambda with boto3)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.core.cli import cli_settings

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
    settings = cli_settings()
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
