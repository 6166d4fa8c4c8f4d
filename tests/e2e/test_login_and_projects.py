"""A person signs in, creates a project and sees it listed — in a real browser."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from tests.support.factories import make_user
from tests.support.web import PASSWORD

pytestmark = pytest.mark.e2e


def sign_in(page, email: str, password: str = PASSWORD) -> None:
    page.goto("/")
    assert "/login" in page.url
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_login_create_project_and_see_it_listed(page, session: Session) -> None:
    make_user(session, "lawyer@example.com")
    sign_in(page, "lawyer@example.com")
    page.wait_for_selector("[data-testid=project-create]")
    assert page.locator("[data-testid=no-projects]").is_visible()

    page.fill("[data-testid=project-create] input[name=name]", "Supply contracts <b>RFT</b>")
    page.fill("[data-testid=project-create] textarea[name=description]", "Nova judge calibration")
    page.click("[data-testid=project-create] button[type=submit]")

    page.wait_for_selector("[data-testid=project-name]")
    assert page.inner_text("[data-testid=project-name]") == "Supply contracts <b>RFT</b>"
    assert "created" in page.inner_text("[data-testid=flash]")
    assert page.inner_text("[data-testid=my-role]") == "your role: admin"

    page.goto("/")
    cards = page.locator("[data-testid=project-list] li")
    assert cards.count() == 1
    assert "Supply contracts <b>RFT</b>" in cards.first.inner_text()
    assert page.console_errors == []


def test_wrong_password_shows_a_message(page, session: Session) -> None:
    make_user(session, "expert@example.com")
    sign_in(page, "expert@example.com", "not the password")
    page.wait_for_selector("[data-testid=login-error]")
    assert "not correct" in page.inner_text("[data-testid=login-error]")


def test_api_reference_renders_under_the_csp(page) -> None:
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .opblock-tag")
    assert page.get_by_text("/api/v1/projects", exact=True).first.is_visible()
    assert [e for e in page.console_errors if "Content Security Policy" in e] == []
