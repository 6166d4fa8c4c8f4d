"""Labeling operations: the rubric versions labels belong to, writing labels (revisioned,
idempotent, never overwriting someone else's change), corrections, blind labeling and the locked
gold test split. Public functions that change data commit once.

What an expert is offered next and drafts and submissions in a queue are in
`app.labels.annotation`, queues and the annotation view in `app.labels.queues`, disagreement
review in `app.labels.review`, gold sets in `app.labels.gold`, import/export in
`app.labels.exchange`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core import stored
from app.core.clock import utcnow
from app.core.errors import Conflict, InvalidInput, NotFound
from app.judging.models import JudgeRun
from app.labels import values as label_values
from app.labels.models import (
    AnnotationQueue,
    GoldItem,
    Label,
    LabelRevision,
    QueueAssignee,
    QueueItem,
)
from app.labels.values import LabelStatus, LabelValueError, Preference
from app.rubrics.definition import RubricDefinition, RubricMode
from app.rubrics.models import Rubric, RubricVersion

T = TypeVar("T")
MAX_CRITIQUE_CHARS = 20_000
_WRITE_ATTEMPTS = 4


# ---- subjects and rubric versions -------------------------------------------------------------


def rollout_subject(rollout_id: int) -> str:
    return f"r:{rollout_id}"


def pair_subject(pair_id: int) -> str:
    return f"p:{pair_id}"


def annotator_key(user: User) -> str:
    return f"user:{user.id}"


def definition_of(version: RubricVersion) -> RubricDefinition:
    return RubricDefinition.model_validate(version.definition)


def version_label(session: Session, version: RubricVersion) -> str:
    rubric = session.get(Rubric, version.rubric_id)
    return f"{rubric.name if rubric else 'rubric'} v{version.number}"


def sibling_version_ids(session: Session, version: RubricVersion) -> list[int]:
    """Ids of every version of the same rubric (labels carry over between versions by key)."""
    return [
        int(v)
        for v in session.exec(
            select(RubricVersion.id).where(RubricVersion.rubric_id == version.rubric_id)
        ).all()
        if v is not None
    ]


def find_label(session: Session, version_id: int, subject_key: str, key: str) -> Label | None:
    return session.exec(
        select(Label).where(
            Label.subject_key == subject_key,
            Label.rubric_version_id == version_id,
            Label.annotator_key == key,
        )
    ).first()


# ---- writing labels ---------------------------------------------------------------------------


@dataclass
class LabelInput:
    """What an expert (or a client) sends. ``choice`` is the on-screen side of a preference
    ("left" / "right" / "tie"); ``preference`` the pair's own A / B / tie."""

    values: dict[str, Any] = field(default_factory=dict)
    critiques: dict[str, str] = field(default_factory=dict)
    overall_critique: str = ""
    preference: str | None = None
    choice: str | None = None
    expected_revision: int | None = None
    reason: str = ""
    deserved: str | None = None  # audit queues: did the sample deserve its reward?


@dataclass
class CleanLabel:
    values: dict[str, label_values.LabelValue]
    critiques: dict[str, str]
    overall_critique: str
    preference: Preference | None
    deserved: str | None = None

    def same_as(self, label: Label) -> bool:
        return (
            dict(label.values or {}) == self.values
            and dict(label.critiques or {}) == self.critiques
            and (label.overall_critique or "") == self.overall_critique
            and label.preference == self.preference
            and label.deserved == self.deserved
        )


@dataclass
class LabelTarget:
    project_id: int
    version_id: int
    rollout_id: int
    pair_id: int | None
    subject_key: str
    annotator_key: str
    annotator_name: str
    annotator_id: int | None
    queue_id: int | None
    shown_order: str = ""


class _StaleWrite(Conflict):
    """The row changed between reading and writing it: read again and decide again (callers
    that do not retry report it as a conflict)."""

    def __init__(self) -> None:
        super().__init__("This label changed while it was being saved; reload and try again.")


def clean_input(
    definition: RubricDefinition,
    data: LabelInput,
    *,
    complete: bool,
    order: str,
    audit: bool = False,
) -> CleanLabel:
    problems: list[dict[str, str]] = []
    values: dict[str, label_values.LabelValue] = {}
    try:
        values = label_values.parse_values(definition, data.values, complete=complete)
    except LabelValueError as exc:
        problems.extend(exc.problems)
    keys = {c.key for c in definition.criteria}
    critiques: dict[str, str] = {}
    for key, text in data.critiques.items():
        if key not in keys:
            problems.append({"field": f"critique:{key}", "message": "is not a criterion"})
        elif len(text) > MAX_CRITIQUE_CHARS:
            problems.append({"field": f"critique:{key}", "message": "is too long"})
        elif text.strip():
            critiques[key] = text.strip()
    if len(data.overall_critique) > MAX_CRITIQUE_CHARS:
        problems.append({"field": "overall_critique", "message": "is too long"})
    preference: Preference | None = None
    try:
        if data.choice is not None and data.choice.strip():
            preference = label_values.preference_from_position(data.choice, order)
        else:
            preference = label_values.parse_preference(data.preference)
    except LabelValueError as exc:
        problems.extend(exc.problems)
    if definition.mode == RubricMode.preference:
        if complete and preference is None:
            problems.append({"field": "preference", "message": "choose A, B or tie"})
    elif preference is not None:
        problems.append({"field": "preference", "message": "only preference rubrics take one"})
    deserved: str | None = None
    if audit:
        try:
            answer = label_values.parse_deserved(data.deserved)
            deserved = answer.value if answer is not None else None
        except LabelValueError as exc:
            problems.extend(exc.problems)
        if complete and deserved is None and not any(p["field"] == "deserved" for p in problems):
            problems.append({"field": "deserved", "message": "say whether it deserved its reward"})
    if problems:
        raise InvalidInput("The label is not complete yet; please correct:", details=problems)
    return CleanLabel(values, critiques, data.overall_critique.strip(), preference, deserved)


def _snapshot(label: Label) -> dict[str, Any]:
    return {
        "values": dict(label.values or {}),
        "critiques": dict(label.critiques or {}),
        "overall_critique": label.overall_critique,
        "preference": label.preference,
        "deserved": label.deserved,
        "status": label.status,
        "source": label.source,
        "updated_at": label.updated_at.isoformat() if label.updated_at else None,
    }


def _count_submission(session: Session, version_id: int, subject_key: str) -> None:
    """One more submitted label for this subject in every queue of the version (atomically)."""
    queues = select(AnnotationQueue.id).where(AnnotationQueue.rubric_version_id == version_id)
    session.execute(
        update(QueueItem)
        .where(col(QueueItem.subject_key) == subject_key, col(QueueItem.queue_id).in_(queues))
        .values(labels_done=QueueItem.labels_done + 1)
        .execution_options(synchronize_session=False)
    )


def refresh_figures(session: Session, version_id: int) -> None:
    """Ask the worker to compute again the stored figures of every run on any version of this
    label's rubric: their key counts the rubric's submitted labels (`LabelTally`), so each of
    them has new figures to compute (one statement)."""
    rubric = sa_select(col(RubricVersion.rubric_id)).where(col(RubricVersion.id) == version_id)
    versions = sa_select(col(RubricVersion.id)).where(
        col(RubricVersion.rubric_id) == rubric.scalar_subquery()
    )
    run_ids = session.execute(
        sa_select(col(JudgeRun.id)).where(col(JudgeRun.rubric_version_id).in_(versions))
    ).scalars()
    stored.request_refresh(session, list(run_ids))


def _changed_elsewhere(label: Label) -> Conflict:
    when = label.updated_at.strftime("%Y-%m-%d %H:%M UTC") if label.updated_at else "meanwhile"
    return Conflict(
        f"This label was changed elsewhere ({when}, now revision {label.revision}) since you "
        "opened it. Nothing was overwritten: reload to see the current label (copy your text "
        "first if you want to keep it)."
    )


# created: a new row; submitted: a draft became a submission; updated: a draft saved again or a
# submitted label changed (its history kept); unchanged: nothing to store.
Outcome = Literal["created", "submitted", "updated", "unchanged"]


def write_label(
    session: Session,
    target: LabelTarget,
    clean: CleanLabel,
    *,
    submit: bool,
    expected_revision: int | None,
    actor: User | None,
    source: str,
    reason: str = "",
    request_figures: bool = True,
) -> tuple[Label, Outcome]:
    """Create or change one label; flushes only. Raises _StaleWrite or IntegrityError on a race
    (the caller retries), Conflict when someone else changed it since ``expected_revision``.
    A submitted label asks the worker for the figures it changes (``request_figures``: an
    import asks once, at its end)."""
    label = find_label(session, target.version_id, target.subject_key, target.annotator_key)
    now = utcnow()
    if label is None:
        label = Label(
            project_id=target.project_id,
            rollout_id=target.rollout_id,
            pair_id=target.pair_id,
            subject_key=target.subject_key,
            rubric_version_id=target.version_id,
            queue_id=target.queue_id,
            annotator_id=target.annotator_id,
            annotator_key=target.annotator_key,
            annotator_name=target.annotator_name[:320],
            values=clean.values,
            critiques=clean.critiques,
            overall_critique=clean.overall_critique,
            preference=clean.preference,
            deserved=clean.deserved,
            shown_order=target.shown_order,
            status="submitted" if submit else "draft",
            source=source,
            revision=1,
            created_at=now,
            updated_at=now,
            submitted_at=now if submit else None,
        )
        session.add(label)
        session.flush()
        if submit:
            _count_submission(session, target.version_id, target.subject_key)
            if request_figures:
                refresh_figures(session, target.version_id)
        return label, "created"
    session.refresh(label)
    same = clean.same_as(label)
    if same and (label.status == LabelStatus.submitted or not submit):
        return label, "unchanged"  # a repeated submission (or draft save) stores nothing new
    # Different content on top of a revision the sender did not see: someone else's change.
    if not same and expected_revision is not None and expected_revision != label.revision:
        raise _changed_elsewhere(label)
    if label.status == LabelStatus.submitted and not submit:
        raise Conflict("This label is already submitted: submit your changes to edit it.")
    first_submission = submit and label.status == LabelStatus.draft
    if label.status == LabelStatus.submitted:
        session.add(
            LabelRevision(
                label_id=label.id or 0,
                revision=label.revision,
                snapshot=_snapshot(label),
                changed_by_id=actor.id if actor else None,
                reason=reason.strip()[:2000],
            )
        )
    changes: dict[str, Any] = {
        "values": clean.values,
        "critiques": clean.critiques,
        "overall_critique": clean.overall_critique,
        "preference": clean.preference,
        "deserved": clean.deserved,
        "revision": label.revision + 1,
        "updated_at": now,
        "status": "submitted" if submit else "draft",
    }
    if target.shown_order and not label.shown_order:
        changes["shown_order"] = target.shown_order
    if first_submission:
        changes["submitted_at"] = now
        changes["queue_id"] = target.queue_id or label.queue_id
    result = session.execute(
        update(Label)
        .where(
            col(Label.id) == label.id,
            col(Label.revision) == label.revision,
            col(Label.status) == label.status,
        )
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 1) != 1:
        raise _StaleWrite()
    if first_submission:
        _count_submission(session, target.version_id, target.subject_key)
    if submit and request_figures:
        refresh_figures(session, target.version_id)
    session.refresh(label)
    return label, "submitted" if first_submission else "updated"


def retrying(session: Session, operation: Callable[[], T]) -> T:
    """Run ``operation`` and commit; on a lost race roll back and run it again."""
    for _ in range(_WRITE_ATTEMPTS):
        try:
            result = operation()
            session.commit()
            return result
        except (IntegrityError, _StaleWrite):
            session.rollback()
    raise Conflict("The label kept changing while it was being saved; reload and try again.")


def audit_label(
    session: Session, actor: User | None, label: Label, outcome: Outcome, *, action: str
) -> None:
    if outcome == "unchanged":
        return
    audit_service.record(
        session,
        actor=actor,
        action=action,
        object_type="label",
        object_id=label.id,
        project_id=label.project_id,
        summary=f"{'changed' if outcome == 'updated' else 'submitted'} a label for "
        f"{label.subject_key} (revision {label.revision})",
        details={
            "subject": label.subject_key,
            "rubric_version_id": label.rubric_version_id,
            "values": label.values,
            "preference": label.preference,
            "revision": label.revision,
        },
    )


def get_label(session: Session, project_id: int, label_id: int) -> Label:
    label = session.get(Label, label_id)
    if label is None or label.project_id != project_id:
        raise NotFound(f"No label with id {label_id} in this project.")
    return label


def label_history(session: Session, label: Label) -> list[LabelRevision]:
    return list(
        session.exec(
            select(LabelRevision)
            .where(LabelRevision.label_id == label.id)
            .order_by(col(LabelRevision.revision))
        ).all()
    )


def _correct(
    session: Session,
    label: Label,
    *,
    actor: User,
    values: dict[str, Any],
    preference: str | None,
    expected_revision: int | None,
    reason: str,
) -> Label:
    version = session.get(RubricVersion, label.rubric_version_id)
    if version is None:  # pragma: no cover
        raise NotFound("The label's rubric version no longer exists.")
    if label.status != LabelStatus.submitted:
        raise Conflict("Only a submitted label can be corrected.")
    clean = clean_input(
        definition_of(version),
        LabelInput(
            values=values,
            critiques=dict(label.critiques or {}),
            overall_critique=label.overall_critique,
            preference=preference,
        ),
        complete=False,
        order=label.shown_order,
    )
    target = LabelTarget(
        project_id=label.project_id,
        version_id=label.rubric_version_id,
        rollout_id=label.rollout_id,
        pair_id=label.pair_id,
        subject_key=label.subject_key,
        annotator_key=label.annotator_key,
        annotator_name=label.annotator_name,
        annotator_id=label.annotator_id,
        queue_id=label.queue_id,
    )
    updated, outcome = write_label(
        session,
        target,
        clean,
        submit=True,
        expected_revision=expected_revision,
        actor=actor,
        source=label.source,
        reason=reason,
    )
    audit_label(session, actor, updated, outcome, action="label.edit")
    return updated


def correct_label_value(
    session: Session,
    label: Label,
    *,
    actor: User,
    criterion: str,
    value: Any,
    expected_revision: int | None,
    reason: str,
) -> Label:
    """Change one criterion of a submitted label, keeping the previous values in its history.
    Flushes only: the disagreement resolution that calls it commits."""
    values = {**(label.values or {}), criterion: value}
    return _correct(
        session,
        label,
        actor=actor,
        values=values,
        preference=label.preference,
        expected_revision=expected_revision,
        reason=reason,
    )


def correct_label_preference(
    session: Session,
    label: Label,
    *,
    actor: User,
    preference: str,
    expected_revision: int | None,
    reason: str,
) -> Label:
    """Change the winner of a submitted preference label (history kept). Flushes only."""
    return _correct(
        session,
        label,
        actor=actor,
        values=dict(label.values or {}),
        preference=preference,
        expected_revision=expected_revision,
        reason=reason,
    )


# ---- blind labeling ---------------------------------------------------------------------------


def blind_subjects(session: Session, project_id: int, user: User) -> set[str]:
    """Subjects the user must not see judge verdicts or colleagues' labels for yet: items of
    open queues she is assigned to and has not submitted a label for."""
    rows = session.exec(
        select(QueueItem.subject_key, AnnotationQueue.rubric_version_id)
        .join(AnnotationQueue, col(AnnotationQueue.id) == col(QueueItem.queue_id))
        .join(QueueAssignee, col(QueueAssignee.queue_id) == col(AnnotationQueue.id))
        .where(
            AnnotationQueue.project_id == project_id,
            col(AnnotationQueue.closed).is_(False),
            QueueAssignee.user_id == user.id,
        )
    ).all()
    if not rows:
        return set()
    submitted = set(
        session.exec(
            select(Label.subject_key, Label.rubric_version_id).where(
                Label.project_id == project_id,
                Label.annotator_key == annotator_key(user),
                Label.status == LabelStatus.submitted,
            )
        ).all()
    )
    return {subject for subject, version in rows if (subject, version) not in submitted}


# ---- the locked test split ------------------------------------------------------------------


def gold_test_rollout_ids(session: Session, project_id: int) -> set[int]:
    """Rollouts in the locked test split: never to be offered as few-shot examples."""
    return {
        int(r)
        for r in session.exec(
            select(GoldItem.rollout_id).where(
                GoldItem.project_id == project_id, GoldItem.split == "test"
            )
        ).all()
    }


def is_locked_test_item(session: Session, project_id: int, rollout_id: int) -> bool:
    """True when the rollout is a gold item of the test split (shown to no rubric author)."""
    return (
        session.exec(
            select(GoldItem.id).where(
                GoldItem.project_id == project_id,
                GoldItem.rollout_id == rollout_id,
                GoldItem.split == "test",
            )
        ).first()
        is not None
    )
