"""What every domain command shares, so that they all take the same identifiers and actor.

- `--project` is a project's id or its slug, in every command;
- `--rubric-version` is a version's id or `rubric name:N` (`rubric name` alone: its newest);
- `--as EMAIL` is the account a command acts as, defaulting to the `RS_CLI_AS` setting. With an
  account, its project role must allow the action (as in the browser). With none, a command acts
  with the database's own authority and records no person; the commands whose records name a
  person (a project's owner, a sign-off, a label, a gold item...) then ask for one.

Domain `cli.py` modules import this; `app/cli.py` does not (its `--help` stays light).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

# Only names: what a command needs is imported when it runs, so that `--help` of every command
# group stays light (tests/unit/core/test_cli_startup.py).
if TYPE_CHECKING:
    from sqlmodel import Session

    from app.auth.models import User
    from app.auth.policies import Permission
    from app.core.config import Settings
    from app.judging.models import JudgeConfig
    from app.projects.models import Project
    from app.rubrics.models import Rubric, RubricVersion

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project id or slug.")]
VersionOpt = Annotated[
    str,
    typer.Option(
        "--rubric-version", help="Rubric version: its id, or 'rubric name:N' (name alone: newest)."
    ),
]
OptionalVersionOpt = Annotated[
    str | None,
    typer.Option(
        "--rubric-version", help="Rubric version: its id, or 'rubric name:N' (name alone: newest)."
    ),
]
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Email of the account acting (default: the RS_CLI_AS setting); its project role "
        "must allow the action.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

NEEDS_PERSON = (
    "This command records who did it: give --as EMAIL, or set RS_CLI_AS to the account the "
    "command line acts as."
)


def settings() -> Settings:
    from app.core.config import get_settings

    try:
        return get_settings()
    except ValueError as exc:
        typer.secho(f"Configuration error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def session() -> Session:
    from sqlmodel import Session

    from app.core.db import get_engine

    return Session(get_engine(settings().resolved_database_url), expire_on_commit=False)


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@contextmanager
def domain_errors() -> Iterator[None]:
    """A refused action prints its plain-words message (and each problem's place) and exits 1."""
    from app.core.errors import DomainError

    try:
        yield
    except DomainError as exc:
        for problem in exc.details if isinstance(exc.details, list) else []:
            if isinstance(problem, dict):
                where = [str(problem[k]) for k in ("line", "field") if problem.get(k) is not None]
                typer.secho(f"  {': '.join(where) or 'file'}: {problem.get('message')}", err=True)
        raise fail(exc.message) from None


def echo_json(value: Any) -> None:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if hasattr(v, "model_dump") else v for v in value]
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def project(db: Session, ref: str) -> Project:
    """A project by id or slug."""
    from sqlmodel import col, select

    from app.projects.models import Project

    ref = ref.strip()
    found = db.get(Project, int(ref)) if ref.isdigit() and len(ref) < 10 else None
    if found is None:
        found = db.exec(select(Project).where(col(Project.slug) == ref)).first()
    if found is None:
        raise fail(f"No project {ref!r} (give its id or slug).")
    return found


def rubric(db: Session, proj: Project, ref: str) -> Rubric:
    """A rubric of the project by id or name."""
    from sqlmodel import select

    from app.rubrics.models import Rubric

    query = select(Rubric).where(Rubric.project_id == proj.id)
    ref = ref.strip()
    found = None
    if ref.isdigit() and len(ref) < 10:
        found = db.exec(query.where(Rubric.id == int(ref))).first()
    found = found or db.exec(query.where(Rubric.name == ref)).first()
    if found is None:
        raise fail(f"No rubric {ref!r} in project {proj.slug} (give its id or name).")
    return found


def rubric_version(db: Session, proj: Project, ref: str) -> RubricVersion:
    """A version by id, or `rubric name:N`, or `rubric name` (its newest version)."""
    from sqlmodel import col, select

    from app.rubrics.models import Rubric, RubricVersion

    ref = ref.strip()
    if ref.isdigit() and len(ref) < 10:
        version = db.get(RubricVersion, int(ref))
        if version is not None and version.project_id == proj.id:
            return version
        raise fail(f"No rubric version {ref} in project {proj.slug}.")
    name, number = ref, ""
    if ":" in ref:
        name, _, number = ref.rpartition(":")
        if not number.isdigit() or len(number) > 9:
            raise fail(f"Version number {number!r} in {ref!r} is not a whole number.")
    query = (
        select(RubricVersion)
        .join(Rubric, col(Rubric.id) == col(RubricVersion.rubric_id))
        .where(Rubric.project_id == proj.id, Rubric.name == name)
    )
    if number:
        query = query.where(RubricVersion.number == int(number))
    found = db.exec(query.order_by(col(RubricVersion.number).desc())).first()
    if found is None:
        raise fail(f"No published version {ref!r} in project {proj.slug} (give an id or name:N).")
    return found


def judge_config(db: Session, proj: Project, ref: str) -> JudgeConfig:
    """A judge configuration of the project by id or name."""
    from sqlmodel import select

    from app.judging.models import JudgeConfig

    query = select(JudgeConfig).where(JudgeConfig.project_id == proj.id)
    if ref.isdigit():
        found = db.exec(query.where(JudgeConfig.id == int(ref))).first()
    else:
        found = db.exec(query.where(JudgeConfig.name == ref)).first()
    if found is None:
        raise fail(f"No judge configuration {ref!r} in project {proj.slug}.")
    return found


def account(db: Session, email: str) -> User:
    from sqlmodel import col, select

    from app.auth.models import User

    user = db.exec(select(User).where(col(User.email) == email.strip().lower())).first()
    if user is None:
        raise fail(f"No user with the email {email!r}.")
    if not user.is_active:
        raise fail(f"The account {email!r} is deactivated.")
    return user


def acting_email(as_email: str | None) -> str:
    return (as_email or settings().cli_as or "").strip()


def actor(
    db: Session,
    proj: Project | None,
    as_email: str | None,
    permission: Permission | None = None,
) -> User | None:
    """The account named by --as (or RS_CLI_AS), checked against its role in the project; None
    when neither names one (the database's own authority)."""
    from app.auth.policies import role_allows, roles_with
    from app.projects import service as project_service

    email = acting_email(as_email)
    if not email:
        return None
    user = account(db, email)
    if proj is not None and permission is not None:
        membership = project_service.get_membership(db, proj.id or 0, user.id or 0)
        if membership is None:
            raise fail(f"{user.email} is not a member of project {proj.slug}.")
        if not role_allows(membership.role, permission):
            allowed = ", ".join(r.value for r in roles_with(permission))
            raise fail(
                f"{user.email}'s role in {proj.slug} ({membership.role}) may not do this; it "
                f"needs one of: {allowed}."
            )
    return user


def person(
    db: Session, proj: Project | None, as_email: str | None, permission: Permission | None = None
) -> User:
    """Like `actor`, for the commands whose record names a person: one must be given."""
    user = actor(db, proj, as_email, permission)
    if user is None:
        raise fail(NEEDS_PERSON, 2)
    return user


def may(db: Session, proj: Project, user: User | None, permission: Permission) -> bool:
    """Whether the acting account (or the database's authority, for None) holds a permission."""
    from app.auth.policies import role_allows
    from app.projects import service as project_service

    if user is None:
        return True
    membership = project_service.get_membership(db, proj.id or 0, user.id or 0)
    return membership is not None and role_allows(membership.role, permission)
