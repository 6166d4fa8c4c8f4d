"""`rubric-studio judge config ...` and `judge test-connection`: judge configurations from the
command line (list, create, update, delete, test)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app import cli_support as cs
from app.auth.policies import Permission

if TYPE_CHECKING:
    from app.judging.schemas import (
        JudgeConfigInput,
    )
    from app.llm.egress import EgressPolicy


def test_connection_command(
    project_ref: Annotated[
        str | None, typer.Argument(metavar="[PROJECT]", help="Deprecated: use --project.")
    ] = None,
    judge_ref: Annotated[
        str | None, typer.Argument(metavar="[JUDGE]", help="Judge configuration id or name.")
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project id or slug.")
    ] = None,
    judge: Annotated[
        str | None, typer.Option("--judge", help="Judge configuration id or name.")
    ] = None,
) -> None:
    """Send one tiny request with a judge configuration and print the answer or the error."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.judging import configs as judge_configs

    settings = cs.settings()
    with Session(get_engine(settings.resolved_database_url), expire_on_commit=False) as session:
        if (project or project_ref) is None or (judge or judge_ref) is None:
            raise cs.fail("Give --project and --judge.")
        found = cs.project(session, project or project_ref or "")
        config = cs.judge_config(session, found, judge or judge_ref or "")
    try:
        check = judge_configs.check_connection(config)
    except DomainError as exc:
        raise cs.fail(exc.message) from None
    if not check.ok:
        raise cs.fail(f"{config.name}: the judge could not be reached or refused: {check.error}")
    who = "the test double (not a real LLM)" if check.test_double else config.model_id
    typer.echo(
        f"{config.name}: connected; {who} answered in {check.latency_ms:,} ms: "
        f"“{check.answer}” ({check.input_tokens:,} + {check.output_tokens:,} tokens)."
    )


# ---- judge configurations ---------------------------------------------------------------------

config_cli = typer.Typer(
    help="Judge configurations: list, create, update, delete, test.", no_args_is_help=True
)

ConfigFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file",
        exists=True,
        dir_okay=False,
        help="A JSON or YAML file with the configuration's fields (as in the API).",
    ),
]


# The fields `config create` and `config update` take as options (as in the API).
ProviderOpt = Annotated[str | None, typer.Option(help="openai_compat or bedrock.")]
ModelIdOpt = Annotated[str | None, typer.Option(help="The model id.")]
BaseUrlOpt = Annotated[str | None, typer.Option(help="OpenAI-compatible base URL.")]
ApiKeyEnvOpt = Annotated[str | None, typer.Option(help="NAME of the variable holding the key.")]
RegionOpt = Annotated[str | None, typer.Option(help="Bedrock region.")]
TemperatureOpt = Annotated[float | None, typer.Option()]
MaxTokensOpt = Annotated[int | None, typer.Option()]
ConcurrencyOpt = Annotated[int | None, typer.Option()]
CONFIG_OPTIONS: dict[str, object] = {
    "provider": ProviderOpt,
    "model_id": ModelIdOpt,
    "base_url": BaseUrlOpt,
    "api_key_env": ApiKeyEnvOpt,
    "region": RegionOpt,
    "temperature": TemperatureOpt,
    "max_tokens": MaxTokensOpt,
    "concurrency": ConcurrencyOpt,
}


def with_config_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the configuration's field options (CONFIG_OPTIONS, before --file), written
    once for `config create` and `config update`; the command receives them in ``**options``."""
    signature = inspect.signature(command, eval_str=True)
    params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    at = next(i for i, p in enumerate(params) if p.name == "file")
    fields = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=a)
        for name, a in CONFIG_OPTIONS.items()
    ]
    command.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*params[:at], *fields, *params[at:]]
    )
    return command


def _config_fields(file: Path | None, options: dict[str, object]) -> dict[str, object]:
    import json

    import yaml

    data: dict[str, object] = {}
    if file is not None:
        text = file.read_text(encoding="utf-8-sig")
        try:
            loaded = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise cs.fail(f"{file}: not readable: {exc}") from None
        if not isinstance(loaded, dict):
            raise cs.fail(f"{file}: the configuration must be an object of fields.")
        data.update(loaded)
    data.update({k: v for k, v in options.items() if v is not None})
    return data


def _config_input(data: dict[str, object]) -> JudgeConfigInput:
    from pydantic import ValidationError

    from app.judging.schemas import (
        JudgeConfigInput,
    )

    try:
        return JudgeConfigInput.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"  --{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in exc.errors()
        ]
        raise cs.fail("The judge configuration was not saved:\n" + "\n".join(lines)) from None


def _egress() -> EgressPolicy:
    from app.llm.egress import EgressPolicy

    return EgressPolicy.from_settings(cs.settings())


@config_cli.command("list")
def config_list_command(project: cs.ProjectOpt, as_json: cs.JsonOpt = False) -> None:
    """A project's judge configurations."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.judging import configs as judge_configs
    from app.judging.schemas import (
        JudgeConfigPublic,
    )

    with Session(get_engine(cs.settings().resolved_database_url)) as session:
        found = cs.project(session, project)
        configs = judge_configs.list_configs(session, found.id or 0)
        public = [JudgeConfigPublic.model_validate(c.model_dump()) for c in configs]
    if as_json:
        cs.echo_json(public)
        return
    for c in public:
        typer.echo(f"{c.id}\t{c.name}\t{c.provider}\t{c.model_id}")


@config_cli.command("create")
@with_config_options
def config_create_command(
    project: cs.ProjectOpt,
    name: Annotated[str | None, typer.Option(help="Its name.")] = None,
    file: ConfigFileOpt = None,
    as_email: cs.AsOpt = None,
    **options: object,
) -> None:
    """Create a judge configuration from options and/or --file (options win)."""
    from app.judging import configs as judge_configs

    data = _config_input(
        _config_fields(
            file,
            {"name": name, **options},
        )
    )
    with cs.session() as session:
        found = cs.project(session, project)
        actor = cs.actor(session, found, as_email, Permission.judge_manage)
        with cs.domain_errors():
            config = judge_configs.create_config(
                session, found, actor=actor, data=data, egress=_egress()
            )
    typer.echo(f"Created judge configuration {config.id} '{config.name}'.")


@config_cli.command("update")
@with_config_options
def config_update_command(
    project: cs.ProjectOpt,
    judge: Annotated[str, typer.Argument(metavar="JUDGE", help="Configuration id or name.")],
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    file: ConfigFileOpt = None,
    as_email: cs.AsOpt = None,
    **options: object,
) -> None:
    """Change a judge configuration: fields not given keep their value."""
    from app.judging import configs as judge_configs
    from app.judging.schemas import (
        JudgeConfigInput,
    )

    with cs.session() as session:
        found = cs.project(session, project)
        config = cs.judge_config(session, found, judge)
        stored = {**config.model_dump(), **dict(config.params or {})}
        current = {k: v for k, v in stored.items() if k in JudgeConfigInput.model_fields}
        data = _config_input(
            current
            | _config_fields(
                file,
                {"name": name, **options},
            )
        )
        actor = cs.actor(session, found, as_email, Permission.judge_manage)
        with cs.domain_errors():
            updated = judge_configs.update_config(
                session,
                found,
                config,
                actor=actor,
                expected_revision=config.revision,
                data=data,
                egress=_egress(),
            )
    typer.echo(f"Saved judge configuration {updated.id} '{updated.name}'.")


@config_cli.command("delete")
def config_delete_command(
    project: cs.ProjectOpt,
    judge: Annotated[str, typer.Argument(metavar="JUDGE", help="Configuration id or name.")],
    as_email: cs.AsOpt = None,
) -> None:
    """Delete a judge configuration no run has used."""
    from app.judging import configs as judge_configs

    with cs.session() as session:
        found = cs.project(session, project)
        config = cs.judge_config(session, found, judge)
        actor = cs.actor(session, found, as_email, Permission.judge_manage)
        with cs.domain_errors():
            judge_configs.delete_config(session, found, config, actor=actor)
    typer.echo(f"Deleted judge configuration '{config.name}'.")


@config_cli.command("test")
def config_test_command(
    project: cs.ProjectOpt,
    judge: Annotated[str, typer.Argument(metavar="JUDGE", help="Configuration id or name.")],
) -> None:
    """Send one tiny request with a judge configuration (same as `judge test-connection`)."""
    test_connection_command(None, None, project=project, judge=judge)
