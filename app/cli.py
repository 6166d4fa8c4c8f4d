"""The `rubric-studio` command: serve, demo, worker, db, users (and import/export later)."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli_lazy import LazyCommand, LazyGroup
from app.core.cli import cli_settings

if TYPE_CHECKING:
    from app.core.config import Settings


class RootGroup(LazyGroup):
    """Domain commands, imported when they run (see app/cli_lazy.py)."""

    lazy = {
        "projects": LazyCommand(
            "app.projects.cli", "app", "Projects: create, settings, approval policy, members."
        ),
        "import": LazyCommand(
            "app.rollouts.cli", "import_rollouts", "Import a rollout file into a project."
        ),
        "rubrics": LazyCommand(
            "app.rubrics.cli",
            "app",
            "Rubrics: create, draft, render, publish, approve, archive; export and import.",
        ),
        "judge": LazyCommand(
            "app.judging.cli",
            "judge_cli",
            "Judge configurations and runs: config, run, cancel, resume, verdicts, import.",
        ),
        "labels": LazyCommand(
            "app.labels.cli", "app", "Expert labels: import, export, submit (JSONL or CSV)."
        ),
        "tokens": LazyCommand(
            "app.auth.cli", "app", "API tokens: create (shown once), list, revoke."
        ),
        "probes": LazyCommand(
            "app.probes.cli",
            "probes_cli",
            "Probes: can the reward that ships be gamed? Run them, read them.",
        ),
        "drift": LazyCommand(
            "app.drift.cli_all",
            "app",
            "Training runs and drift samples: import, series, signals, audits, judge drift check.",
        ),
        "export": LazyCommand(
            "app.exports.cli", "export_command", "Write a training package from an export bundle."
        ),
        "imports": LazyCommand("app.rollouts.cli", "imports_app", "Rollout imports: list, cancel."),
        "queues": LazyCommand(
            "app.labels.cli", "queues_app", "Annotation queues: list, create, close."
        ),
        "gold": LazyCommand(
            "app.labels.cli", "gold_app", "The gold set: list, add, remove, lock (test split)."
        ),
        "disagreements": LazyCommand(
            "app.labels.cli", "disagreements_app", "Judge-expert disagreements: list, resolve."
        ),
        "agreement": LazyCommand(
            "app.agreement.cli", "app", "Judge-expert agreement of a run, as JSON."
        ),
        "reward": LazyCommand(
            "app.rewards.cli", "app", "The reward configuration: show, set, preview."
        ),
        "exports": LazyCommand(
            "app.exports.cli",
            "exports_app",
            "Exports: check the gate, create a bundle, list them, write targets.",
        ),
        "audit": LazyCommand("app.audit.cli", "audit_command", "The project's audit log."),
        "formats": LazyCommand(
            "app.formats.cli", "app", "File formats: list them, print a JSON Schema, check a file."
        ),
    }


cli = typer.Typer(
    cls=RootGroup,
    help="Rubric Studio: design, calibrate and ship LLM-as-a-judge reward functions.",
    no_args_is_help=True,
    add_completion=False,
)
db_cli = typer.Typer(help="Database migrations.", no_args_is_help=True)
users_cli = typer.Typer(help="User accounts.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")

DEMO_ADMIN_EMAIL = "admin@demo.rubric.studio"


def _bind(host: str, port: int) -> socket.socket:
    """Take the port before anything else happens, or stop with a clear message.

    The demo hands this very socket to the server, so a start that cannot listen stops before
    it changes anything (such as the demo admin's password)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, OverflowError) as exc:
        typer.secho(f"Cannot listen on {host}:{port}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        typer.secho(
            f"Port {port} on {host} is already in use ({exc.strerror}). Rubric Studio may "
            f"already be running: open http://{host}:{port}/ (its login is the one printed when "
            "it started), stop it first, or choose another port with --port. Nothing was changed.",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1) from None
    return sock


def _serve(
    settings: Settings, host: str, port: int, reload: bool, sock: socket.socket | None = None
) -> None:
    import uvicorn

    from app.core.db import get_engine

    if settings.run_embedded_worker and not reload:
        from app.worker import start_embedded_worker

        start_embedded_worker(get_engine(settings.resolved_database_url), settings)
        typer.echo("Embedded worker started (SQLite mode).")
    if sock is None:
        uvicorn.run(
            "app.main:app_factory",
            factory=True,
            host=host,
            port=port,
            reload=reload,
            # X-Forwarded-For (the client address sign-in throttling sees) is believed only from
            # these proxies (RS_TRUSTED_PROXIES); from anyone else the TCP peer is the client.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
            log_level="info",
        )
        return
    config = uvicorn.Config(
        "app.main:app_factory",
        factory=True,
        host=host,
        port=port,
        # X-Forwarded-For (the client address sign-in throttling sees) is believed only from
        # these proxies (RS_TRUSTED_PROXIES); from anyone else the TCP peer is the client.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
        log_level="info",
    )
    uvicorn.Server(config).run(sockets=[sock])


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
    migrate: Annotated[bool, typer.Option(help="Apply migrations before serving.")] = True,
) -> None:
    """Serve the web app (migrating the database first)."""
    from app.core import migrations

    settings = cli_settings()
    if reload:
        _bind(host, port).close()  # the reloader binds itself; refuse a busy port clearly first
        sock = None
    else:
        sock = _bind(host, port)
    if migrate:
        migrations.upgrade(settings.resolved_database_url)
    _serve(settings, host, port, reload, sock)


@cli.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    serve_app: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the web app afterwards.")
    ] = True,
) -> None:
    """Create and migrate the local database, load the demo project, print a login, and serve."""
    from sqlmodel import Session

    from app.auth import service as auth_service
    from app.core import migrations
    from app.core.config import get_settings
    from app.core.db import get_engine
    from app.demo import loader as demo_loader

    # The demo runs on one machine, where a local judge (llama.cpp, vLLM, Ollama) is the usual
    # first try: allow loopback judge URLs unless the operator said otherwise.
    os.environ.setdefault("RS_OUTBOUND_ALLOW_LOOPBACK", "true")
    get_settings.cache_clear()
    settings = cli_settings()
    # Before the password changes: a second `demo` while the first one serves stops here.
    sock = _bind(host, port) if serve_app else None
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
    if sock is not None:
        _serve(settings, host, port, reload=False, sock=sock)


@cli.command()
def worker(
    once: Annotated[bool, typer.Option(help="Exit when there is no more work.")] = False,
) -> None:
    """Process durable background jobs (imports, judge runs). Run as many as you like."""
    from app.core.db import get_engine
    from app.worker import run_worker

    settings = cli_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run_worker(get_engine(settings.resolved_database_url), settings, once=once, own_process=True)


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from app.core import migrations

    settings = cli_settings()
    migrations.upgrade(settings.resolved_database_url, revision)
    typer.echo(f"Database at {revision}.")


@db_cli.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
) -> None:
    """Revert migrations down to REVISION."""
    from app.core import migrations

    settings = cli_settings()
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
        str | None, typer.Option(help="Also add the user to this project (id or slug).")
    ] = None,
    project_role: Annotated[
        str, typer.Option(help="Role in --project: admin, engineer, expert or reviewer.")
    ] = "expert",
) -> None:
    """Create a user account."""
    from sqlmodel import Session

    from app.auth import service as auth_service
    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.projects import service as project_service

    if role not in ("user", "site-admin"):
        typer.secho("--role must be 'user' or 'site-admin'.", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    settings = cli_settings()
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
                from app import cli_support as cs

                proj = cs.project(session, project)
                project_service.add_member(
                    session, proj, email=user.email, role=project_role, actor=user
                )
        except DomainError as exc:
            typer.secho(exc.message, fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
    typer.echo(f"Created {user.email}" + (f" with password {password}" if generated else ""))


def _set_active(email: str, active: bool, as_email: str | None) -> None:
    from app import cli_support as cs
    from app.auth import service as auth_service

    with cs.session() as db:
        target = auth_service.get_user_by_email(db, email)
        if target is None:
            raise cs.fail(f"No user with the email {email!r}.")
        admin = cs.person(db, None, as_email)
        if not admin.is_admin:
            raise cs.fail(f"{admin.email} is not a site administrator.")
        with cs.domain_errors():
            auth_service.set_user_active(db, target.id or 0, active, actor=admin)
    typer.echo(f"{target.email} {'activated' if active else 'deactivated'}.")


AsOption = Annotated[
    str | None,
    typer.Option(
        "--as", help="Email of the site administrator acting (default: the RS_CLI_AS setting)."
    ),
]


@users_cli.command("deactivate")
def users_deactivate(
    email: Annotated[str, typer.Argument(help="The account to deactivate.")],
    as_email: AsOption = None,
) -> None:
    """Deactivate an account: it can no longer sign in, and its tokens stop working."""
    _set_active(email, False, as_email)


@users_cli.command("activate")
def users_activate(
    email: Annotated[str, typer.Argument(help="The account to reactivate.")],
    as_email: AsOption = None,
) -> None:
    """Reactivate a deactivated account."""
    _set_active(email, True, as_email)


def main() -> None:
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
