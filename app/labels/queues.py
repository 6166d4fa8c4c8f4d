"""Annotation queues: choosing rollouts (filter, sample, a judge run's items, gold items) for
assigned experts with an overlap, their items and progress. The annotation view of one item is in
`app.labels.item_view`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.auth.policies import Permission, role_allows
from app.core.errors import InvalidInput, NotFound
from app.core.problems import problem
from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from app.labels import highlight
from app.labels.annotation import labelled_by, offered_to
from app.labels.models import AnnotationQueue, GoldItem, Label, QueueAssignee, QueueItem
from app.labels.service import (
    annotator_key,
    definition_of,
    pair_subject,
    rollout_subject,
    version_label,
)
from app.labels.values import LabelStatus
from app.projects.models import Membership, Project
from app.rollouts.models import Rollout, RolloutPair
from app.rubrics import service as rubric_service
from app.rubrics.definition import RubricMode
from app.rubrics.models import Rubric, RubricVersion

MAX_QUEUE_ITEMS = 50_000
# ---- queues -----------------------------------------------------------------------------------


@dataclass
class QueueSelection:
    """Which rollouts (or pairs) a queue holds; stored on the queue as it was applied."""

    source: Literal["filter", "run", "gold", "drift_audit"] = "filter"
    run_id: int | None = None
    gold_split: str | None = None
    model: str | None = None
    group: str | None = None
    search: str | None = None
    step_min: int | None = None
    step_max: int | None = None
    sample_size: int | None = None
    seed: int | None = None
    training_run_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}


def _member_users(
    session: Session,
    project_id: int,
    user_ids: Iterable[int],
    permission: Permission = Permission.label_write,
) -> list[User]:
    wanted = sorted(set(user_ids))
    if not wanted:
        return []
    rows = session.exec(
        select(User, Membership)
        .join(Membership, col(Membership.user_id) == col(User.id))
        .where(Membership.project_id == project_id, col(User.id).in_(wanted))
    ).all()
    found = {user.id: (user, m.role) for user, m in rows}
    missing = [uid for uid in wanted if uid not in found]
    if missing:
        raise InvalidInput(f"Users {missing} are not members of this project.")
    refused = [u.label for u, role in found.values() if not role_allows(role, permission)]
    if refused:
        what = "audit" if permission == Permission.drift_audit else "write labels"
        raise InvalidInput(
            f"{', '.join(refused)} may not label in this queue (their role cannot {what})."
        )
    return [found[uid][0] for uid in wanted]


def labelers(session: Session, project_id: int) -> list[User]:
    """Project members whose role may label, for the assignee picker."""
    rows = session.exec(
        select(User, Membership)
        .join(Membership, col(Membership.user_id) == col(User.id))
        .where(Membership.project_id == project_id)
        .order_by(col(User.email))
    ).all()
    return [u for u, m in rows if role_allows(m.role, Permission.label_write)]


def _rollout_filter(query: Any, selection: QueueSelection, rollout: Any = Rollout) -> Any:
    if selection.model:
        query = query.where(rollout.model == selection.model.strip())
    if selection.group:
        query = query.where(rollout.group_key == selection.group.strip())
    if selection.search:
        query = query.where(col(rollout.external_id).contains(selection.search.strip()))
    if selection.step_min is not None:
        query = query.where(rollout.step >= selection.step_min)
    if selection.step_max is not None:
        query = query.where(rollout.step <= selection.step_max)
    return query


def _selected_subjects(
    session: Session, project_id: int, mode: str, selection: QueueSelection
) -> list[tuple[int, int | None]]:
    """(rollout id, pair id or None) for every selected subject, in id order."""
    pairwise = mode == RubricMode.preference
    if selection.source == "run":
        if selection.run_id is None:
            raise InvalidInput("Choose the judge run whose items the queue should hold.")
        run = session.get(JudgeRun, selection.run_id)
        if run is None or run.project_id != project_id:
            raise NotFound(f"No judge run with id {selection.run_id} in this project.")
        source_ids = select(JudgeWorkItem.rollout_id, JudgeWorkItem.pair_id).where(
            JudgeWorkItem.run_id == run.id
        )
        rows = {(int(r), p) for r, p in session.exec(source_ids).all()}
        if not rows:
            verdict_ids = select(Verdict.rollout_id, Verdict.pair_id).where(
                Verdict.run_id == run.id
            )
            rows = {(int(r), p) for r, p in session.exec(verdict_ids).all()}
        subjects = sorted((r, p) for r, p in rows if (p is not None) == pairwise)
    elif pairwise:
        query = select(RolloutPair.rollout_a_id, RolloutPair.id).join(
            Rollout, col(Rollout.id) == col(RolloutPair.rollout_a_id)
        )
        query = _rollout_filter(query.where(RolloutPair.project_id == project_id), selection)
        if selection.source == "gold":
            query = query.where(col(RolloutPair.rollout_a_id).in_(_gold_ids(project_id, selection)))
        subjects = sorted((int(a), int(p)) for a, p in session.exec(query).all())
    else:
        query = _rollout_filter(
            select(Rollout.id).where(Rollout.project_id == project_id), selection
        )
        if selection.source == "gold":
            query = query.where(col(Rollout.id).in_(_gold_ids(project_id, selection)))
        subjects = sorted((int(r), None) for r in session.exec(query).all())
    if selection.sample_size is not None:
        if selection.sample_size < 1:
            raise InvalidInput("The sample size must be at least 1.")
        if selection.seed is None:
            selection.seed = random.SystemRandom().randrange(1, 2**31)
        if selection.sample_size < len(subjects):
            subjects = sorted(random.Random(selection.seed).sample(subjects, selection.sample_size))
    return subjects


def _gold_ids(project_id: int, selection: QueueSelection) -> Any:
    query = select(GoldItem.rollout_id).where(GoldItem.project_id == project_id)
    if selection.gold_split:
        query = query.where(GoldItem.split == selection.gold_split)
    return query


def _submitted_counts(
    session: Session, version_id: int, subject_keys: Sequence[str]
) -> Counter[str]:
    counts: Counter[str] = Counter()
    for chunk_start in range(0, len(subject_keys), 500):
        chunk = list(subject_keys[chunk_start : chunk_start + 500])
        rows = session.exec(
            select(Label.subject_key, func.count())
            .where(
                Label.rubric_version_id == version_id,
                Label.status == LabelStatus.submitted,
                col(Label.subject_key).in_(chunk),
            )
            .group_by(col(Label.subject_key))
        ).all()
        counts.update({key: int(n) for key, n in rows})
    return counts


QUEUE_LABELS = {
    "name": "Name",
    "assignee": "Experts",
    "overlap": "Experts per item",
    "source": "Items",
    "sample_size": "Random sample of",
}


def _refused(field: str, message: str) -> InvalidInput:
    """A queue that cannot be created, with the form field the problem is about."""
    details = [problem(field, message, QUEUE_LABELS)]
    return InvalidInput("The queue was not created; please correct:", details=details)


def create_queue(
    session: Session,
    project: Project,
    *,
    actor: User,
    name: str,
    rubric_version_id: int,
    assignee_ids: Sequence[int],
    overlap: int,
    selection: QueueSelection,
    kind: str = "labeling",
) -> AnnotationQueue:
    """A queue of the selected rollouts (or pairs, for a preference rubric) for the assignees.

    Each item needs ``overlap`` different experts; labeling is blind until one has submitted.
    """
    queue = build_queue(
        session,
        project,
        actor=actor,
        name=name,
        rubric_version_id=rubric_version_id,
        assignee_ids=assignee_ids,
        overlap=overlap,
        selection=selection,
        kind=kind,
    )
    session.commit()
    return queue


def build_queue(
    session: Session,
    project: Project,
    *,
    actor: User,
    name: str,
    rubric_version_id: int,
    assignee_ids: Sequence[int],
    overlap: int,
    selection: QueueSelection,
    kind: str = "labeling",
    subjects: list[tuple[int, int | None]] | None = None,
) -> AnnotationQueue:
    """create_queue without the commit, for services that create a queue with other rows
    (a drift audit). `subjects` given: exactly these (rollout id, pair id) items, in order."""
    name = " ".join(name.split())
    if not name:
        raise _refused("name", "Give the queue a name.")
    version = rubric_service.get_project_version(session, project.id or 0, rubric_version_id)
    definition = definition_of(version)
    needed = Permission.drift_audit if kind == "audit" else Permission.label_write
    assignees = _member_users(session, project.id or 0, assignee_ids, needed)
    if not assignees:
        raise _refused(
            "assignee",
            "Tick at least one "
            + ("reviewer" if kind == "audit" else "expert")
            + " who will label the items.",
        )
    if not 1 <= overlap <= len(assignees):
        raise _refused(
            "overlap",
            f"Each item can be labeled by 1 to {len(assignees)} experts (the number ticked); "
            f"{overlap} was asked for.",
        )
    if kind not in ("labeling", "audit"):
        raise InvalidInput("The queue kind must be labeling or audit.")
    if subjects is None:
        subjects = _selected_subjects(session, project.id or 0, definition.mode, selection)
    if not subjects:
        raise _refused(
            "source",
            "No rollouts match this selection, so the queue would be empty. Widen the filter "
            "(model, group, steps) or choose another source.",
        )
    if len(subjects) > MAX_QUEUE_ITEMS:
        raise _refused(
            "sample_size",
            f"The selection holds {len(subjects):,} items; a queue holds at most "
            f"{MAX_QUEUE_ITEMS:,}. Take a random sample.",
        )
    queue = AnnotationQueue(
        project_id=project.id or 0,
        name=name[:200],
        kind=kind,
        rubric_version_id=version.id or 0,
        overlap=overlap,
        selection=selection.as_dict(),
        created_by_id=actor.id,
    )
    session.add(queue)
    session.flush()
    keys = [pair_subject(p) if p is not None else rollout_subject(r) for r, p in subjects]
    done = _submitted_counts(session, version.id or 0, keys)
    for position, ((rollout_id, pair_id), key) in enumerate(zip(subjects, keys, strict=True)):
        session.add(
            QueueItem(
                queue_id=queue.id or 0,
                rollout_id=rollout_id,
                pair_id=pair_id,
                subject_key=key,
                position=position,
                labels_done=done[key],
            )
        )
    for user in assignees:
        session.add(QueueAssignee(queue_id=queue.id or 0, user_id=user.id or 0))
    audit_service.record(
        session,
        actor=actor,
        action="queue.create",
        object_type="annotation_queue",
        object_id=queue.id,
        project_id=project.id,
        summary=f"created queue “{queue.name}” with {len(subjects)} items for "
        f"{len(assignees)} experts (overlap {overlap})",
        details={
            "rubric_version_id": version.id,
            "selection": queue.selection,
            "assignees": [u.id for u in assignees],
        },
    )
    return queue


def queue_counts(session: Session, queue: AnnotationQueue) -> tuple[int, int]:
    """(items, items with as many submitted labels as the overlap asks)."""
    done = case((col(QueueItem.labels_done) >= queue.overlap, 1), else_=0)
    total, finished = session.exec(
        select(func.count(), func.coalesce(func.sum(done), 0)).where(QueueItem.queue_id == queue.id)
    ).one()
    return int(total), int(finished)


def get_queue(session: Session, project_id: int, queue_id: int) -> AnnotationQueue:
    queue = session.get(AnnotationQueue, queue_id)
    if queue is None or queue.project_id != project_id:
        raise NotFound(f"No annotation queue with id {queue_id} in this project.")
    return queue


def queue_assignees(session: Session, queue: AnnotationQueue) -> list[User]:
    return list(
        session.exec(
            select(User)
            .join(QueueAssignee, col(QueueAssignee.user_id) == col(User.id))
            .where(QueueAssignee.queue_id == queue.id)
            .order_by(col(User.email))
        ).all()
    )


def set_queue_closed(
    session: Session, queue: AnnotationQueue, *, actor: User, closed: bool
) -> AnnotationQueue:
    queue.closed = closed
    session.add(queue)
    audit_service.record(
        session,
        actor=actor,
        action="queue.close" if closed else "queue.reopen",
        object_type="annotation_queue",
        object_id=queue.id,
        project_id=queue.project_id,
        summary=f"{'closed' if closed else 'reopened'} queue “{queue.name}”",
    )
    session.commit()
    return queue


@dataclass
class QueueProgress:
    items: int
    complete: int  # items with `overlap` submitted labels
    mine_submitted: int
    mine_drafts: int
    mine_open: int  # items still offered to me

    @property
    def percent(self) -> int:
        return round(100 * self.complete / self.items) if self.items else 100


def queue_progress(session: Session, queue: AnnotationQueue, user: User) -> QueueProgress:
    def count(*conditions: Any) -> int:
        return int(
            session.exec(select(func.count()).select_from(QueueItem).where(*conditions)).one()
        )

    return QueueProgress(
        items=count(QueueItem.queue_id == queue.id),
        complete=count(QueueItem.queue_id == queue.id, QueueItem.labels_done >= queue.overlap),
        mine_submitted=count(QueueItem.queue_id == queue.id, labelled_by(queue, user, "submitted")),
        mine_drafts=count(QueueItem.queue_id == queue.id, labelled_by(queue, user, "draft")),
        mine_open=count(offered_to(queue, user)),
    )


@dataclass
class QueueRow:
    queue: AnnotationQueue
    version_label: str
    mode: str
    assigned_to_me: bool
    progress: QueueProgress


def list_queues(session: Session, project_id: int, user: User) -> list[QueueRow]:
    queues = session.exec(
        select(AnnotationQueue)
        .where(AnnotationQueue.project_id == project_id)
        .order_by(col(AnnotationQueue.closed), col(AnnotationQueue.id).desc())
    ).all()
    mine = set(
        session.exec(
            select(QueueAssignee.queue_id).where(
                QueueAssignee.user_id == user.id,
                col(QueueAssignee.queue_id).in_([q.id for q in queues]),
            )
        ).all()
    )
    rows: list[QueueRow] = []
    for queue in queues:
        version = session.get(RubricVersion, queue.rubric_version_id)
        rubric = session.get(Rubric, version.rubric_id) if version else None
        rows.append(
            QueueRow(
                queue=queue,
                version_label=version_label(session, version) if version else "?",
                mode=rubric.mode if rubric else "rubric",
                assigned_to_me=queue.id in mine,
                progress=queue_progress(session, queue, user),
            )
        )
    return rows


@dataclass
class ItemRow:
    item: QueueItem
    external_id: str
    my_status: str  # "submitted" | "draft" | ""


def queue_items(
    session: Session, queue: AnnotationQueue, user: User, *, offset: int = 0, limit: int = 200
) -> list[ItemRow]:
    items = session.exec(
        select(QueueItem, Rollout.external_id)
        .join(Rollout, col(Rollout.id) == col(QueueItem.rollout_id))
        .where(QueueItem.queue_id == queue.id)
        .order_by(col(QueueItem.position))
        .offset(offset)
        .limit(limit)
    ).all()
    keys = [item.subject_key for item, _ in items]
    statuses = dict(
        session.exec(
            select(Label.subject_key, Label.status).where(
                Label.rubric_version_id == queue.rubric_version_id,
                Label.annotator_key == annotator_key(user),
                col(Label.subject_key).in_(keys),
            )
        ).all()
    )
    return [ItemRow(item, ext, statuses.get(item.subject_key, "")) for item, ext in items]


def get_item(session: Session, queue: AnnotationQueue, item_id: int) -> QueueItem:
    item = session.get(QueueItem, item_id)
    if item is None or item.queue_id != queue.id:
        raise NotFound(f"No item {item_id} in this queue.")
    return item


def neighbours(
    session: Session, queue: AnnotationQueue, item: QueueItem
) -> tuple[int | None, int | None]:
    """Ids of the items before and after this one in queue order."""
    before = session.exec(
        select(QueueItem.id)
        .where(QueueItem.queue_id == queue.id, QueueItem.position < item.position)
        .order_by(col(QueueItem.position).desc())
        .limit(1)
    ).first()
    after = session.exec(
        select(QueueItem.id)
        .where(QueueItem.queue_id == queue.id, QueueItem.position > item.position)
        .order_by(col(QueueItem.position))
        .limit(1)
    ).first()
    return before, after


# ---- a response as shown (the annotation view in item_view.py, disagreement review) -----------


@dataclass
class ResponseView:
    """A response as shown: its text, and its items when it is a structured JSON list."""

    rollout: Rollout
    items: list[highlight.StructuredItem] | None
    matches: list[highlight.ExcerptMatch]
