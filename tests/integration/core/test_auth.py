"""Signing in and out, the failed-login limit, API tokens, and site administration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.audit.models import AuditEvent
from app.auth import service as auth_service
from app.auth.models import ApiToken, LoginAttempt, UserSession
from app.core.clock import utcnow
from app.core.errors import InvalidInput, RateLimited
from tests.support.factories import make_project, make_user
from tests.support.web import PASSWORD, csrf_for, data_testids, find_all, login


def test_login_sets_a_signed_httponly_samesite_cookie(client: TestClient, session: Session) -> None:
    make_user(session, "a@example.com")
    token = csrf_for(client, "/login")
    response = client.post(
        "/login",
        data={"email": "A@Example.com ", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("rs_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    stored = session.exec(select(UserSession)).one()
    raw_value = cookie.split(";")[0].split("=", 1)[1]
    assert stored.token_hash not in raw_value  # the cookie holds a signed token, the DB its hash
    assert client.get("/", follow_redirects=False).status_code == 200


def test_tampered_session_cookie_is_ignored(client: TestClient, session: Session) -> None:
    make_user(session, "a@example.com")
    login(client, "a@example.com")
    value = client.cookies.get("rs_session")
    # Replace the cookie (a second cookie of the same name would be sent beside the real one).
    client.cookies.delete("rs_session")
    client.cookies.set("rs_session", value[:-3] + "xyz")
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_login_requires_csrf_token(client: TestClient, session: Session) -> None:
    make_user(session, "a@example.com")
    client.get("/login")
    response = client.post("/login", data={"email": "a@example.com", "password": PASSWORD})
    assert response.status_code == 403
    assert "CSRF" in response.text


def test_wrong_password_and_unknown_email_get_the_same_message(
    client: TestClient, session: Session
) -> None:
    make_user(session, "a@example.com")
    token = csrf_for(client, "/login")
    for email in ("a@example.com", "nobody@example.com"):
        response = client.post(
            "/login", data={"email": email, "password": "wrong password!", "csrf_token": token}
        )
        assert response.status_code == 401
        assert find_all(response.text, "data-testid", "login-error")
        assert "not correct" in response.text


def test_failed_logins_are_rate_limited(client: TestClient, session: Session, settings) -> None:
    make_user(session, "a@example.com")
    token = csrf_for(client, "/login")
    for _ in range(settings.login_max_failures):
        client.post(
            "/login", data={"email": "a@example.com", "password": "x" * 12, "csrf_token": token}
        )
    # Even the right password is refused while the limit holds.
    response = client.post(
        "/login", data={"email": "a@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.text


def test_one_accounts_failures_do_not_lock_out_others_behind_the_same_address(
    client: TestClient, session: Session, settings
) -> None:
    make_user(session, "a@example.com")
    make_user(session, "b@example.com")
    token = csrf_for(client, "/login")
    for _ in range(settings.login_max_failures + 2):
        client.post(
            "/login", data={"email": "a@example.com", "password": "x" * 12, "csrf_token": token}
        )
    other = client.post(
        "/login",
        data={"email": "b@example.com", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert other.status_code == 303  # same client address, another account: signed in


def _fail(session: Session, email: str, ip: str, seconds_ago: float, n: int = 1) -> None:
    at = utcnow() - timedelta(seconds=seconds_ago)
    for _ in range(n):
        session.add(LoginAttempt(email=email, client_ip=ip, succeeded=False, attempted_at=at))
    session.commit()


def test_failures_throttle_the_account_and_address_pair_with_exponential_backoff(
    session: Session, settings
) -> None:
    make_user(session, "a@example.com")
    limit = settings.login_max_failures
    assert [auth_service.backoff_seconds(n, settings) for n in range(limit - 1, limit + 4)] == [
        0.0,
        30.0,
        60.0,
        120.0,
        240.0,
    ]
    assert auth_service.backoff_seconds(limit + 50, settings) == settings.login_failure_window_s

    def sign_in(ip: str) -> str:
        try:
            auth_service.authenticate(
                session, settings, email="a@example.com", password=PASSWORD, client_ip=ip
            )
        except RateLimited as exc:
            return exc.message
        return "ok"

    _fail(session, "a@example.com", "10.0.0.1", 40, limit)  # 5 failures, the last 40 s ago
    assert sign_in("10.0.0.1") == "ok"  # 30 s have passed; the success resets the pair
    _fail(session, "a@example.com", "10.0.0.3", 40, limit + 1)  # 6 failures: 60 s to wait
    message = sign_in("10.0.0.3")
    assert "Try again in 20 seconds" in message or "Try again in 21 seconds" in message
    assert sign_in("10.0.0.2") == "ok"  # the same account from elsewhere is not locked


@pytest.mark.parametrize(
    "address",
    [
        "a@b",
        "@example.com",
        "a@",
        "a@@example.com",
        "a b@example.com",
        "a@example..com",
        "a@-example.com",
        "a@example.com>",
        "<script>@example.com",
        "a@localhost",
        "a@exa mple.com",
    ],
)
def test_accounts_need_a_real_email_address(session: Session, address: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid email address"):
        auth_service.create_user(session, email=address, password=PASSWORD)


def test_valid_addresses_are_normalised(session: Session) -> None:
    user = auth_service.create_user(session, email="  Ann.Lee+rs@Example.COM ", password=PASSWORD)
    assert user.email == "ann.lee+rs@example.com"


def test_logout_ends_the_session(client: TestClient, session: Session) -> None:
    make_user(session, "a@example.com")
    login(client, "a@example.com")
    token = csrf_for(client)
    assert (
        client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code
        == 303
    )
    assert session.exec(select(UserSession)).all() == []
    assert client.get("/", follow_redirects=False).status_code == 303


def test_api_token_shown_once_stored_hashed_and_revocable(
    client: TestClient, session: Session
) -> None:
    user = make_user(session, "eng@example.com")
    project = make_project(session, user, "Tokened")
    login(client, "eng@example.com")
    token = csrf_for(client, "/account")
    page = client.post("/account/tokens", data={"name": "pipeline", "csrf_token": token})
    assert page.status_code == 200 and "new-token" in data_testids(page.text)
    secret = page.text.split('<code class="token">')[1].split("</code>")[0]
    assert secret.startswith("rst_")
    record = session.exec(select(ApiToken)).one()
    assert record.token_hash != secret and secret not in record.token_hash
    assert secret not in client.get("/account").text  # never shown again

    api = TestClient(client.app)
    headers = {"Authorization": f"Bearer {secret}"}
    projects = api.get("/api/v1/projects", headers=headers)
    assert projects.status_code == 200
    assert [p["name"] for p in projects.json()] == [project.name]
    # Token calls need no CSRF token: browsers never attach it on their own.
    created = api.post("/api/v1/projects", json={"name": "From a script"}, headers=headers)
    assert created.status_code == 201

    revoke = client.post(f"/account/tokens/{record.id}/revoke", data={"csrf_token": token})
    assert revoke.status_code == 200
    assert api.get("/api/v1/projects", headers=headers).status_code == 401
    actions = [e.action for e in session.exec(select(AuditEvent))]
    assert "token.create" in actions and "token.revoke" in actions


def test_bad_bearer_token_is_401(client: TestClient) -> None:
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer rst_nope"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Sign in to continue."}


def test_site_admin_creates_and_deactivates_users(client: TestClient, session: Session) -> None:
    make_user(session, "root@example.com", is_admin=True)
    login(client, "root@example.com")
    token = csrf_for(client, "/admin/users")
    response = client.post(
        "/admin/users",
        data={"email": "new@example.com", "password": "long enough pw", "csrf_token": token},
    )
    assert response.status_code == 200
    assert find_all(response.text, "data-user", "new@example.com")
    short = client.post(
        "/admin/users", data={"email": "x@example.com", "password": "short", "csrf_token": token}
    )
    assert short.status_code == 422 and "at least 10 characters" in short.text
    dup = client.post(
        "/admin/users",
        data={"email": "new@example.com", "password": "long enough pw", "csrf_token": token},
    )
    assert dup.status_code == 409

    from app.auth.service import get_user_by_email

    new = get_user_by_email(session, "new@example.com")
    client.post(f"/admin/users/{new.id}/active", data={"active": "false", "csrf_token": token})
    other = TestClient(client.app)
    other_token = csrf_for(other, "/login")
    refused = other.post(
        "/login",
        data={"email": "new@example.com", "password": "long enough pw", "csrf_token": other_token},
    )
    assert refused.status_code == 401


def test_non_admin_cannot_manage_users(client: TestClient, session: Session) -> None:
    make_user(session, "plain@example.com")
    login(client, "plain@example.com")
    assert client.get("/admin/users").status_code == 403
