"""Accounts, login sessions, API tokens and the failed-login limit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlmodel import Session, col, func, select

from app.audit import service as audit_service
from app.auth.models import ApiToken, LoginAttempt, User, UserSession
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.errors import Conflict, InvalidInput, NotFound, RateLimited, Unauthenticated
from app.core.security import (
    hash_password,
    new_token,
    password_problem,
    token_digest,
    verify_password,
)

API_TOKEN_PREFIX = "rst_"


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _check_email(email: str) -> str:
    """The address normalised (lower case), or InvalidInput saying what is wrong with it.
    Syntax only (email-validator, as pydantic's EmailStr uses): no DNS lookups."""
    cleaned = normalise_email(email)
    if len(cleaned) > 320:
        raise InvalidInput("An email address is at most 320 characters.")
    try:
        valid = validate_email(cleaned, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"'{cleaned}' is not a valid email address: {exc}") from None
    return normalise_email(valid.normalized)


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    display_name: str = "",
    is_admin: bool = False,
    actor: User | None = None,
) -> User:
    email = _check_email(email)
    problem = password_problem(password)
    if problem:
        raise InvalidInput(problem)
    if session.exec(select(User).where(User.email == email)).first():
        raise Conflict(f"A user with the email {email} already exists.")
    user = User(
        email=email,
        display_name=display_name.strip(),
        password_hash=hash_password(password),
        is_admin=is_admin,
    )
    session.add(user)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="user.create",
        object_type="user",
        object_id=user.id,
        summary=f"created user {email}" + (" (site admin)" if is_admin else ""),
    )
    session.commit()
    return user


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == normalise_email(email))).first()


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.email))))


def set_user_active(session: Session, user_id: int, active: bool, *, actor: User) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    if user.id == actor.id and not active:
        raise InvalidInput("You cannot deactivate your own account.")
    user.is_active = active
    if not active:
        for login in session.exec(select(UserSession).where(UserSession.user_id == user_id)):
            session.delete(login)
    audit_service.record(
        session,
        actor=actor,
        action="user.activate" if active else "user.deactivate",
        object_type="user",
        object_id=user.id,
        summary=f"{'activated' if active else 'deactivated'} {user.email}",
    )
    session.commit()
    return user


# Failures of one (account, address) pair are remembered this long, or until the pair's next
# successful sign-in, so the backoff keeps growing across short pauses.
LOGIN_MEMORY = timedelta(days=1)
_MAX_BACKOFF_DOUBLINGS = 20


def backoff_seconds(failures: int, settings: Settings) -> float:
    """How long the pair must wait after `failures` consecutive failures: nothing below the
    limit, then the base delay doubling with each further failure, capped at the window."""
    if failures < settings.login_max_failures:
        return 0.0
    doublings = min(failures - settings.login_max_failures, _MAX_BACKOFF_DOUBLINGS)
    return float(min(settings.login_backoff_base_s * 2**doublings, settings.login_failure_window_s))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _pair_wait(session: Session, settings: Settings, email: str, client_ip: str) -> float:
    """Seconds the (account, address) pair must still wait before its next attempt."""
    now = utcnow()
    pair = (LoginAttempt.email == email, LoginAttempt.client_ip == client_ip)
    last_success = session.exec(
        select(func.max(LoginAttempt.attempted_at)).where(
            *pair,
            col(LoginAttempt.succeeded).is_(True),
            LoginAttempt.attempted_at >= now - LOGIN_MEMORY,
        )
    ).one()
    since = _aware(last_success) if last_success is not None else now - LOGIN_MEMORY
    failures, last_failure = session.exec(
        select(func.count(), func.max(LoginAttempt.attempted_at)).where(
            *pair, col(LoginAttempt.succeeded).is_(False), LoginAttempt.attempted_at > since
        )
    ).one()
    wait = backoff_seconds(int(failures), settings)
    if not wait or last_failure is None:
        return 0.0
    return max(0.0, (_aware(last_failure) + timedelta(seconds=wait) - now).total_seconds())


def _address_failures(session: Session, settings: Settings, client_ip: str) -> int:
    since = utcnow() - timedelta(seconds=settings.login_failure_window_s)
    query = (
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.attempted_at >= since, col(LoginAttempt.succeeded).is_(False))
        .where(LoginAttempt.client_ip == client_ip)
    )
    return int(session.exec(query).one())


def _in_words(seconds: float) -> str:
    if seconds < 90:
        whole = max(1, math.ceil(seconds))
        return f"{whole} second{'s' if whole != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


def authenticate(
    session: Session, settings: Settings, *, email: str, password: str, client_ip: str
) -> User:
    """Check credentials. Failures are throttled per (account, client address) pair with an
    exponential backoff, so one account's mistyped passwords never lock out other people behind
    the same proxy; a generous per-address ceiling stops one address trying many accounts."""
    email = normalise_email(email)
    wait = _pair_wait(session, settings, email, client_ip)
    if wait > 0:
        raise RateLimited(
            "Too many failed sign-in attempts for this account from your address. "
            f"Try again in {_in_words(wait)}."
        )
    if _address_failures(session, settings, client_ip) >= settings.login_max_failures_per_address:
        minutes = max(1, settings.login_failure_window_s // 60)
        raise RateLimited(
            f"Too many failed sign-in attempts from your address. Try again in {minutes} minutes."
        )
    user = get_user_by_email(session, email)
    ok = verify_password(user.password_hash if user else None, password)
    ok = ok and user is not None and user.is_active
    session.add(LoginAttempt(email=email, client_ip=client_ip, succeeded=ok))
    session.commit()
    if not ok or user is None:
        raise Unauthenticated("The email or password is not correct.")
    return user


@dataclass
class NewLogin:
    token: str
    login: UserSession


def start_session(session: Session, settings: Settings, user: User, user_agent: str) -> NewLogin:
    token = new_token()
    login = UserSession(
        token_hash=token_digest(token),
        user_id=user.id or 0,
        expires_at=utcnow() + timedelta(seconds=settings.session_max_age_s),
        user_agent=user_agent[:400],
    )
    session.add(login)
    session.commit()
    return NewLogin(token=token, login=login)


def resolve_session(session: Session, token: str) -> User | None:
    """The active user signed in with this session token, if it has not expired (one
    statement: every page asks)."""
    return session.exec(
        select(User)
        .join(UserSession, col(UserSession.user_id) == col(User.id))
        .where(
            UserSession.token_hash == token_digest(token),
            col(UserSession.expires_at) >= utcnow(),
            col(User.is_active).is_(True),
        )
    ).first()


def end_session(session: Session, token: str) -> None:
    login = session.exec(
        select(UserSession).where(UserSession.token_hash == token_digest(token))
    ).first()
    if login is not None:
        session.delete(login)
        session.commit()


@dataclass
class NewApiToken:
    token: str
    record: ApiToken


def create_api_token(session: Session, user: User, name: str) -> NewApiToken:
    name = name.strip()
    if not name:
        raise InvalidInput("Give the token a name, so you can tell it apart later.")
    if len(name) > 200:
        raise InvalidInput("The token name must be at most 200 characters.")
    token = new_token(API_TOKEN_PREFIX)
    record = ApiToken(
        user_id=user.id or 0, name=name, prefix=token[:10], token_hash=token_digest(token)
    )
    session.add(record)
    session.flush()
    audit_service.record(
        session,
        actor=user,
        action="token.create",
        object_type="api_token",
        object_id=record.id,
        summary=f"created API token '{name}' ({record.prefix}…)",
    )
    session.commit()
    return NewApiToken(token=token, record=record)


def list_api_tokens(session: Session, user: User | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(col(ApiToken.created_at).desc())
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(session.exec(query))


def revoke_api_token(session: Session, token_id: int, *, actor: User) -> ApiToken:
    record = session.get(ApiToken, token_id)
    if record is None or (record.user_id != actor.id and not actor.is_admin):
        raise NotFound("No such API token.")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        audit_service.record(
            session,
            actor=actor,
            action="token.revoke",
            object_type="api_token",
            object_id=record.id,
            summary=f"revoked API token '{record.name}' ({record.prefix}…)",
        )
        session.commit()
    return record


def resolve_api_token(session: Session, token: str) -> User | None:
    record = session.exec(
        select(ApiToken).where(ApiToken.token_hash == token_digest(token))
    ).first()
    if record is None or record.revoked_at is not None:
        return None
    user = session.get(User, record.user_id)
    if user is None or not user.is_active:
        return None
    now = utcnow()
    # Touch at most once a minute: a busy script should not write on every request.
    if record.last_used_at is None or (now - record.last_used_at).total_seconds() > 60:
        record.last_used_at = now
        session.add(record)
        session.commit()
    return user


def ensure_demo_admin(session: Session, email: str, password: str) -> User:
    """The demo's site admin: created once; its password is reset on every `demo` run."""
    user = get_user_by_email(session, email)
    if user is None:
        return create_user(
            session, email=email, password=password, display_name="Demo Admin", is_admin=True
        )
    user.password_hash = hash_password(password)
    user.is_active = True
    session.add(user)
    session.commit()
    return user
