"""Queues, drafts and submissions through the service: selection, overlap, blind next item,
revisions, idempotent submission, conflict detection and history."""

from __future__ import annotations

import pytest
from sqlmodel import Session, func, select

from app.audit.models import AuditEvent
from app.core.errors import Conflict, InvalidInput, PermissionDenied
from app.labels import annotation, item_view, queues, service
from app.labels.models import Label, LabelRevision, QueueItem
from app.labels.queues import QueueSelection
from app.labels.service import LabelInput
from tests.support.factories import make_project, make_rollouts, make_run, make_user, make_version

PASSING = {
    "Follows_Instructions": "pass",
    "Factually_Accurate": "fail",
    "Complete": "pass",
    "Clear": "pass",
    "Safe": "pass",
}


@pytest.fixture
def world(session: Session):
    owner = make_user(session, "owner@example.com")
    alice = make_user(session, "alice@example.com")
    bob = make_user(session, "bob@example.com")
    carol = make_user(session, "carol@example.com")
    engineer = make_user(session, "eng@example.com")
    project = make_project(
        session,
        owner,
        "Labels",
        members=[(alice, "expert"), (bob, "expert"), (carol, "reviewer"), (engineer, "engineer")],
    )
    version = make_version(session, project, "generic_pass_fail")
    rollouts = make_rollouts(session, project, 6)
    return {
        "owner": owner,
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "engineer": engineer,
        "project": project,
        "version": version,
        "rollouts": rollouts,
    }


def _queue(session: Session, w, overlap: int = 1, **selection):
    return queues.create_queue(
        session,
        w["project"],
        actor=w["engineer"],
        name="  Week 1   sample ",
        rubric_version_id=w["version"].id,
        assignee_ids=[w["alice"].id, w["bob"].id],
        overlap=overlap,
        selection=QueueSelection(**selection),
    )


def test_create_queue_from_a_filter_and_a_sample(session: Session, world) -> None:
    queue = _queue(session, world, step_min=10, step_max=40)
    assert queue.name == "Week 1 sample"
    items = session.exec(select(QueueItem).where(QueueItem.queue_id == queue.id)).all()
    assert [i.rollout_id for i in items] == [r.id for r in world["rollouts"][1:5]]
    assert [i.position for i in items] == [0, 1, 2, 3]

    sampled = _queue(session, world, sample_size=3, seed=7)
    again = _queue(session, world, sample_size=3, seed=7)
    ids = lambda q: [  # noqa: E731
        i.rollout_id for i in session.exec(select(QueueItem).where(QueueItem.queue_id == q.id))
    ]
    assert len(ids(sampled)) == 3 and ids(sampled) == ids(again)
    assert sampled.selection["seed"] == 7


def test_create_queue_from_a_judge_run(session: Session, world) -> None:
    chosen = world["rollouts"][2:4]
    run = make_run(session, world["project"], world["version"], {r.id: None for r in chosen})
    queue = _queue(session, world, source="run", run_id=run.id)
    items = session.exec(select(QueueItem).where(QueueItem.queue_id == queue.id)).all()
    assert sorted(i.rollout_id for i in items) == sorted(r.id for r in chosen)


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"overlap": 3}, "overlap", "1 to 2 experts"),
        ({"overlap": 0}, "overlap", "1 to 2 experts"),
        ({"assignee_ids": []}, "assignee", "at least one expert"),
        ({"selection": QueueSelection(model="nobody")}, "source", "No rollouts match"),
        ({"name": "   "}, "name", "name"),
    ],
)
def test_create_queue_refuses_bad_settings(session: Session, world, kwargs, field, message) -> None:
    """Each refusal names the form field it is about, so the form shows it beside that field."""
    arguments = {
        "actor": world["engineer"],
        "name": "Q",
        "rubric_version_id": world["version"].id,
        "assignee_ids": [world["alice"].id, world["bob"].id],
        "overlap": 1,
        "selection": QueueSelection(),
        **kwargs,
    }
    with pytest.raises(InvalidInput) as refused:
        queues.create_queue(session, world["project"], **arguments)
    [problem] = refused.value.details  # type: ignore[misc]
    assert problem["field"] == field and message in problem["message"]


def test_engineer_cannot_be_assigned_to_label(session: Session, world) -> None:
    with pytest.raises(InvalidInput, match="may not label"):
        queues.create_queue(
            session,
            world["project"],
            actor=world["engineer"],
            name="Q",
            rubric_version_id=world["version"].id,
            assignee_ids=[world["engineer"].id],
            overlap=1,
            selection=QueueSelection(),
        )


def test_draft_then_submit_is_one_label_and_counts_once(session: Session, world) -> None:
    queue = _queue(session, world)
    alice = world["alice"]
    item = annotation.next_item(session, queue, alice)
    draft = annotation.save_draft(
        session,
        queue,
        item,
        alice,
        LabelInput(values={"Complete": "pass"}, critiques={"Complete": "covers it"}),
    )
    assert draft.status == "draft" and draft.revision == 1
    again = annotation.save_draft(
        session,
        queue,
        item,
        alice,
        LabelInput(values={"Complete": "fail"}, expected_revision=1),
    )
    assert again.id == draft.id and again.revision == 2 and again.values == {"Complete": False}

    result = annotation.submit_label(
        session, queue, item, alice, LabelInput(values=PASSING, expected_revision=2)
    )
    assert result.outcome == "submitted" and result.label.revision == 3
    assert result.label.values["Factually_Accurate"] is False
    # A second click on "submit" (stale revision, same content) stores nothing new.
    twice = annotation.submit_label(
        session, queue, item, alice, LabelInput(values=PASSING, expected_revision=2)
    )
    assert twice.outcome == "unchanged" and twice.label.revision == 3
    labels = session.exec(select(Label)).all()
    assert len(labels) == 1
    session.refresh(item)
    assert item.labels_done == 1
    assert result.next_item is not None and result.next_item.id != item.id
    submits = session.exec(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "label.submit")
    ).one()
    assert submits == 1


def test_submit_needs_every_criterion(session: Session, world) -> None:
    queue = _queue(session, world)
    item = annotation.next_item(session, queue, world["alice"])
    with pytest.raises(InvalidInput) as exc:
        annotation.submit_label(
            session, queue, item, world["alice"], LabelInput(values={"Complete": "pass"})
        )
    fields = {p["field"] for p in exc.value.details}
    assert fields == {"Follows_Instructions", "Factually_Accurate", "Clear", "Safe"}
    with pytest.raises(InvalidInput) as bad:
        annotation.save_draft(
            session, queue, item, world["alice"], LabelInput(values={"Complete": "maybe"})
        )
    # Each problem is said once: in the details, not again in the lead sentence.
    assert [p["field"] for p in bad.value.details] == ["Complete"]  # type: ignore[union-attr]
    assert "pass or fail" in bad.value.details[0]["message"]  # type: ignore[index]
    assert "pass or fail" not in bad.value.message
    assert session.exec(select(Label)).all() == []


def test_a_label_changed_elsewhere_is_detected(session: Session, world) -> None:
    queue = _queue(session, world)
    alice = world["alice"]
    item = annotation.next_item(session, queue, alice)
    annotation.save_draft(session, queue, item, alice, LabelInput(values={"Complete": "pass"}))
    # Another tab saves a newer draft: revision 2.
    annotation.save_draft(
        session, queue, item, alice, LabelInput(values={"Safe": "fail"}, expected_revision=1)
    )
    with pytest.raises(Conflict, match="changed elsewhere"):
        annotation.submit_label(
            session, queue, item, alice, LabelInput(values=PASSING, expected_revision=1)
        )
    label = session.exec(select(Label)).one()
    assert label.status == "draft" and label.values == {"Safe": False}


def test_editing_a_submitted_label_keeps_history(session: Session, world) -> None:
    queue = _queue(session, world)
    alice = world["alice"]
    item = annotation.next_item(session, queue, alice)
    first = annotation.submit_label(session, queue, item, alice, LabelInput(values=PASSING)).label
    first_id, first_revision = first.id, first.revision
    changed = {**PASSING, "Clear": "fail"}
    second = annotation.submit_label(
        session,
        queue,
        item,
        alice,
        LabelInput(values=changed, expected_revision=first_revision, reason="re-read it"),
    ).label
    assert second.id == first_id and second.revision == first_revision + 1
    history = session.exec(select(LabelRevision)).all()
    assert len(history) == 1
    assert history[0].snapshot["values"]["Clear"] is True and history[0].reason == "re-read it"
    session.refresh(item)
    assert item.labels_done == 1  # an edit is not a second label
    with pytest.raises(Conflict):
        annotation.save_draft(session, queue, item, alice, LabelInput(values={"Clear": "pass"}))


def test_only_assignees_label_and_closed_queues_are_read_only(session: Session, world) -> None:
    queue = _queue(session, world)
    item = annotation.next_item(session, queue, world["alice"])
    with pytest.raises(PermissionDenied):
        annotation.save_draft(session, queue, item, world["carol"], LabelInput())
    queues.set_queue_closed(session, queue, actor=world["engineer"], closed=True)
    with pytest.raises(Conflict, match="closed"):
        annotation.submit_label(session, queue, item, world["alice"], LabelInput(values=PASSING))


def test_overlap_offers_each_item_to_k_experts(session: Session, world) -> None:
    queue = _queue(session, world, overlap=1, step_max=10)  # two items
    alice, bob = world["alice"], world["bob"]
    first = annotation.next_item(session, queue, alice)
    annotation.submit_label(session, queue, first, alice, LabelInput(values=PASSING))
    # With overlap 1 the labelled item is no longer offered to Bob.
    offered = annotation.next_item(session, queue, bob)
    assert offered is not None and offered.id != first.id
    annotation.submit_label(session, queue, offered, bob, LabelInput(values=PASSING))
    assert annotation.next_item(session, queue, bob) is None
    assert annotation.next_item(session, queue, alice) is None
    progress = queues.queue_progress(session, queue, alice)
    assert (progress.items, progress.complete, progress.mine_submitted) == (2, 2, 1)

    # A new queue over rollout 0 with two experts per item: Alice's label already counts.
    both = _queue(session, world, overlap=2, step_max=0)
    (item,) = session.exec(select(QueueItem).where(QueueItem.queue_id == both.id)).all()
    labelled_by_alice = item.rollout_id == first.rollout_id
    assert item.labels_done == (1 if labelled_by_alice else 0)
    assert (annotation.next_item(session, both, alice) is None) == labelled_by_alice
    offered_to_bob = annotation.next_item(session, both, bob)
    assert offered_to_bob is not None and offered_to_bob.id == item.id


def test_labels_stay_blind_until_submitted(session: Session, world) -> None:
    queue = _queue(session, world, overlap=2, step_max=0)
    alice, bob = world["alice"], world["bob"]
    rollout = world["rollouts"][0]
    make_run(
        session,
        world["project"],
        world["version"],
        {
            rollout.id: {
                "criteria": {
                    k: {"evidence": "e", "justification": "because", "score": True} for k in PASSING
                },
                "aggregate_score": 1,
            }
        },
    )
    item = annotation.next_item(session, queue, alice)
    annotation.submit_label(session, queue, item, alice, LabelInput(values=PASSING))
    before = item_view.item_view(session, queue, item, bob)
    assert before.reveal is None
    assert service.blind_subjects(session, world["project"].id, bob) == {item.subject_key}
    annotation.submit_label(session, queue, item, bob, LabelInput(values=PASSING))
    after = item_view.item_view(session, queue, item, bob)
    assert after.reveal is not None
    assert [label.annotator_key for label in after.reveal.other_labels] == [f"user:{alice.id}"]
    assert len(after.reveal.verdicts) == 1
    assert after.reveal.verdicts[0].reading.criteria["Safe"].value is True
    assert service.blind_subjects(session, world["project"].id, bob) == set()
