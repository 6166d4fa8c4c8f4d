"""The one URL builder views and templates share."""

from __future__ import annotations

from app.web.templating import build_templates
from app.web.urls import project_url


def test_project_urls_join_parts_and_keep_set_query_values() -> None:
    assert project_url(7) == "/projects/7"
    assert project_url(7, "judges", "runs", 12) == "/projects/7/judges/runs/12"
    assert (
        project_url(7, "judges", comparison="abc", page=None) == "/projects/7/judges?comparison=abc"
    )
    assert project_url(7, "rollouts", q="a b&c") == "/projects/7/rollouts?q=a+b%26c"


def test_templates_build_the_same_urls() -> None:
    env = build_templates().env
    rendered = env.from_string("{{ project_url(pid, 'imports', job) }}").render(pid=3, job=9)
    assert rendered == "/projects/3/imports/9"
