"""`rubric-studio tokens create | list | revoke`: API tokens from the command line.

The command line acts with the database's own authority (whoever runs it can read the database),
so it can give a script its first token without a browser. The token is printed once and stored
only as a hash, as in the browser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass


if TYPE_CHECKING:
    from sqlmodel import Session

    from app.auth.models import User

app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)


def _session() -> Session:
    from sqlmodel import Session

    from app.core.config import get_settings
    from app.core.db import get_engine

    return Session(get_engine(get_settings().resolved_database_url), expire_on_commit=False)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _user(session: Session, email: str) -> User:
    from app.auth import service as auth_service

    user = auth_service.get_user_by_email(session, email)
    if user is None:
        raise _fail(f"No user with the email {email!r}.")
    if not user.is_active:
        raise _fail(f"The account {email!r} is deactivated: it cannot hold a working token.")
    return user


@app.command("create")
def create_command(
    email: Annotated[str, typer.Option(help="The account the token acts as.")],
    name: Annotated[str, typer.Option(help="A name to tell the token apart later.")],
) -> None:
    """Create an API token for an account and print it (it is shown only this once)."""
    from app.auth import service as auth_service
    from app.core.errors import DomainError

    with _session() as session:
        user = _user(session, email)
        try:
            new = auth_service.create_api_token(session, user, name)
        except DomainError as exc:
            raise _fail(exc.message) from None
    typer.echo(new.token)
    typer.echo(
        f"Token {new.record.id} '{new.record.name}' for {user.email}: send it as "
        "'Authorization: Bearer <token>'. It is not shown again.",
        err=True,
    )


@app.command("list")
def list_command(
    email: Annotated[str | None, typer.Option(help="Only this account's tokens.")] = None,
) -> None:
    """List tokens: id, prefix, name, account, last use, and whether revoked."""
    from app.auth import service as auth_service

    with _session() as session:
        owner = _user(session, email) if email else None
        tokens = auth_service.list_api_tokens(session, owner)
        emails = {u.id: u.email for u in auth_service.list_users(session)}
    for token in tokens:
        state = "revoked" if token.revoked_at else "active"
        used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
        typer.echo(
            f"{token.id}\t{token.prefix}…\t{token.name}\t{emails.get(token.user_id, '?')}"
            f"\tlast used {used}\t{state}"
        )


@app.command("revoke")
def revoke_command(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `tokens list`).")],
) -> None:
    """Revoke a token: requests that send it are refused from now on."""
    from app.auth import service as auth_service
    from app.auth.models import User

    with _session() as session:
        tokens = {t.id: t for t in auth_service.list_api_tokens(session)}
        token = tokens.get(token_id)
        if token is None:
            raise _fail(f"No API token with id {token_id}.")
        owner = session.get(User, token.user_id)
        assert owner is not None  # a token is deleted with its user
        record = auth_service.revoke_api_token(session, token_id, actor=owner)
    typer.echo(f"Revoked token {record.id} '{record.name}' ({record.prefix}…).")
