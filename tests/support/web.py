"""Helpers for driving the app over HTTP in tests: CSRF tokens, logging in, HTML selectors."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from fastapi.testclient import TestClient

PASSWORD = "correct horse battery staple"

_CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def csrf_for(client: TestClient, path: str = "/") -> str:
    response = client.get(path)
    return csrf_from(response.text)


def login(client: TestClient, email: str, password: str = PASSWORD) -> None:
    token = csrf_for(client, "/login")
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


class _Finder(HTMLParser):
    def __init__(self, attr: str, value: str | None) -> None:
        super().__init__()
        self.attr, self.value = attr, value
        self.found: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        if self.attr in d and (self.value is None or d[self.attr] == self.value):
            self.found.append({"_tag": tag, **d})


def find_all(html: str, attr: str, value: str | None = None) -> list[dict[str, str | None]]:
    """Elements carrying attribute `attr` (equal to `value` when given), e.g. data-testid."""
    finder = _Finder(attr, value)
    finder.feed(html)
    return finder.found


def data_testids(html: str) -> set[str]:
    return {str(e["data-testid"]) for e in find_all(html, "data-testid")}
