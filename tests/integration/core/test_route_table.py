"""Walks the whole route table: authentication, roles and CSRF on every route, automatically.

A route added later is covered without touching this file: anonymous access, permission
dependencies (ProjectPermission / RequireSiteAdmin found in its dependency tree) and CSRF.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.auth.dependencies import ProjectPermission, RequireSiteAdmin
from app.auth.policies import Permission, role_allows
from app.main import all_routers
from app.projects.models import Role
from tests.support.factories import make_project, make_user
from tests.support.web import csrf_for, login

PUBLIC_PATHS = {"/login", "/healthz", "/readyz", "/openapi.json", "/docs"}
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass
class RouteCase:
    method: str
    path: str
    permission: Permission | None
    site_admin: bool

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _requirements(route: APIRoute) -> tuple[Permission | None, bool]:
    permission, site_admin = None, False
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        # Resource loaders (`ProjectRubric`, `ProjectRun`, …) check membership with
        # project_read; the route's own, stronger permission is the one that counts.
        if isinstance(dep.call, ProjectPermission) and (
            permission in (None, Permission.project_read)
        ):
            permission = dep.call.permission
        if isinstance(dep.call, RequireSiteAdmin):
            site_admin = True
        stack.extend(dep.dependencies)
    return permission, site_admin


def route_cases(app: FastAPI) -> list[RouteCase]:
    cases = []
    routes = [route for router in all_routers() for route in router.routes]
    for route in routes:
        if not isinstance(route, APIRoute) or route.path in PUBLIC_PATHS:
            continue
        permission, site_admin = _requirements(route)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            cases.append(RouteCase(method, route.path, permission, site_admin))
    return cases


def _fill(path: str, project_id: int) -> str:
    path = path.replace("{project_id}", str(project_id))
    return re.sub(r"\{[^}]+\}", "999999", path)


@pytest.fixture
def world(session: Session) -> dict[str, object]:
    admin = make_user(session, "owner@example.com", is_admin=False)
    users = {role: make_user(session, f"{role.value}@example.com") for role in Role}
    project = make_project(
        session, admin, "Walked project", members=[(u, r.value) for r, u in users.items()]
    )
    return {"project_id": project.id, "users": users}


def test_every_route_is_covered(app: FastAPI) -> None:
    cases = route_cases(app)
    assert len(cases) > 15
    walked = {case.path for case in cases} | PUBLIC_PATHS
    for path in app.openapi()["paths"]:
        assert path in walked, f"{path} is mounted outside all_routers()"
    for case in cases:
        if case.method in STATE_CHANGING and "{project_id}" in case.path:
            assert case.permission is not None, f"{case} changes state without a permission check"


def test_anonymous_requests_are_refused(app: FastAPI, client: TestClient, world) -> None:
    for case in route_cases(app):
        response = client.request(
            case.method, _fill(case.path, world["project_id"]), follow_redirects=False
        )
        if case.is_api:
            assert response.status_code == 401, f"{case}: {response.status_code}"
            assert response.json()["detail"]
        else:
            assert response.status_code in (303, 401), f"{case}: {response.status_code}"
            target = response.headers.get("location") or response.headers.get("hx-redirect", "")
            assert target.startswith("/login"), f"{case} did not send to the login page"


def test_state_changing_routes_refuse_roles_without_permission(
    app: FastAPI, settings, world
) -> None:
    users = world["users"]
    checked = 0
    for role in Role:
        with TestClient(app) as client:
            login(client, users[role].email)
            token = csrf_for(client)
            for case in route_cases(app):
                if case.method not in STATE_CHANGING:
                    continue
                refused = (case.permission and not role_allows(role, case.permission)) or (
                    case.site_admin
                )
                if not refused:
                    continue
                response = client.request(
                    case.method,
                    _fill(case.path, world["project_id"]),
                    headers={"X-CSRF-Token": token},
                    follow_redirects=False,
                )
                assert response.status_code == 403, f"{case} as {role}: {response.status_code}"
                checked += 1
    assert checked > 5


def test_session_requests_without_csrf_are_refused(app: FastAPI, world) -> None:
    with TestClient(app) as client:
        login(client, world["users"][Role.admin].email)
        for case in route_cases(app):
            if case.method not in STATE_CHANGING:
                continue
            for headers in ({}, {"X-CSRF-Token": "0" * 64}):
                response = client.request(
                    case.method,
                    _fill(case.path, world["project_id"]),
                    headers=headers,
                    follow_redirects=False,
                )
                assert response.status_code == 403, f"{case}: {response.status_code}"
                assert "CSRF" in response.text, f"{case}: refused for another reason"


def test_read_routes_are_refused_to_non_members(app: FastAPI, session: Session, world) -> None:
    outsider = make_user(session, "outsider@example.com")
    with TestClient(app) as client:
        login(client, outsider.email)
        for case in route_cases(app):
            if case.method != "GET" or case.permission is None:
                continue
            response = client.get(_fill(case.path, world["project_id"]), follow_redirects=False)
            assert response.status_code == 404, f"{case}: {response.status_code}"


# --------------------------------------------------------------- hostile values on every route

HUGE_INT = 2**63  # beyond BIGINT, and beyond INTEGER on PostgreSQL
LONG_TEXT = "x" * 70_000
LONG_URL_TEXT = "x" * 2_000  # URLs: beyond every column, within what a URL may carry
SKIPPED = {"/logout"}  # would end the walking session


def _params(route: APIRoute) -> tuple[list, list, list]:
    """(path, query, body) parameters of a route and of every dependency it declares."""
    path, query, body = [], [], []
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        path.extend(dependant.path_params)
        query.extend(dependant.query_params)
        body.extend(dependant.body_params)
        stack.extend(dependant.dependencies)
    return path, query, body


def _kind(annotation: object) -> str:
    text = str(annotation)
    if "UploadFile" in text:
        return "file"
    if annotation is int or "int" in text.split("[")[0] or text.startswith("typing.Annotated[int"):
        return "int"
    if "int" in text and "str" not in text:
        return "int"
    return "str"


def _hostile_request(route: APIRoute, method: str, project_id: int, variant: str):
    """URL, form fields, JSON body and files carrying one kind of hostile value everywhere."""
    text = {"nul": "a\x00b", "long": LONG_TEXT, "range": "ok"}[variant]
    url_text = {"nul": "a\x00b", "long": LONG_URL_TEXT, "range": "ok"}[variant]
    path_text = {"nul": "a%00b", "long": LONG_URL_TEXT, "range": "ok"}[variant]
    number = HUGE_INT if variant == "range" else 1
    path_params, query_params, body_params = _params(route)
    url = route.path.replace("{project_id}", str(project_id))
    for param in path_params:
        if param.name == "project_id":
            continue
        value = str(number) if _kind(param.field_info.annotation) == "int" else path_text
        url = re.sub(r"\{" + param.name + r"(:[a-z]+)?\}", value, url)
    query = {
        p.alias: str(number) if _kind(p.field_info.annotation) == "int" else url_text
        for p in query_params
    }
    form: dict[str, str] = {}
    files = {}
    json_body = None
    for param in body_params:
        annotation = param.field_info.annotation
        if type(param.field_info).__name__ in ("Form", "File"):
            if _kind(annotation) == "file":
                files[param.alias] = ("x.txt", text.encode("utf-8", "replace"), "text/plain")
            else:
                form[param.alias] = str(number) if _kind(annotation) == "int" else text
        elif hasattr(annotation, "model_fields"):
            json_body = {
                name: number if _kind(field.annotation) == "int" else text
                for name, field in annotation.model_fields.items()
            }
    return url, query, form, files, json_body


@pytest.mark.parametrize("variant", ["range", "nul", "long"])
def test_hostile_values_on_every_route_answer_4xx_not_5xx(
    app: FastAPI, session: Session, world, variant: str
) -> None:
    """Out-of-range ids and integers, NUL characters and over-long strings in every path,
    query, form and JSON parameter of every route: a 4xx (or a normal answer), never a 5xx."""
    admin = make_user(session, "site-admin@example.com", is_admin=True)
    project = make_project(session, admin, "Hostile")
    failures = []
    walked = 0
    with TestClient(app, raise_server_exceptions=False) as client:
        login(client, admin.email)
        token = csrf_for(client)
        for route in (r for router in all_routers() for r in router.routes):
            if not isinstance(route, APIRoute) or route.path in SKIPPED:
                continue
            for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                url, query, form, files, json_body = _hostile_request(
                    route, method, project.id, variant
                )
                if variant == "range" and "{project_id}" in route.path:
                    # The project id itself, out of range, on the same route.
                    bad = client.request(
                        method,
                        re.sub(
                            r"\{[^}]+\}", "1", route.path.replace("{project_id}", str(HUGE_INT))
                        ),
                        headers={"X-CSRF-Token": token},
                        follow_redirects=False,
                    )
                    if bad.status_code >= 500:
                        failures.append(f"{method} {route.path} (project id): {bad.status_code}")
                kwargs: dict = {"params": query, "headers": {"X-CSRF-Token": token}}
                if json_body is not None:
                    kwargs["json"] = json_body
                elif form or files:
                    kwargs["data"] = form
                    if files:
                        kwargs["files"] = files
                response = client.request(method, url, follow_redirects=False, **kwargs)
                walked += 1
                if response.status_code >= 500:
                    failures.append(f"{method} {route.path}: {response.status_code}")
    assert walked > 100
    assert not failures, "\n".join(failures)
