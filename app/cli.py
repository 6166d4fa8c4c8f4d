"""The `rubric-studio` command: serve, demo, worker, db, users (and import/export later)."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

import typer
import uvicorn
from sqlmodel import Session

from app.core import migrations
from app.core.config import Settings, get_settings
from app.core.db import get_engine
from app.drift import audit_cli as drift_audit_cli
from app.drift import cli as drift_cli
from app.exports.cli import export_command
from app.judging.cli import judge_cli
from app.labels import cli as labels_cli
from app.rollouts import cli as rollouts_cli
from app.rubrics import cli as rubrics_cli

cli = typer.Typer(
    help="Rubric Studio: design, calibrate and ship LLM-as-a-judge reward functions.",
    no_args_is_help=True,
    add_completion=False,
)
db_cli = typer.Typer(help="Database migrations.", no_args_is_help=True)
users_cli = typer.Typer(help="User accounts.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")
cli.add_typer(judge_cli, name="judge")
cli.add_typer(rubrics_cli.app, name="rubrics")
cli.add_typer(labels_cli.app, name="labels")
cli.add_typer(drift_cli.app, name="drift")
assert drift_audit_cli.app is drift_cli.app  # adds `drift audit | agreement | check` to it
cli.command("export")(export_command)
cli.command("import")(rollouts_cli.import_rollouts)

DEMO_ADMIN_EMAIL = "admin@demo.rubric.studio"


def _settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:
        typer.secho(f"Configuration error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _serve(settings: Settings, host: str, port: int, reload: bool) -> None:
    if settings.run_embedded_worker and not reload:
        from app.worker import start_embedded_worker

        start_embedded_worker(get_engine(settings.resolved_database_url), settings)
        typer.echo("Embedded worker started (SQLite mode).")
    uvicorn.run(
        "app.main:app_factory",
        factory=True,
        host=host,
        port=port,
        reload=reload,
        proxy_headers=True,
        log_level="info",
    )


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
    migrate: Annotated[bool, typer.Option(help="Apply migrations before serving.")] = True,
) -> None:
    """Serve the web app (migrating the database first)."""
    settings = _settings()
    if migrate:
        migrations.upgrade(settings.resolved_database_url)
    _serve(settings, host, port, reload)


@cli.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    serve_app: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the web app afterwards.")
    ] = True,
) -> None:
    """Create and migrate the local database, load the demo project, print a login, and serve."""
    from app.auth import service as auth_service
    from app.demo import loader as demo_loader

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrations.upgrade(settings.resolved_database_url)
    engine = get_engine(settings.resolved_database_url)
    password = secrets.token_urlsafe(12)
    with Session(engine, expire_on_commit=False) as session:
        admin = auth_service.ensure_demo_admin(session, DEMO_ADMIN_EMAIL, password)
        summary = demo_loader.load_demo(session, settings, admin)
    typer.echo("")
    typer.secho("Rubric Studio demo is ready.", bold=True)
    typer.echo(summary)
    typer.echo(f"  Open:     http://{host}:{port}/")
    typer.echo(f"  Email:    {DEMO_ADMIN_EMAIL}")
    typer.echo(f"  Password: {password}   (new each time `rubric-studio demo` runs)")
    typer.echo("")
    if serve_app:
        _serve(settings, host, port, reload=False)


@cli.command()
def worker(
    once: Annotated[bool, typer.Option(help="Exit when there is no more work.")] = False,
) -> None:
    """Process durable background jobs (imports, judge runs). Run as many as you like."""
    from app.worker import run_worker

    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run_worker(get_engine(settings.resolved_database_url), settings, once=once, own_process=True)


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    settings = _settings()
    migrations.upgrade(settings.resolved_database_url, revision)
    typer.echo(f"Database at {revision}.")


@db_cli.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
) -> None:
    """Revert migrations down to REVISION."""
    settings = _settings()
    migrations.downgrade(settings.resolved_database_url, revision)
    typer.echo(f"Database at {revision}.")


@users_cli.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Email address (the login).")],
    role: Annotated[
        str,
        typer.Option(help="'site-admin' for a site administrator, or 'user'."),
    ] = "user",
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    password: Annotated[
        str | None,
        typer.Option(help="Password; a random one is generated and printed when omitted."),
    ] = None,
    project: Annotated[
        int | None, typer.Option(help="Also add the user to this project id.")
    ] = None,
    project_role: Annotated[
        str, typer.Option(help="Role in --project: admin, engineer, expert or reviewer.")
    ] = "expert",
) -> None:
    """Create a user account."""
    from app.auth import service as auth_service
    from app.core.errors import DomainError
    from app.projects import service as project_service
    from app.projects.models import Project

    if role not in ("user", "site-admin"):
        typer.secho("--role must be 'user' or 'site-admin'.", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    settings = _settings()
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    with Session(get_engine(settings.resolved_database_url), expire_on_commit=False) as session:
        try:
            user = auth_service.create_user(
                session,
                email=email,
                password=password,
                display_name=name,
                is_admin=role == "site-admin",
            )
            if project is not None:
                proj = session.get(Project, project)
                if proj is None:
                    raise typer.BadParameter(f"no project with id {project}")
                project_service.add_member(
                    session, proj, email=user.email, role=project_role, actor=user
                )
        except DomainError as exc:
            typer.secho(exc.message, fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
    typer.echo(f"Created {user.email}" + (f" with password {password}" if generated else ""))


def main() -> None:
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
