"""A failed htmx request is never silent: a server error, a 4xx without a fragment and a network
error each show a visible alert, and the list the request meant to replace is marked not updated."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlmodel import Session

from app.rollouts.models import Rollout
from tests.support.factories import make_project, make_user
from tests.support.web import PASSWORD

pytestmark = pytest.mark.e2e

ALERT = "[data-testid=request-error]"


def sign_in(page, email: str) -> None:
    page.goto("/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=nav-account]")


def _project_with_rollouts(session: Session) -> tuple[int, str]:
    owner = make_user(session, "engineer@example.com")
    project = make_project(session, owner, "Contract review")
    for i, model in enumerate(("model-a", "model-b")):
        session.add(
            Rollout(
                project_id=project.id or 0,
                external_id=f"r-{i}",
                content_hash=f"{i}" * 64,
                input_messages=[{"role": "user", "content": "Review the contract."}],
                response="A comment.",
                model=model,
                step=i,
            )
        )
    session.commit()
    return project.id or 0, owner.email


def test_failed_htmx_requests_show_a_visible_message(page, session: Session) -> None:
    project_id, email = _project_with_rollouts(session)
    sign_in(page, email)
    page.goto(f"/projects/{project_id}/rollouts")
    expect(page.locator(ALERT)).to_be_hidden()

    # A server error on the filter request: the alert says so, the old list is marked stale.
    page.route("**/rollouts?*", lambda route: route.fulfill(status=500, body="boom"))
    page.select_option("[data-testid=filter-model]", "model-a")
    expect(page.locator(ALERT)).to_be_visible()
    expect(page.locator(ALERT)).to_contain_text("error 500")
    expect(page.locator("#rollout-list")).to_have_attribute("data-stale", "true")
    page.screenshot(path="/tmp/htmx-failure-500.png")
    page.click("[data-dismiss-request-error]")
    expect(page.locator(ALERT)).to_be_hidden()

    # A network error (the request never gets an answer).
    page.unroute("**/rollouts?*")
    page.route("**/rollouts?*", lambda route: route.abort("connectionrefused"))
    page.select_option("[data-testid=filter-model]", "model-b")
    expect(page.locator(ALERT)).to_be_visible()
    expect(page.locator(ALERT)).to_contain_text("could not be reached")

    # A 4xx with no fragment to show.
    page.unroute("**/rollouts?*")
    page.route("**/rollouts?*", lambda route: route.fulfill(status=409, body=""))
    page.select_option("[data-testid=filter-model]", "")
    expect(page.locator(ALERT)).to_contain_text("error 409")
    assert page.locator("[data-testid=rollout-row]").count() == 2

    # The same filter working again clears the alert and the stale mark.
    page.unroute("**/rollouts?*")
    page.select_option("[data-testid=filter-model]", "model-a")
    expect(page.locator(ALERT)).to_be_hidden()
    expect(page.locator("#rollout-list")).not_to_have_attribute("data-stale", "true")
    expect(page.locator("[data-testid=rollout-row]")).to_have_count(1)


def test_a_real_server_error_in_an_htmx_request_is_shown(page, session: Session, app) -> None:
    """The app's own 500 answer (a route that raises), not an intercepted one."""
    project_id, email = _project_with_rollouts(session)

    @app.get("/test-only/boom")
    def boom() -> None:
        raise RuntimeError("simulated failure")

    sign_in(page, email)
    page.goto(f"/projects/{project_id}/judges/runs/new")
    page.evaluate("htmx.ajax('GET', '/test-only/boom', {target: '#estimate'})")
    expect(page.locator(ALERT)).to_be_visible()
    expect(page.locator(ALERT)).to_contain_text("Something went wrong on our side")
    expect(page.locator(ALERT)).to_contain_text("error 500")
