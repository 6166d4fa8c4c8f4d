"""Rubric pages and API over HTTP: autosave with revisions, conflicts shown side by side,
sandboxed templates reported inline, live preview, publishing, sign-off, comparison, and
published versions that no route can change."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.audit.models import AuditEvent
from app.auth import service as auth_service
from app.auth.models import User
from app.labels.models import GoldItem
from app.projects import service as project_service
from app.rubrics import previews as rubric_previews
from app.rubrics import publishing as rubric_publishing
from app.rubrics import service as rubric_service
from app.rubrics.models import Rubric, RubricVersion
from tests.integration.rubrics.conftest import World, client_for
from tests.support.factories import make_rollout
from tests.support.web import csrf_for, data_testids, find_all

HTMX = {"HX-Request": "true"}
ESCAPE = "{{ ''.__class__.__mro__[1].__subclasses__() }}"


def _create(client: TestClient, world: World, template: str = "legal_contract_review") -> int:
    page = f"/projects/{world.pid}/rubrics"
    token = csrf_for(client, page)
    response = client.post(
        page,
        data={"name": "Contract review", "template": template, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def _form(session: Session, rubric_id: int) -> dict[str, str]:
    """The editor form's fields as the browser would post them, from the stored draft."""
    rubric = session.get(Rubric, rubric_id)
    assert rubric is not None
    session.refresh(rubric)
    draft = rubric_service.current_draft(session, rubric)
    fields: dict[str, str] = {
        "draft_revision": str(rubric.draft_revision),
        "title": draft["title"],
        "task_description": draft.get("task_description", ""),
        "preference_instruction": draft.get("preference_instruction", ""),
        "aggregation": draft.get("aggregation", "weighted_mean"),
        "item_field": draft.get("item_field") or "",
        "system_template": draft.get("system_template", "").replace("\n", "\r\n"),
        "user_template": draft.get("user_template", "").replace("\n", "\r\n"),
    }
    for name in ("edge_case_rules", "desired_behaviours", "discouraged_behaviours"):
        fields[name] = "\r\n".join(draft.get(name, []))
    for i, c in enumerate(draft["criteria"]):
        fields |= {
            f"c-{i}-key": c["key"],
            f"c-{i}-name": c["name"],
            f"c-{i}-description": c["description"],
            f"c-{i}-type": c["type"],
            f"c-{i}-weight": str(c["weight"]),
        }
        if c.get("hard_fail"):
            fields[f"c-{i}-hard_fail"] = "on"
        for j, level in enumerate(c.get("levels", [])):
            fields[f"c-{i}-l-{j}-value"] = str(level["value"])
            fields[f"c-{i}-l-{j}-description"] = level["description"]
    return fields


def _save(client: TestClient, world: World, rubric_id: int, fields: dict[str, str]) -> Any:
    token = csrf_for(client, f"/projects/{world.pid}/rubrics/{rubric_id}")
    return client.post(
        f"/projects/{world.pid}/rubrics/{rubric_id}/draft",
        data=fields,
        headers=HTMX | {"X-CSRF-Token": token},
    )


def _revision_in(html: str) -> str:
    (element,) = find_all(html, "id", "draft-revision")
    assert element["hx-swap-oob"] == "true"
    return str(element["value"])


def test_list_create_and_open_the_editor(
    expert_client: TestClient, session: Session, world: World
) -> None:
    listing = expert_client.get(f"/projects/{world.pid}/rubrics")
    assert {"no-rubrics", "rubric-create", "rubric-import"} <= data_testids(listing.text)
    choices = {e["value"] for e in find_all(listing.text, "name", "template")}
    assert {"legal_contract_review", "generic_pass_fail", "pairwise_preference"} <= choices
    rubric_id = _create(expert_client, world)
    editor = expert_client.get(f"/projects/{world.pid}/rubrics/{rubric_id}")
    assert editor.status_code == 200
    # (The page also holds an empty copy of each block in a <template> for the script.)
    names = [e["value"] for e in find_all(editor.text, "data-testid", "criterion-name")][:-1]
    assert names == [
        "Grounded in the contract",
        "Justified by the reference",
        "Actionable recommendation",
    ]
    assert len(find_all(editor.text, "data-testid", "level")) == 15 + 1
    (form,) = find_all(editor.text, "data-testid", "rubric-form")
    assert form["hx-trigger"] and "input changed delay:800ms" in str(form["hx-trigger"])
    assert "draft-ready" in data_testids(editor.text)
    rows = find_all(
        expert_client.get(f"/projects/{world.pid}/rubrics").text, "data-testid", "rubric-row"
    )
    assert [r["data-rubric-id"] for r in rows] == [str(rubric_id)]


def test_autosave_returns_the_new_revision_for_the_next_save(
    expert_client: TestClient, session: Session, world: World
) -> None:
    rubric_id = _create(expert_client, world)
    fields = _form(session, rubric_id)
    fields["c-0-name"] = "Quotes the contract"
    first = _save(expert_client, world, rubric_id, fields)
    assert first.status_code == 200
    assert _revision_in(first.text) == "2"
    (status,) = find_all(first.text, "data-testid", "draft-status")
    assert status["data-revision"] == "2"
    fields["draft_revision"] = _revision_in(first.text)
    fields["c-0-name"] = "Quotes the contract verbatim"
    second = _save(expert_client, world, rubric_id, fields)
    assert second.status_code == 200 and _revision_in(second.text) == "3"
    stored = session.get(Rubric, rubric_id)
    assert stored is not None
    session.refresh(stored)
    assert stored.draft is not None
    assert stored.draft["criteria"][0]["name"] == "Quotes the contract verbatim"
    # Browser line breaks are stored as plain newlines.
    assert "\r" not in stored.draft["system_template"]
    assert stored.draft["criteria"][0]["levels"][0]["value"] == 1


def test_second_save_of_a_revision_shows_both_versions_and_keeps_the_first(
    app: FastAPI, expert_client: TestClient, session: Session, world: World
) -> None:
    rubric_id = _create(expert_client, world)
    base = _form(session, rubric_id)
    with client_for(app, world.engineer) as engineer:
        theirs = base | {"c-1-description": "ENGINEER TEXT"}
        assert _save(engineer, world, rubric_id, theirs).status_code == 200
    mine = base | {"c-1-description": "EXPERT TEXT"}
    conflict = _save(expert_client, world, rubric_id, mine)
    assert conflict.status_code == 409
    assert conflict.headers["HX-Retarget"] == "#draft-status"
    assert "draft-conflict" in data_testids(conflict.text)
    assert "ENGINEER TEXT" in conflict.text and "EXPERT TEXT" in conflict.text
    changed = [
        r for r in find_all(conflict.text, "data-testid", "diff-row") if r["data-kind"] == "changed"
    ]
    assert len(changed) == 1, "only the differing line is highlighted"
    assert not find_all(conflict.text, "id", "draft-revision")  # no new revision handed out
    stored = session.get(Rubric, rubric_id)
    assert stored is not None
    session.refresh(stored)
    assert stored.draft is not None and stored.draft_revision == 2
    assert stored.draft["criteria"][1]["description"] == "ENGINEER TEXT"
    # Without htmx the whole editor comes back with the conflict, still 409.
    token = csrf_for(expert_client, f"/projects/{world.pid}/rubrics/{rubric_id}")
    page = expert_client.post(
        f"/projects/{world.pid}/rubrics/{rubric_id}/draft", data=mine | {"csrf_token": token}
    )
    assert page.status_code == 409 and "draft-conflict" in data_testids(page.text)
    # Choosing "keep mine" sends their revision explicitly.
    (keep,) = find_all(conflict.text, "data-testid", "keep-mine")
    assert keep["hx-vals"] == '{"draft_revision": "2"}'
    kept = _save(expert_client, world, rubric_id, mine | {"draft_revision": "2"})
    assert kept.status_code == 200
    session.refresh(stored)
    assert stored.draft["criteria"][1]["description"] == "EXPERT TEXT"


def test_sandbox_escape_is_reported_inline_never_a_500(
    expert_client: TestClient, session: Session, world: World
) -> None:
    make_rollout(session, world.project)
    rubric_id = _create(expert_client, world)
    fields = _form(session, rubric_id)
    fields["system_template"] = "Judge carefully.\r\n" + ESCAPE
    saved = _save(expert_client, world, rubric_id, fields)
    assert saved.status_code == 200
    (error,) = find_all(saved.text, "data-testid", "template-error")
    assert error["data-line"] == "2"
    assert "not allowed in templates" in saved.text
    assert ESCAPE.replace("'", "&#39;") in saved.text  # the offending line, shown as text
    assert "draft-not-ready" in data_testids(saved.text)

    token = csrf_for(expert_client, f"/projects/{world.pid}/rubrics/{rubric_id}")
    preview = expert_client.post(
        f"/projects/{world.pid}/rubrics/{rubric_id}/preview",
        data=fields,
        headers=HTMX | {"X-CSRF-Token": token},
    )
    assert preview.status_code == 200
    assert "preview-template-error" in data_testids(preview.text)
    assert "not allowed in templates" in preview.text
    assert "subclasses" not in preview.text.replace(ESCAPE.replace("'", "&#39;"), "")

    published = expert_client.post(
        f"/projects/{world.pid}/rubrics/{rubric_id}/publish",
        data=fields | {"change_note": "sneaky"},
        headers=HTMX | {"X-CSRF-Token": token},
    )
    assert published.status_code == 422
    assert "publish-error" in data_testids(published.text)
    assert "system_template line 2" in published.text
    assert session.exec(select(RubricVersion)).first() is None


def test_template_syntax_error_names_its_line(
    expert_client: TestClient, session: Session, world: World
) -> None:
    rubric_id = _create(expert_client, world)
    fields = _form(session, rubric_id)
    fields["user_template"] = "{{ response }}\r\nline two\r\n{% if %}"
    saved = _save(expert_client, world, rubric_id, fields)
    assert saved.status_code == 200
    errors = find_all(saved.text, "data-testid", "template-errors-user")
    assert errors and errors[0]["hx-swap-oob"] == "true"
    (error,) = find_all(saved.text, "data-testid", "template-error")
    assert error["data-line"] == "3" and "syntax error" in saved.text


def test_live_preview_shows_the_exact_messages_and_tokens(
    expert_client: TestClient, session: Session, world: World
) -> None:
    rollout = make_rollout(session, world.project, response="RESPONSE <b>UNDER</b> REVIEW")
    rubric_id = _create(expert_client, world)
    fields = _form(session, rubric_id) | {"rollout_id": str(rollout.id)}
    fields["c-2-name"] = "Tells the reader what to do"  # typed, not saved yet
    token = csrf_for(expert_client, f"/projects/{world.pid}/rubrics/{rubric_id}")
    response = expert_client.post(
        f"/projects/{world.pid}/rubrics/{rubric_id}/preview",
        data=fields,
        headers=HTMX | {"X-CSRF-Token": token},
    )
    assert response.status_code == 200
    messages = find_all(response.text, "data-testid", "preview-message")
    assert [m["data-role"] for m in messages] == ["system", "user"]
    assert "Tells the reader what to do" in response.text
    assert "RESPONSE &lt;b&gt;UNDER&lt;/b&gt; REVIEW" in response.text  # inert text
    (tokens,) = find_all(response.text, "data-testid", "preview-tokens")
    rubric = session.get(Rubric, rubric_id)
    assert rubric is not None
    draft = rubric_service.current_draft(session, rubric)
    draft["criteria"][2]["name"] = "Tells the reader what to do"
    expected = rubric_previews.render_preview(draft, rubric_previews.prompt_context(rollout))
    assert tokens["data-tokens"] == str(expected.tokens) and expected.tokens > 100
    # Broken structure: the preview says what to fix instead of failing.
    broken = fields | {"c-0-weight": "-3"}
    response = expert_client.post(
        f"/projects/{world.pid}/rubrics/{rubric_id}/preview",
        data=broken,
        headers=HTMX | {"X-CSRF-Token": token},
    )
    assert response.status_code == 200 and "preview-problems" in data_testids(response.text)
    # Options for the rollout picker, searched by external id.
    options = expert_client.get(
        f"/projects/{world.pid}/rubrics/{rubric_id}/rollout-options",
        params={"q": rollout.external_id},
        headers=HTMX,
    )
    assert [o["value"] for o in find_all(options.text, "value")] == [str(rollout.id)]


def _publish(
    client: TestClient, world: World, rubric_id: int, fields: dict[str, str], note: str
) -> Any:
    token = csrf_for(client, f"/projects/{world.pid}/rubrics/{rubric_id}")
    return client.post(
        f"/projects/{world.pid}/rubrics/{rubric_id}/publish",
        data=fields | {"change_note": note},
        headers=HTMX | {"X-CSRF-Token": token},
    )


def test_publish_sign_off_and_compare_through_the_pages(
    expert_client: TestClient, session: Session, world: World
) -> None:
    rubric_id = _create(expert_client, world)
    base = f"/projects/{world.pid}/rubrics/{rubric_id}"
    fields = _form(session, rubric_id)
    missing = _publish(expert_client, world, rubric_id, fields, "   ")
    assert missing.status_code == 422 and "change note is required" in missing.text
    first = _publish(expert_client, world, rubric_id, fields, "Initial rubric")
    assert first.status_code == 204 and first.headers["HX-Redirect"] == f"{base}/versions/1"

    fields = _form(session, rubric_id)
    fields["c-2-l-4-description"] = "Fully actionable: one concrete step, in contract terms."
    second = _publish(expert_client, world, rubric_id, fields, "Sharper level 5")
    assert second.headers["HX-Redirect"] == f"{base}/versions/2"

    page = expert_client.get(f"{base}/versions/2")
    assert page.status_code == 200
    assert "Sharper level 5" in page.text and "no-approvals" in data_testids(page.text)
    # The expert published v2: someone else signs it off, unless the project allows one approver.
    assert "own-version" in data_testids(page.text)
    assert "approve-form" not in data_testids(page.text)
    token = csrf_for(expert_client, f"{base}/versions/2")
    refused = expert_client.post(f"{base}/versions/2/approve", data={"csrf_token": token})
    assert refused.status_code == 403 and "another expert must sign it off" in refused.text
    project_service.set_single_approver(session, world.project, actor=world.admin, allowed=True)
    assert "approve-form" in data_testids(expert_client.get(f"{base}/versions/2").text)
    approved = expert_client.post(
        f"{base}/versions/2/approve", data={"csrf_token": token, "comment": "Checked"}
    )
    assert approved.status_code == 200
    approvals = find_all(approved.text, "data-testid", "approval")
    assert len(approvals) == 1 and world.expert.email in approved.text
    assert "approve-form" not in data_testids(approved.text)

    compared = expert_client.get(f"{base}/compare", params={"a": "1", "b": "2"})
    assert compared.status_code == 200
    changes = find_all(compared.text, "data-testid", "criterion-change")
    assert [(c["data-key"], c["data-field"]) for c in changes] == [("Actionability", "levels.5")]
    rows = find_all(compared.text, "data-testid", "diff-row")
    assert any(r["data-kind"] == "changed" for r in rows)
    assert "Fully actionable: one concrete step, in contract terms." in compared.text
    # Defaults: the two newest versions; the draft can be compared once valid.
    assert expert_client.get(f"{base}/compare").status_code == 200
    assert expert_client.get(f"{base}/compare", params={"a": "1", "b": "draft"}).status_code == 200
    assert expert_client.get(f"{base}/compare", params={"a": "9", "b": "2"}).status_code == 404
    assert expert_client.get(f"{base}/compare", params={"a": "x", "b": "2"}).status_code == 422


def test_published_versions_are_unchanged_by_every_route(
    app: FastAPI, expert_client: TestClient, session: Session, world: World
) -> None:
    rollout = make_rollout(session, world.project)
    project_service.set_single_approver(session, world.project, actor=world.admin, allowed=True)
    rubric_id = _create(expert_client, world)
    base = f"/projects/{world.pid}/rubrics/{rubric_id}"
    assert (
        _publish(expert_client, world, rubric_id, _form(session, rubric_id), "v1").status_code
        == 204
    )
    (v1,) = session.exec(select(RubricVersion)).all()
    frozen = (v1.definition, v1.output_schema, v1.content_hash, v1.change_note, v1.created_at)

    # Every form: edit the draft, add an example, regenerate, publish v2, sign off, archive.
    fields = _form(session, rubric_id)
    fields["title"] = "Changed title"
    assert _save(expert_client, world, rubric_id, fields).status_code == 200
    token = csrf_for(expert_client, base)
    headers = HTMX | {"X-CSRF-Token": token}
    added = expert_client.post(
        f"{base}/examples",
        data={
            "draft_revision": _form(session, rubric_id)["draft_revision"],
            "rollout_id": str(rollout.id),
            "label-Actionability": "4",
        },
        headers=headers,
    )
    assert added.status_code == 200 and "example" in data_testids(added.text)
    assert (
        expert_client.post(
            f"{base}/regenerate", data=_form(session, rubric_id), headers=headers
        ).status_code
        == 204
    )
    assert (
        _publish(expert_client, world, rubric_id, _form(session, rubric_id), "v2").status_code
        == 204
    )
    assert (
        expert_client.post(f"{base}/versions/1/approve", data={"csrf_token": token}).status_code
        == 200
    )
    assert (
        expert_client.post(
            f"{base}/archive", data={"csrf_token": token, "archived": "false"}
        ).status_code
        == 200
    )

    # No route writes to a version: other methods on version URLs do not exist.
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        for path in (
            f"{base}/versions/1",
            f"/api/v1/projects/{world.pid}/rubrics/{rubric_id}/versions/1",
        ):
            response = expert_client.request(method, path, headers={"X-CSRF-Token": token})
            assert response.status_code in (404, 405), f"{method} {path}"

    # The API: draft save, publish, approve, import.
    token_value = auth_service.create_api_token(session, world.expert, "t").token
    api = TestClient(app, headers={"Authorization": f"Bearer {token_value}"})
    api_base = f"/api/v1/projects/{world.pid}/rubrics/{rubric_id}"
    current = api.get(api_base).json()
    definition = current["draft"] | {"title": "API title"}
    assert (
        api.put(
            f"{api_base}/draft",
            json={"revision": current["draft_revision"], "definition": definition},
        ).status_code
        == 200
    )
    assert api.post(f"{api_base}/publish", json={"change_note": "v3"}).status_code == 201
    assert api.post(f"{api_base}/versions/2/approve", json={"comment": "ok"}).status_code == 201
    exported = api.get(f"{api_base}/export").text
    assert (
        api.post(
            f"/api/v1/projects/{world.pid}/rubrics/import",
            json={"content": exported, "name": "Copy"},
        ).status_code
        == 201
    )

    session.expire_all()
    stored = session.get(RubricVersion, v1.id)
    assert stored is not None
    assert (
        stored.definition,
        stored.output_schema,
        stored.content_hash,
        stored.change_note,
        stored.created_at,
    ) == frozen
    numbers = session.exec(
        select(RubricVersion.number).where(RubricVersion.rubric_id == rubric_id)
    ).all()
    assert sorted(numbers) == [1, 2, 3]  # editing always made new versions


def test_api_draft_conflict_returns_the_current_draft(
    app: FastAPI, session: Session, world: World
) -> None:
    token = auth_service.create_api_token(session, world.engineer, "t").token
    api = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    base = f"/api/v1/projects/{world.pid}/rubrics"
    created = api.post(base, json={"name": "Generic", "template": "generic_pass_fail"})
    assert created.status_code == 201
    body = created.json()
    assert body["valid"] and body["draft_revision"] == 1 and body["versions"] == []
    url = f"{base}/{body['id']}"
    first = api.put(
        f"{url}/draft", json={"revision": 1, "definition": body["draft"] | {"title": "First"}}
    )
    assert first.json() == {
        "revision": 2,
        "changed": True,
        "valid": True,
        "problems": [],
        "template_errors": [],
    }
    second = api.put(
        f"{url}/draft", json={"revision": 1, "definition": body["draft"] | {"title": "Second"}}
    )
    assert second.status_code == 409
    conflict = second.json()
    assert conflict["current_revision"] == 2 and conflict["current_definition"]["title"] == "First"
    assert conflict["updated_by"] == world.engineer.label
    assert api.get(url).json()["draft"]["title"] == "First"
    # Invalid drafts are saved and explained; bad bodies get readable 422s.
    invalid = api.put(
        f"{url}/draft",
        json={"revision": 2, "definition": body["draft"] | {"system_template": ESCAPE}},
    )
    assert invalid.status_code == 200
    result = invalid.json()
    assert not result["valid"] and result["template_errors"][0]["part"] == "system"
    assert "not allowed in templates" in result["template_errors"][0]["message"]
    assert api.put(f"{url}/draft", json={"revision": "x", "definition": {}}).status_code == 422
    assert api.put(f"{url}/draft", json={"revision": 3, "definition": []}).status_code == 422
    refused = api.post(f"{url}/publish", json={"change_note": "try", "revision": 3})
    assert refused.status_code == 422 and refused.json()["problems"]
    stale = api.post(f"{url}/publish", json={"change_note": "try", "revision": 1})
    assert stale.status_code == 409
    # Engineers edit and publish but do not sign off.
    api.put(f"{url}/draft", json={"revision": 3, "definition": body["draft"]})
    assert api.post(f"{url}/publish", json={"change_note": "v1"}).status_code == 201
    assert api.post(f"{url}/versions/1/approve", json={}).status_code == 403
    version = api.get(f"{url}/versions/1").json()
    assert version["number"] == 1 and version["output_schema"]["type"] == "object"
    assert [v["number"] for v in api.get(f"{url}/versions").json()] == [1]
    assert api.get(f"{url}/versions/5").status_code == 404
    listed = api.get(base).json()
    assert [(r["name"], r["latest_version"]) for r in listed] == [("Generic", 1)]
    # Every response describing a version carries its id (runs, queues, imports take it).
    assert version["id"] > 0 and listed[0]["latest_version_id"] == version["id"]
    assert api.get(url).json()["versions"][0]["id"] == version["id"]
    assert api.get(url).json()["latest_version_id"] == version["id"]
    described = api.get(url).json()
    assert described["draft_based_on_version"] == 1
    assert described["draft_based_on_version_id"] == version["id"]


def test_a_template_over_budget_is_refused_quickly_and_never_slows_its_pages(
    app: FastAPI, session: Session, world: World
) -> None:
    token = auth_service.create_api_token(session, world.engineer, "t").token
    api = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    base = f"/api/v1/projects/{world.pid}/rubrics"
    body = api.post(base, json={"name": "Generic", "template": "generic_pass_fail"}).json()
    url = f"{base}/{body['id']}"
    nested = "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}"
    started = time.process_time()
    saved = api.put(
        f"{url}/draft",
        json={"revision": 1, "definition": body["draft"] | {"system_template": nested}},
    )
    assert time.process_time() - started < 6.0
    result = saved.json()
    assert not result["valid"]
    (error,) = result["template_errors"]
    assert error["part"] == "system"
    assert "loop iterations" in error["message"] or "must render within" in error["message"]
    publish = api.post(f"{url}/publish", json={"change_note": "try", "revision": 2})
    assert publish.status_code == 422
    browser = client_for(app, world.engineer)
    started = time.process_time()
    page = browser.get(f"/projects/{world.pid}/rubrics/{body['id']}")
    assert page.status_code == 200 and time.process_time() - started < 6.0


def test_api_renders_a_version_for_a_rollout(app: FastAPI, session: Session, world: World) -> None:
    rollout = make_rollout(session, world.project, response="THE RESPONSE")
    rubric = rubric_service.create_rubric(
        session, world.project, actor=world.expert, name="G", template="generic_pass_fail"
    )
    rubric_publishing.publish_version(session, rubric, actor=world.expert, change_note="v1")
    token = auth_service.create_api_token(session, world.reviewer, "t").token
    api = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    rendered = api.get(
        f"/api/v1/projects/{world.pid}/rubrics/{rubric.id}/versions/1/render",
        params={"rollout_id": rollout.id},
    )
    assert rendered.status_code == 200
    body = rendered.json()
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "THE RESPONSE" in body["messages"][1]["content"] and body["estimated_tokens"] > 0


def test_examples_through_the_form_refuse_gold_test_items(
    expert_client: TestClient, session: Session, world: World
) -> None:
    usable = make_rollout(session, world.project)
    hidden = make_rollout(session, world.project)
    session.add(GoldItem(project_id=world.pid, rollout_id=hidden.id or 0, split="test"))
    session.commit()
    rubric_id = _create(expert_client, world)
    base = f"/projects/{world.pid}/rubrics/{rubric_id}"
    editor = expert_client.get(base).text
    (select_,) = find_all(editor, "data-testid", "example-rollout")
    assert select_["name"] == "rollout_id"
    options = expert_client.get(f"{base}/rollout-options", params={"purpose": "example"}).text
    assert [o["value"] for o in find_all(options, "value")] == [str(usable.id)]
    token = csrf_for(expert_client, base)
    headers = HTMX | {"X-CSRF-Token": token}
    refused = expert_client.post(
        f"{base}/examples",
        data={"draft_revision": "1", "rollout_id": str(hidden.id)},
        headers=headers,
    )
    assert refused.status_code == 422 and "gold test split" in refused.text
    added = expert_client.post(
        f"{base}/examples",
        data={
            "draft_revision": "1",
            "rollout_id": str(usable.id),
            "label-TargetDocument_Grounding": "5",
            "critique": "Exact quote",
        },
        headers=headers,
    )
    assert added.status_code == 200
    assert added.headers["HX-Trigger"] == "rubric-examples-changed"
    assert _revision_in(added.text) == "2"
    (example,) = find_all(added.text, "data-testid", "example")
    assert example["data-rollout-id"] == str(usable.id)
    removed = expert_client.post(
        f"{base}/examples/0/remove", data={"draft_revision": "2"}, headers=headers
    )
    assert removed.status_code == 200 and "no-examples" in data_testids(removed.text)
    gone = expert_client.post(
        f"{base}/examples/3/remove", data={"draft_revision": "3"}, headers=headers
    )
    assert gone.status_code == 404
    bad = expert_client.post(
        f"{base}/examples", data={"draft_revision": "3", "rollout_id": "x"}, headers=headers
    )
    assert bad.status_code == 422


@pytest.mark.parametrize("role", ["reviewer"])
def test_readers_see_a_read_only_editor(
    app: FastAPI, session: Session, world: World, role: str
) -> None:
    rubric = rubric_service.create_rubric(
        session, world.project, actor=world.expert, name="Legal", template="legal_contract_review"
    )
    user: User = getattr(world, role)
    with client_for(app, user) as client:
        page = client.get(f"/projects/{world.pid}/rubrics/{rubric.id}")
        assert page.status_code == 200
        (form,) = find_all(page.text, "data-testid", "rubric-form")
        assert "hx-post" not in form
        assert not {"publish-button", "add-criterion", "example-attach"} & data_testids(page.text)
        listing = client.get(f"/projects/{world.pid}/rubrics")
        assert "rubric-create" not in data_testids(listing.text)
        token = csrf_for(client, f"/projects/{world.pid}/rubrics")
        refused = client.post(
            f"/projects/{world.pid}/rubrics/{rubric.id}/draft",
            data={"draft_revision": "1", "title": "x"},
            headers={"X-CSRF-Token": token},
        )
        assert refused.status_code == 403


def test_bad_input_gets_readable_answers(
    expert_client: TestClient, session: Session, world: World
) -> None:
    rubric_id = _create(expert_client, world)
    base = f"/projects/{world.pid}/rubrics/{rubric_id}"
    token = csrf_for(expert_client, base)
    headers = HTMX | {"X-CSRF-Token": token}
    no_revision = expert_client.post(f"{base}/draft", data={"title": "x"}, headers=headers)
    assert no_revision.status_code == 422 and "draft_revision" in no_revision.text
    assert expert_client.get(f"/projects/{world.pid}/rubrics/999999").status_code == 404
    assert expert_client.get(f"{base}/versions/4").status_code == 404
    assert expert_client.get(f"{base}/compare").status_code == 404  # nothing published yet
    assert expert_client.get(f"{base}/export", params={"version": "x"}).status_code == 422
    duplicate = expert_client.post(
        f"/projects/{world.pid}/rubrics",
        data={"name": "Contract review", "template": "generic_pass_fail", "csrf_token": token},
    )
    assert duplicate.status_code == 409 and "already has a rubric named" in duplicate.text
    unknown = expert_client.post(
        f"/projects/{world.pid}/rubrics",
        data={"name": "Other", "template": "nope", "csrf_token": token},
    )
    assert unknown.status_code == 422
    preview = expert_client.post(
        f"{base}/preview", data={"title": "T", "rollout_id": "424242"}, headers=headers
    )
    assert preview.status_code == 404


def test_creating_a_rubric_is_audited(
    expert_client: TestClient, session: Session, world: World
) -> None:
    rubric_id = _create(expert_client, world)
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "rubric.create")).one()
    assert event.object_id == str(rubric_id) and event.actor_id == world.expert.id
    assert event.project_id == world.pid


def test_regenerate_replaces_edited_templates_with_generated_ones(
    expert_client: TestClient, session: Session, world: World
) -> None:
    rubric_id = _create(expert_client, world)
    generated = _form(session, rubric_id)["system_template"]
    fields = _form(session, rubric_id) | {"system_template": "My own words {{ response }}"}
    assert _save(expert_client, world, rubric_id, fields).status_code == 200
    fields = _form(session, rubric_id)
    assert fields["system_template"] == "My own words {{ response }}"
    token = csrf_for(expert_client, f"/projects/{world.pid}/rubrics/{rubric_id}")
    response = expert_client.post(
        f"/projects/{world.pid}/rubrics/{rubric_id}/regenerate",
        data=fields,
        headers=HTMX | {"X-CSRF-Token": token},
    )
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].endswith(f"/rubrics/{rubric_id}#templates")
    assert _form(session, rubric_id)["system_template"] == generated
    stale = expert_client.post(
        f"/projects/{world.pid}/rubrics/{rubric_id}/regenerate",
        data=fields | {"title": "A title nobody saved"},
        headers=HTMX | {"X-CSRF-Token": token},
    )
    assert stale.status_code == 409 and "draft-conflict" in data_testids(stale.text)


def test_export_file_name_is_safe_for_any_rubric_name(
    expert_client: TestClient, session: Session, world: World
) -> None:
    rubric = rubric_service.create_rubric(
        session,
        world.project,
        actor=world.expert,
        name="Договор «review» v2",
        template="generic_pass_fail",
    )
    response = expert_client.get(f"/projects/{world.pid}/rubrics/{rubric.id}/export")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="review-v2.rubric.yaml"'
    assert "Договор «review» v2" in response.text


def test_preference_preview_shows_both_responses_of_a_pair(
    expert_client: TestClient, session: Session, world: World
) -> None:
    from app.rollouts.models import RolloutPair

    a = make_rollout(session, world.project, response="FIRST ANSWER")
    b = make_rollout(session, world.project, response="SECOND ANSWER")
    session.add(RolloutPair(project_id=world.pid, rollout_a_id=a.id or 0, rollout_b_id=b.id or 0))
    session.commit()
    rubric_id = _create(expert_client, world, template="pairwise_preference")
    base = f"/projects/{world.pid}/rubrics/{rubric_id}"
    editor = expert_client.get(base).text
    assert "preference-instruction" in data_testids(editor)
    assert not find_all(editor, "data-testid", "criterion-type")  # no scales in preference mode
    fields = _form(session, rubric_id) | {"rollout_id": str(a.id)}
    token = csrf_for(expert_client, base)
    preview = expert_client.post(
        f"{base}/preview", data=fields, headers=HTMX | {"X-CSRF-Token": token}
    )
    assert preview.status_code == 200
    assert "FIRST ANSWER" in preview.text and "SECOND ANSWER" in preview.text
    swapped = expert_client.post(
        f"{base}/preview",
        data=fields | {"rollout_id": str(b.id), "rollout_b_id": str(a.id)},
        headers=HTMX | {"X-CSRF-Token": token},
    )
    assert swapped.text.index("SECOND ANSWER") < swapped.text.index("FIRST ANSWER")
    labels = expert_client.get(f"{base}/examples/label-fields", headers=HTMX).text
    names = [e["name"] for e in find_all(labels, "name")]
    assert names == [
        "label-winner",
        "label-Authoritative_Sources",
        "label-Accessible_Language",
        "label-Directness",
    ]


def test_propose_an_edit_link_opens_the_editor_on_the_criterion_and_rollout(
    app: FastAPI, session: Session, world: World
) -> None:
    rollout = make_rollout(session, world.project)
    gold = make_rollout(session, world.project)
    session.add(GoldItem(project_id=world.pid, rollout_id=gold.id, split="test"))
    session.commit()
    client = client_for(app, world.expert)
    rubric_id = _create(client, world)
    base = f"/projects/{world.pid}/rubrics/{rubric_id}"

    page = client.get(f"{base}?criterion=Actionability&example={rollout.id}")
    assert page.status_code == 200
    banner = find_all(page.text, "data-testid", "proposal")
    banner_text = page.text.split('data-testid="proposal"')[1][:600]
    assert banner and "Actionable recommendation" in banner_text
    fieldsets = find_all(page.text, "data-criterion")
    proposed = [e for e in fieldsets if "proposed" in (e["class"] or "")]
    assert len(proposed) == 1
    preview_select = page.text.split(' id="preview-rollout"', 1)[1]
    assert preview_select.split("<option")[1].startswith(f' value="{rollout.id}"')

    # A locked gold test item is shown in the preview but never offered as an example.
    locked = client.get(f"{base}?example={gold.id}")
    example_select = locked.text.split(' id="example-rollout"', 1)[1].split("</select>")[0]
    assert f'value="{gold.id}"' not in example_select

    # Unknown criterion or rollout: the editor still opens, without pretending.
    odd = client.get(f"{base}?criterion=Nope&example=999999")
    assert odd.status_code == 200 and "proposed" not in odd.text.split('id="criteria"')[1][:5000]
