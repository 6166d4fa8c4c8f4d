"""Labeling in a queue: what an expert is offered next, and saving drafts and submitting labels
there (assignment and audit permission checked). Public functions that change data commit once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, or_
from sqlmodel import Session, col, select

from app.auth.models import User
from app.auth.policies import Permission, role_allows
from app.core.errors import Conflict, NotFound, PermissionDenied
from app.labels import values as label_values
from app.labels.models import (
    AnnotationQueue,
    Label,
    QueueAssignee,
    QueueItem,
)
from app.labels.service import (
    LabelInput,
    LabelTarget,
    Outcome,
    annotator_key,
    audit_label,
    clean_input,
    definition_of,
    find_label,
    retrying,
    write_label,
)
from app.projects.models import Membership
from app.rubrics.definition import RubricDefinition
from app.rubrics.models import RubricVersion

# ---- what is offered to whom ------------------------------------------------------------------


def is_assignee(session: Session, queue: AnnotationQueue, user: User) -> bool:
    return (
        session.exec(
            select(QueueAssignee.id).where(
                QueueAssignee.queue_id == queue.id, QueueAssignee.user_id == user.id
            )
        ).first()
        is not None
    )


def labelled_by(queue: AnnotationQueue, user: User, status: str) -> Any:
    return exists().where(
        col(Label.subject_key) == col(QueueItem.subject_key),
        col(Label.rubric_version_id) == queue.rubric_version_id,
        col(Label.annotator_key) == annotator_key(user),
        col(Label.status) == status,
    )


def offered_to(queue: AnnotationQueue, user: User) -> Any:
    """Items still offered to this user: not submitted by them, and either short of labels or
    already started (a draft) by them."""
    return and_(
        col(QueueItem.queue_id) == queue.id,
        ~labelled_by(queue, user, "submitted"),
        or_(col(QueueItem.labels_done) < queue.overlap, labelled_by(queue, user, "draft")),
    )


def next_item(
    session: Session, queue: AnnotationQueue, user: User, *, after_position: int | None = None
) -> QueueItem | None:
    """The next item offered to the user: after ``after_position`` if any, else from the start."""
    base = select(QueueItem).where(offered_to(queue, user)).order_by(col(QueueItem.position))
    if after_position is not None:
        later = session.exec(base.where(QueueItem.position > after_position).limit(1)).first()
        if later is not None:
            return later
    return session.exec(base.limit(1)).first()


def _is_audit(queue: AnnotationQueue) -> bool:
    return queue.kind == label_values.QueueKind.audit


def _may_audit(session: Session, queue: AnnotationQueue, user: User) -> bool:
    membership = session.exec(
        select(Membership).where(
            Membership.project_id == queue.project_id, Membership.user_id == user.id
        )
    ).first()
    return membership is not None and role_allows(membership.role, Permission.drift_audit)


def _queue_target(
    session: Session, queue: AnnotationQueue, item: QueueItem, user: User
) -> tuple[LabelTarget, RubricDefinition]:
    if queue.closed:
        raise Conflict("This queue is closed: labels can no longer be changed in it.")
    if not is_assignee(session, queue, user):
        raise PermissionDenied("You are not assigned to this queue.")
    if queue.kind == label_values.QueueKind.audit and not _may_audit(session, queue, user):
        raise PermissionDenied("Audit queues are for reviewers: your role may not audit.")
    version = session.get(RubricVersion, queue.rubric_version_id)
    if version is None:  # pragma: no cover
        raise NotFound("The queue's rubric version no longer exists.")
    key = annotator_key(user)
    order = label_values.shown_order(item.pair_id, key) if item.pair_id is not None else ""
    existing = find_label(session, version.id or 0, item.subject_key, key)
    if existing is not None and existing.shown_order:
        order = existing.shown_order
    target = LabelTarget(
        project_id=queue.project_id,
        version_id=version.id or 0,
        rollout_id=item.rollout_id,
        pair_id=item.pair_id,
        subject_key=item.subject_key,
        annotator_key=key,
        annotator_name=user.label,
        annotator_id=user.id,
        queue_id=queue.id,
        shown_order=order,
    )
    return target, definition_of(version)


def save_draft(
    session: Session, queue: AnnotationQueue, item: QueueItem, user: User, data: LabelInput
) -> Label:
    """Keep what the expert has typed so far (partial values allowed). Not audited: a draft is
    work in progress; the submission is the change that counts."""
    target, definition = _queue_target(session, queue, item, user)
    clean = clean_input(
        definition, data, complete=False, order=target.shown_order, audit=_is_audit(queue)
    )

    def operation() -> Label:
        label, _ = write_label(
            session,
            target,
            clean,
            submit=False,
            expected_revision=data.expected_revision,
            actor=user,
            source="ui",
        )
        return label

    return retrying(session, operation)


@dataclass
class SubmitResult:
    label: Label
    outcome: Outcome
    next_item: QueueItem | None


def submit_label(
    session: Session, queue: AnnotationQueue, item: QueueItem, user: User, data: LabelInput
) -> SubmitResult:
    """Submit the expert's label for a queue item. Submitting the same label again stores
    nothing new; a label changed elsewhere since ``expected_revision`` raises Conflict."""
    target, definition = _queue_target(session, queue, item, user)
    clean = clean_input(
        definition, data, complete=True, order=target.shown_order, audit=_is_audit(queue)
    )

    def operation() -> tuple[Label, Outcome]:
        label, outcome = write_label(
            session,
            target,
            clean,
            submit=True,
            expected_revision=data.expected_revision,
            actor=user,
            source="ui",
            reason=data.reason,
        )
        audit_label(session, user, label, outcome, action="label.submit")
        return label, outcome

    label, outcome = retrying(session, operation)
    return SubmitResult(
        label, outcome, next_item(session, queue, user, after_position=item.position)
    )
