"""Walks the HTML routes with and without htmx headers and checks the kind of answer.

A page (`*_page`) answers a whole document to a plain request and to a history restore (htmx
asks for the whole page when it has no cached copy), and never an error to an htmx request; a
fragment (`*_fragment`) answers a fragment to htmx. Every HTML answer varies on the htmx headers.
A missing object answers 404 as a page, or as a fragment to htmx.
"""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.main import all_routers
from tests.support.factories import (
    make_judge_config,
    make_project,
    make_queue,
    make_rollouts,
    make_rubric,
    make_run,
    make_user,
    make_version,
)
from tests.support.web import login

HX = {"HX-Request": "true"}
RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
OK = (200, 286)  # 286: a polled fragment telling htmx to stop polling
WHOLE_DOCUMENT = re.compile(r"<html[\s>]", re.IGNORECASE)


def _html_get_routes() -> list[APIRoute]:
    routes = []
    for router in all_routers():
        for route in router.routes:
            if (
                isinstance(route, APIRoute)
                and "GET" in route.methods
                and not route.path.startswith("/api/")
                and route.path.startswith("/projects/{project_id}")
                and route.name.endswith(("_page", "_fragment"))
            ):
                routes.append(route)
    return routes


def _fill(path: str, ids: dict[str, int]) -> str | None:
    """The route's URL with known ids, or None when it needs an id this world lacks."""
    names = re.findall(r"\{([^}:]+)(?::[^}]+)?\}", path)
    if any(name not in ids for name in names):
        return None
    return re.sub(r"\{([^}:]+)(?::[^}]+)?\}", lambda m: str(ids[m.group(1)]), path)


@pytest.fixture
def walk(session: Session, client: TestClient) -> tuple[TestClient, dict[str, int]]:
    owner = make_user(session, "walker@example.com")
    project = make_project(session, owner, "Walked by htmx")
    rubric = make_rubric(session, project, owner)
    version = make_version(session, project)
    rollouts = make_rollouts(session, project, 2)
    config = make_judge_config(session, project, actor=owner)
    run = make_run(session, project, version, {r.id or 0: None for r in rollouts})
    queue = make_queue(session, project, version, owner, assignees=[owner])
    login(client, owner.email)
    return client, {
        "project_id": project.id or 0,
        "rubric_id": rubric.id or 0,
        "config_id": config.id or 0,
        "run_id": run.id or 0,  # a judge run: probe and training-run routes answer 404, skipped
        "queue_id": queue.id or 0,
        "rollout_id": rollouts[0].id or 0,
    }


def _kind(body: str) -> str:
    return "page" if WHOLE_DOCUMENT.search(body) else "fragment"


def test_pages_and_fragments_answer_their_kind(walk) -> None:
    client, ids = walk
    walked = {"page": 0, "fragment": 0}
    for route in _html_get_routes():
        url = _fill(route.path, ids)
        if url is None:
            continue
        plain = client.get(url, follow_redirects=False)
        if plain.status_code not in OK or not plain.headers["content-type"].startswith("text/html"):
            continue  # downloads, redirects, routes that need a query
        answers = {
            "plain": plain,
            "htmx": client.get(url, headers=HX, follow_redirects=False),
            "restore": client.get(url, headers=RESTORE, follow_redirects=False),
        }
        for name, response in answers.items():
            assert response.status_code in OK, f"{route.path} ({name}): {response.status_code}"
            assert "HX-Request" in response.headers.get("vary", ""), f"{route.path} ({name})"
        if route.name.endswith("_page"):
            assert _kind(plain.text) == "page", f"{route.path}: a page answers a document"
            assert _kind(answers["restore"].text) == "page", f"{route.path}: history restore"
            walked["page"] += 1
        else:
            assert _kind(answers["htmx"].text) == "fragment", f"{route.path}: htmx fragment"
            walked["fragment"] += 1
    assert walked["page"] >= 15, walked
    assert walked["fragment"] >= 3, walked


def test_missing_objects_answer_a_page_or_a_fragment(walk) -> None:
    client, ids = walk
    url = f"/projects/{ids['project_id']}/rubrics/999999"
    plain = client.get(url)
    htmx = client.get(url, headers=HX)
    restore = client.get(url, headers=RESTORE)
    assert plain.status_code == htmx.status_code == restore.status_code == 404
    assert _kind(plain.text) == "page"
    assert _kind(restore.text) == "page"
    assert _kind(htmx.text) == "fragment"
    assert "No such rubric" in htmx.text
