"""Disagreement review over the legal demo data: the page lists exactly the (label, criterion)
pairs where judge and expert differ (computed here independently from the judge's answers),
resolving updates the counts, a wrong label is corrected with its history kept, and items an
expert still has to label blind stay hidden."""

from __future__ import annotations

import json
import random

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.labels import queues, review
from app.labels.models import DisagreementResolution, Label, LabelRevision
from app.labels.queues import QueueSelection
from tests.support.factories import (
    add_label,
    comments_answer,
    make_legal_rollouts,
    make_project,
    make_run,
    make_user,
    make_version,
)
from tests.support.web import csrf_for, find_all, login

KEYS = ("TargetDocument_Grounding", "Reference_Consistency", "Actionability")
TOLERANCE = 0.5
AGGREGATE_TOLERANCE = 0.125


def _judge_scores(rollout) -> list[dict[str, int]] | None:
    """What our stand-in judge says per comment, from the defects the demo injected."""
    try:
        comments = json.loads(rollout.response)
    except ValueError:
        return None  # truncated JSON or prose: the call "failed"
    defects = rollout.metadata_["defects"] or [[] for _ in comments]
    scores = []
    for codes in defects:
        grounding = (
            1 if "quotes_playbook" in codes else 2 if "excerpt_not_in_contract" in codes else 5
        )
        consistency = 2 if {"wrong_rule", "flags_acceptable_term"} & set(codes) else 4
        action = 2 if "vague_action" in codes else 4
        scores.append(dict(zip(KEYS, (grounding, consistency, action), strict=True)))
    return scores


@pytest.fixture(autouse=True)
def one_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read a run's whole list on one page (paging: test_review_pages_follow_the_keyset
    below and tests/integration/agreement/test_query_bounds.py)."""
    monkeypatch.setattr(review, "PAGE_ROLLOUTS", 200)


@pytest.fixture
def review_world(session: Session):
    owner = make_user(session, "owner@example.com")
    alice = make_user(session, "alice@example.com")
    bob = make_user(session, "bob@example.com")
    project = make_project(
        session, owner, "Contracts", members=[(alice, "expert"), (bob, "expert")]
    )
    version = make_version(session, project, "legal_contract_review")
    rollouts = make_legal_rollouts(session, project, limit=24)
    judged = {r.id: _judge_scores(r) for r in rollouts}
    run = make_run(
        session,
        project,
        version,
        {rid: comments_answer(s) if s is not None else None for rid, s in judged.items()},
    )
    rng = random.Random(6)
    labels: dict[tuple[int, str], dict[str, int]] = {}
    for rollout in rollouts[:20]:
        for expert in (alice, bob):
            values = {key: rng.randint(1, 5) for key in KEYS}
            add_label(session, project, version, rollout, expert, values, critiques={KEYS[0]: "x"})
            labels[(rollout.id, f"user:{expert.id}")] = values
    return {
        "project": project,
        "version": version,
        "rollouts": rollouts,
        "run": run,
        "judged": judged,
        "labels": labels,
        "alice": alice,
        "bob": bob,
        "owner": owner,
    }


def _expected(world) -> set[tuple[int, str, str]]:
    """Independent computation of the documented rule."""
    expected = set()
    for (rollout_id, annotator), values in world["labels"].items():
        scores = world["judged"][rollout_id]
        if scores is None:
            continue  # no usable verdict: nothing to disagree with
        for key in KEYS:
            if scores:
                mean = sum(s[key] for s in scores) / len(scores)
                if abs(mean - values[key]) > TOLERANCE:
                    expected.add((rollout_id, annotator, key))
        human = sum((values[k] - 1) / 4 for k in KEYS) / len(KEYS)
        judge = (
            sum(sum((s[k] - 1) / 4 for k in KEYS) / len(KEYS) for s in scores) / len(scores)
            if scores
            else 0.0
        )
        if abs(human - judge) > AGGREGATE_TOLERANCE:
            expected.add((rollout_id, annotator, "_aggregate"))
    return expected


def _listed(html: str) -> set[tuple[int, str, str]]:
    return {
        (int(e["data-rollout-id"]), str(e["data-annotator"]), str(e["data-criterion"]))
        for e in find_all(html, "data-testid", "disagreement")
    }


def _count(html: str, name: str) -> int:
    assert len(find_all(html, "data-testid", f"count-{name}")) == 1
    return int(html.split(f'data-testid="count-{name}">')[1].split("<")[0])


def test_page_lists_exactly_the_differing_items_and_resolving_updates_counts(
    client: TestClient, session: Session, review_world
) -> None:
    world = review_world
    expected = _expected(world)
    assert len(expected) > 10  # the demo data and random labels give plenty
    login(client, "alice@example.com")
    url = f"/projects/{world['project'].id}/disagreements/{world['run'].id}"
    page = client.get(url)
    assert page.status_code == 200
    assert _listed(page.text) == expected
    assert _count(page.text, "total") == len(expected)
    assert _count(page.text, "open") == len(expected)

    # Alice says the judge is wrong on one of hers...
    mine = sorted(e for e in expected if e[1] == f"user:{world['alice'].id}" and e[2] in KEYS)
    first, second = mine[0], mine[1]
    label_one = _label(session, first)
    token = csrf_for(client, url)
    headers = {"HX-Request": "true", "X-CSRF-Token": token}
    response = client.post(
        f"{url}/resolve",
        data={
            "label_id": label_one.id,
            "criterion": first[2],
            "resolution": "judge_wrong",
            "note": "the clause is quoted verbatim",
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert 'id="disagreements"' in response.text  # the htmx fragment, not the page
    assert _count(response.text, "open") == len(expected) - 1
    assert _count(response.text, "judge_wrong") == 1

    # ...and that her own label was wrong on another: the label is corrected, history kept.
    label_two = _label(session, second)
    scores = world["judged"][second[0]]
    judge_level = round(sum(s[second[2]] for s in scores) / len(scores))
    response = client.post(
        f"{url}/resolve",
        data={
            "label_id": label_two.id,
            "criterion": second[2],
            "resolution": "label_wrong",
            "corrected_value": str(judge_level),
            "revision": str(label_two.revision),
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert _count(response.text, "label_wrong") == 1
    # The corrected label may now agree on the overall score too: recompute independently.
    before = world["labels"][second[:2]][second[2]]
    world["labels"][second[:2]] = {**world["labels"][second[:2]], second[2]: judge_level}
    rows = _expected(world) | {first, second}
    assert _listed(response.text) == rows
    assert _count(response.text, "total") == len(rows)
    assert _count(response.text, "open") == len(rows) - 2
    session.refresh(label_two)
    assert label_two.values[second[2]] == judge_level and label_two.revision == 2
    history = session.exec(select(LabelRevision).where(LabelRevision.label_id == label_two.id))
    (revision,) = history.all()
    assert revision.snapshot["values"][second[2]] == before
    # The corrected pair is still listed, resolved, and marked as agreeing now.
    rows = find_all(response.text, "data-testid", "disagreement")
    assert any(
        r["data-label-id"] == str(label_two.id) and r["data-criterion"] == second[2] for r in rows
    )
    resolutions = session.exec(select(DisagreementResolution)).all()
    assert sorted(r.resolution for r in resolutions) == ["judge_wrong", "label_wrong"]

    # Resolving again replaces the earlier resolution rather than adding one.
    client.post(
        f"{url}/resolve",
        data={"label_id": label_one.id, "criterion": first[2], "resolution": "ambiguous"},
        headers=headers,
    )
    page = client.get(url).text
    assert _count(page, "judge_wrong") == 0 and _count(page, "ambiguous") == 1
    assert len(session.exec(select(DisagreementResolution)).all()) == 2


def _label(session: Session, key: tuple[int, str, str]) -> Label:
    rollout_id, annotator, _ = key
    return session.exec(
        select(Label).where(Label.rollout_id == rollout_id, Label.annotator_key == annotator)
    ).one()


def test_only_the_author_or_an_admin_corrects_a_label(
    client: TestClient, session: Session, review_world
) -> None:
    world = review_world
    theirs = sorted(
        e for e in _expected(world) if e[1] == f"user:{world['bob'].id}" and e[2] in KEYS
    )
    label = _label(session, theirs[0])
    login(client, "alice@example.com")
    url = f"/projects/{world['project'].id}/disagreements/{world['run'].id}"
    token = csrf_for(client, url)
    response = client.post(
        f"{url}/resolve",
        data={
            "label_id": label.id,
            "criterion": theirs[0][2],
            "resolution": "label_wrong",
            "corrected_value": "3",
        },
        headers={"X-CSRF-Token": token, "Accept": "application/json"},
    )
    assert response.status_code == 403
    session.refresh(label)
    assert label.revision == 1


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"criterion": "Nope", "resolution": "judge_wrong"}, 422),
        ({"criterion": "Actionability", "resolution": "whatever"}, 422),
        ({"criterion": "Actionability", "resolution": "label_wrong", "corrected_value": "9"}, 422),
        ({"criterion": "_aggregate", "resolution": "label_wrong", "corrected_value": "3"}, 422),
        ({"criterion": "Actionability", "resolution": "judge_wrong", "label_id": "999999"}, 404),
    ],
)
def test_bad_resolutions_are_refused_readably(
    client: TestClient, session: Session, review_world, data, status
) -> None:
    world = review_world
    mine = sorted(e for e in _expected(world) if e[1] == f"user:{world['alice'].id}")
    label = _label(session, mine[0])
    login(client, "alice@example.com")
    url = f"/projects/{world['project'].id}/disagreements/{world['run'].id}"
    token = csrf_for(client, url)
    response = client.post(
        f"{url}/resolve",
        data={"label_id": label.id, **data},
        headers={"X-CSRF-Token": token, "Accept": "application/json"},
    )
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_detail_page_shows_the_document_and_the_judge_evidence(
    client: TestClient, session: Session, review_world
) -> None:
    world = review_world
    rollout_id = sorted(_expected(world))[0][0]
    login(client, "alice@example.com")
    url = f"/projects/{world['project'].id}/disagreements/{world['run'].id}/rollouts/{rollout_id}"
    page = client.get(url)
    assert page.status_code == 200
    assert {int(r[0]) for r in _listed(page.text)} == {rollout_id}
    assert len(find_all(page.text, "data-testid", "document")) == 1
    assert "why TargetDocument_Grounding of comment 0" in page.text  # the judge's justification
    assert "Propose an edit" in page.text
    link = find_all(page.text, "data-testid", "propose-edit")[0]["href"]
    assert link.startswith(f"/projects/{world['project'].id}/rubrics/")
    assert f"example={rollout_id}" in link


def test_items_still_to_label_blind_are_hidden(
    client: TestClient, session: Session, review_world
) -> None:
    world = review_world
    carol = make_user(session, "carol@example.com")
    from app.projects import service as project_service

    project_service.add_member(
        session, world["project"], email=carol.email, role="expert", actor=world["owner"]
    )
    # Carol is asked to label the first rollout, which Alice and Bob already did.
    queues.create_queue(
        session,
        world["project"],
        actor=world["owner"],
        name="Carol's",
        rubric_version_id=world["version"].id,
        assignee_ids=[carol.id],
        overlap=1,
        selection=QueueSelection(search=world["rollouts"][0].external_id),
    )
    login(client, carol.email)
    page = client.get(f"/projects/{world['project'].id}/disagreements/{world['run'].id}").text
    hidden_rollout = world["rollouts"][0].id
    listed = _listed(page)
    assert all(r != hidden_rollout for r, _, _ in listed)
    assert any(e[0] == hidden_rollout for e in _expected(world))
    assert "hidden-note" in page
    api = client.get(
        f"/api/v1/projects/{world['project'].id}/runs/{world['run'].id}/disagreements"
    ).json()
    assert all(item["rollout_id"] != hidden_rollout for item in api["items"])


def test_htmx_gets_the_fragment_and_a_browser_the_page(
    client: TestClient, session: Session, review_world
) -> None:
    world = review_world
    login(client, "alice@example.com")
    url = f"/projects/{world['project'].id}/disagreements/{world['run'].id}?tolerance=1.5"
    page = client.get(url)
    fragment = client.get(url, headers={"HX-Request": "true"})
    assert (
        page.headers["vary"] == fragment.headers["vary"] == "HX-Request, HX-History-Restore-Request"
    )
    assert "<html" in page.text and "<html" not in fragment.text
    assert _listed(page.text) == _listed(fragment.text)
    assert client.get(url.replace("1.5", "-1")).status_code == 422
    assert client.get(url.replace("1.5", "abc")).status_code == 422


def test_preference_disagreements_use_the_order_swapped_verdict(
    client: TestClient, session: Session
) -> None:
    from tests.support.factories import make_pair_run, make_pairs, make_rollouts

    owner = make_user(session, "owner@example.com")
    alice = make_user(session, "alice@example.com")
    project = make_project(session, owner, "Prefs", members=[(alice, "expert")])
    version = make_version(session, project, "pairwise_preference")
    rollouts = make_rollouts(session, project, 6)
    pairs = make_pairs(session, project, rollouts)
    # Positional answers (AB order, BA order): consistent A, consistent B, order-dependent.
    shown = {pairs[0].id: ("A", "B"), pairs[1].id: ("B", "A"), pairs[2].id: ("A", "A")}
    run = make_pair_run(session, project, version, shown, {p.id: p for p in pairs})
    judge = {pairs[0].id: "A", pairs[1].id: "B", pairs[2].id: "tie"}
    by_id = {r.id: r for r in rollouts}
    for pair, preference in zip(pairs, ("A", "A", "B"), strict=True):
        add_label(
            session,
            project,
            version,
            by_id[pair.rollout_a_id],
            alice,
            preference=preference,
            pair=pair,
        )
    login(client, alice.email)
    html = client.get(f"/projects/{project.id}/disagreements/{run.id}").text
    listed = {(r, c) for r, _, c in _listed(html)}
    expected = {
        (pair.rollout_a_id, "_winner")
        for pair, preference in zip(pairs, ("A", "A", "B"), strict=True)
        if judge[pair.id] != preference
    }
    assert (
        listed
        == expected
        == {(pairs[1].rollout_a_id, "_winner"), (pairs[2].rollout_a_id, "_winner")}
    )


def test_review_pages_follow_the_keyset(client: TestClient, review_world) -> None:
    """The review page shows PAGE_ROLLOUTS rollouts at a time; following "Next page" lists
    every disagreement once, and the counts are the whole run's on every page."""
    world = review_world
    expected = _expected(world)
    review.PAGE_ROLLOUTS = 2  # restored by the one_page fixture's monkeypatch
    login(client, "alice@example.com")
    url = f"/projects/{world['project'].id}/disagreements/{world['run'].id}"
    seen: list[tuple[int, str, str]] = []
    pages = 0
    while url:
        html = client.get(url).text
        listed = _listed(html)
        assert len({rollout for rollout, _, _ in listed}) <= 2
        assert _count(html, "total") == len(expected)
        seen += sorted(listed)
        pages += 1
        links = find_all(html, "data-testid", "next-page")
        url = str(links[0]["href"]).replace("&amp;", "&") if links else ""
    assert set(seen) == expected and len(seen) == len(expected)
    assert pages == -(-len({rollout for rollout, _, _ in expected}) // 2)
