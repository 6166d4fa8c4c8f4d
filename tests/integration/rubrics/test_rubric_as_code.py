"""Rubric as code through the database: export -> import gives an identical rubric (property
test over generated rubrics), on both formats, through the service, the API and the forms."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from app.audit.models import AuditEvent
from app.core.errors import Conflict, InvalidInput
from app.rubrics import files as rubric_files
from app.rubrics import publishing as rubric_publishing
from app.rubrics import service as rubric_service
from app.rubrics.definition import Criterion, FewShotExample, Level, RubricDefinition, content_hash
from app.rubrics.models import Rubric, RubricVersion
from app.rubrics.serialization import (
    Approval,
    RubricDocument,
    RubricVersionDocument,
    dump_rubric,
    load_rubric,
)
from tests.integration.rubrics.conftest import World
from tests.support.web import csrf_for

_names = itertools.count(1)

# Printable text with line breaks: what people type into a rubric.
_text = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N", "P", "S", "Zs")) | st.just("\n"),
    max_size=40,
)
_line = st.text(alphabet=st.characters(whitelist_categories=("L", "N", "P", "Zs")), max_size=30)
_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)


@st.composite
def criteria(draw: st.DrawFn, mode: str) -> list[Criterion]:
    keys = draw(st.lists(_words, min_size=1, max_size=3, unique=True))
    result = []
    for key in keys:
        scale = mode == "rubric" and draw(st.booleans())
        levels = []
        if scale:
            start = draw(st.integers(-1, 2))
            count = draw(st.integers(2, 5))
            levels = [
                Level(value=start + i, description=draw(_text.filter(str.strip)))
                for i in range(count)
            ]
        result.append(
            Criterion(
                key="K_" + key,
                name=draw(_line.filter(str.strip)),
                description=draw(_text),
                type="scale" if scale else "boolean",
                levels=levels,
                weight=draw(st.floats(0.01, 100, allow_nan=False)),
                hard_fail=draw(st.booleans()),
            )
        )
    return result


@st.composite
def definitions(draw: st.DrawFn, mode: str) -> RubricDefinition:
    crits = draw(criteria(mode))
    aggregation = (
        draw(st.sampled_from(["weighted_mean", "all_must_pass", "minimum", "per_item_mean"]))
        if mode == "rubric"
        else "weighted_mean"
    )
    examples = []
    if draw(st.booleans()):
        first = crits[0]
        label: dict[str, bool | int | str]
        if mode == "preference":
            label = {"winner": draw(st.sampled_from(["A", "B", "tie"]))}
        elif first.type == "boolean":
            label = {first.key: draw(st.booleans())}
        else:
            label = {first.key: first.max_value}
        examples.append(
            FewShotExample(
                rollout_id=draw(st.none() | st.integers(1, 10**6)),
                input_excerpt=draw(_text),
                response=draw(_text),
                response_b=draw(_text) if mode == "preference" else "",
                label=label,
                critique=draw(_text),
            )
        )
    return RubricDefinition(
        mode=mode,  # type: ignore[arg-type]
        title=draw(_line.filter(str.strip)),
        task_description=draw(_text),
        criteria=crits,
        edge_case_rules=draw(st.lists(_line, max_size=3)),
        desired_behaviours=draw(st.lists(_line, max_size=2)),
        discouraged_behaviours=draw(st.lists(_line, max_size=2)),
        aggregation=aggregation,  # type: ignore[arg-type]
        item_field="comments" if aggregation == "per_item_mean" else None,
        preference_instruction=draw(_line.filter(str.strip)) if mode == "preference" else "",
        system_template=draw(_text),
        user_template=draw(_text),
        examples=examples,
    )


_moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)


@st.composite
def documents(draw: st.DrawFn) -> RubricDocument:
    mode = draw(st.sampled_from(["rubric", "preference"]))
    versions = []
    for number in range(1, draw(st.integers(0, 3)) + 1):
        definition = draw(definitions(mode))
        versions.append(
            RubricVersionDocument(
                number=number,
                definition=definition,
                change_note=draw(_text),
                created_by=draw(st.sampled_from(["expert@example.com", "gone@elsewhere.org"])),
                created_at=draw(_moments),
                content_hash=content_hash(definition),
                approvals=[
                    Approval(by=by, at=draw(_moments), comment=draw(_text))
                    for by in draw(
                        st.lists(
                            st.sampled_from(["expert@example.com", "lawyer@firm.example"]),
                            unique=True,
                            max_size=2,
                        )
                    )
                ],
            )
        )
    return RubricDocument(
        name=draw(_line.filter(str.strip)),
        description=draw(_text),
        mode=mode,  # type: ignore[arg-type]
        draft=draw(st.none() | definitions(mode)),
        versions=versions,
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=documents(), fmt=st.sampled_from(["yaml", "json"]))
def test_export_then_import_gives_an_identical_rubric(
    session: Session, world: World, doc: RubricDocument, fmt: str
) -> None:
    name = f"Imported {next(_names)}"
    text = dump_rubric(doc, fmt)  # type: ignore[arg-type]
    rubric = rubric_files.import_rubric(
        session,
        world.project,
        actor=world.engineer,
        text=text,
        fmt=fmt,
        name=name,  # type: ignore[arg-type]
    )
    exported = rubric_files.export_document(session, rubric)
    assert exported == doc.model_copy(update={"name": name})
    # And once more through the text: the file itself is stable.
    _, again = rubric_files.export_text(session, rubric, fmt=fmt)
    assert load_rubric(again, fmt) == exported  # type: ignore[arg-type]
    # Every stored version keeps the hash it was published with.
    stored = session.exec(
        select(RubricVersion)
        .where(RubricVersion.rubric_id == rubric.id)
        .order_by(col(RubricVersion.number))
    ).all()
    assert [v.content_hash for v in stored] == [v.content_hash for v in doc.versions]


def _published(session: Session, world: World) -> int:
    rubric = rubric_service.create_rubric(
        session, world.project, actor=world.expert, name="Legal", template="legal_contract_review"
    )
    version = rubric_publishing.publish_version(
        session, rubric, actor=world.engineer, change_note="v1"
    )
    rubric_publishing.approve_version(session, version, actor=world.expert, comment="ok")
    return rubric.id or 0


def test_a_round_trip_keeps_versions_sign_offs_and_the_draft(
    session: Session, world: World
) -> None:
    rubric = rubric_service.get_rubric(session, world.pid, _published(session, world))
    original = rubric_files.export_document(session, rubric)
    assert original.draft is not None and len(original.versions) == 1
    assert original.versions[0].approvals[0].by == world.expert.email
    _, text = rubric_files.export_text(session, rubric, fmt="yaml")
    copy = rubric_files.import_rubric(
        session, world.project, actor=world.admin, text=text, fmt="yaml", name="Copy"
    )
    assert rubric_files.export_document(session, copy) == original.model_copy(
        update={"name": "Copy"}
    )
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "rubric.import")).one()
    assert event.details["versions"] == [1]


def test_one_version_export_has_only_that_version(session: Session, world: World) -> None:
    rubric = rubric_service.get_rubric(session, world.pid, _published(session, world))
    doc = rubric_files.export_document(session, rubric, version=1)
    assert [v.number for v in doc.versions] == [1] and doc.draft is None
    with pytest.raises(Exception, match="no version 7"):
        rubric_files.export_document(session, rubric, version=7)


def test_an_edited_version_in_a_file_is_refused(session: Session, world: World) -> None:
    rubric = rubric_service.get_rubric(session, world.pid, _published(session, world))
    _, text = rubric_files.export_text(session, rubric, fmt="yaml")
    data = yaml.safe_load(text)
    data["versions"][0]["definition"]["title"] = "Quietly changed"
    with pytest.raises(InvalidInput) as caught:
        rubric_files.import_rubric(
            session, world.project, actor=world.admin, text=yaml.safe_dump(data), fmt="yaml"
        )
    assert isinstance(caught.value.details, list)
    assert "must not be edited by hand" in caught.value.details[0]["message"]


def test_importing_under_a_taken_name_conflicts(session: Session, world: World) -> None:
    rubric = rubric_service.get_rubric(session, world.pid, _published(session, world))
    _, text = rubric_files.export_text(session, rubric, fmt="json")
    with pytest.raises(Conflict, match="already has a rubric named"):
        rubric_files.import_rubric(session, world.project, actor=world.admin, text=text, fmt="json")


def test_api_export_and_import_round_trip(app: object, session: Session, world: World) -> None:
    from app.auth import service as auth_service

    rubric_id = _published(session, world)
    token = auth_service.create_api_token(session, world.engineer, "ci").token
    api = TestClient(app, headers={"Authorization": f"Bearer {token}"})  # type: ignore[arg-type]
    base = f"/api/v1/projects/{world.pid}/rubrics"
    exported = api.get(f"{base}/{rubric_id}/export", params={"format": "json"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/json")
    assert "attachment" in exported.headers["content-disposition"]
    imported = api.post(
        f"{base}/import", json={"content": exported.text, "format": "json", "name": "From API"}
    )
    assert imported.status_code == 201, imported.text
    again = api.get(f"{base}/{imported.json()['id']}/export", params={"format": "json"})
    original = load_rubric(exported.text, "json")
    assert load_rubric(again.text, "json") == original.model_copy(update={"name": "From API"})
    bad = api.post(
        f"{base}/import", json={"content": "format_version: 1\nname: [", "format": "yaml"}
    )
    assert bad.status_code == 422
    assert bad.json()["problems"][0]["field"].startswith("(document)")


def test_form_upload_imports_a_rubric_file(
    expert_client: TestClient, session: Session, world: World
) -> None:
    rubric = rubric_service.get_rubric(session, world.pid, _published(session, world))
    _, text = rubric_files.export_text(session, rubric, fmt="yaml")
    page = f"/projects/{world.pid}/rubrics"
    token = csrf_for(expert_client, page)
    response = expert_client.post(
        f"{page}/import",
        data={"csrf_token": token, "name": "Uploaded"},
        files={"file": ("legal.rubric.yaml", text.encode(), "application/yaml")},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    copy = session.exec(
        select(RubricVersion)
        .join(Rubric, col(Rubric.id) == col(RubricVersion.rubric_id))
        .where(Rubric.name == "Uploaded")
    ).all()
    assert [v.number for v in copy] == [1]
    garbage = expert_client.post(
        f"{page}/import",
        data={"csrf_token": token},
        files={"file": ("x.yaml", b"\xff\xfe not text", "application/yaml")},
    )
    assert garbage.status_code == 422 and "UTF-8" in garbage.text
    download = expert_client.get(f"{page}/{rubric.id}/export", params={"version": "1"})
    assert download.status_code == 200
    assert load_rubric(download.text, "yaml").versions[0].number == 1
    assert (
        expert_client.get(f"{page}/{rubric.id}/export", params={"format": "xml"}).status_code == 422
    )
