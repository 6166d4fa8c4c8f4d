"""Resolving a disagreement (judge wrong / label wrong / criterion ambiguous), and the choices a
reviewer corrects a label with; the disagreements themselves are in labels/review.py."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.judging.models import JudgeRun
from app.labels import service as label_service
from app.labels import values as label_values
from app.labels.models import DisagreementResolution
from app.labels.review import RESOLUTION_NAMES, RESOLUTIONS, WINNER
from app.labels.values import AGGREGATE
from app.rubrics.definition import Criterion
from app.rubrics.models import RubricVersion


def resolve(
    session: Session,
    run: JudgeRun,
    *,
    actor: User,
    may_edit_others: bool,
    label_id: int,
    criterion: str,
    resolution: str,
    note: str = "",
    corrected_value: Any = None,
    expected_revision: int | None = None,
) -> DisagreementResolution:
    """Record how a disagreement is resolved. "label_wrong" with a corrected value edits the
    label (its previous values are kept in its history); only the label's own annotator or a
    project admin may do that."""
    if resolution not in RESOLUTIONS:
        raise InvalidInput("The resolution must be judge_wrong, label_wrong or ambiguous.")
    label = label_service.get_label(session, run.project_id, label_id)
    version = session.get(RubricVersion, run.rubric_version_id)
    if version is None:  # pragma: no cover
        raise NotFound("The run's rubric version no longer exists.")
    definition = label_service.definition_of(version)
    keys = {c.key for c in definition.criteria} | {AGGREGATE, WINNER}
    if criterion not in keys:
        raise InvalidInput(f"{criterion!r} is not a criterion of the run's rubric.")
    if label.rubric_version_id not in label_service.sibling_version_ids(session, version):
        raise InvalidInput("This label is for another rubric than the run's.")
    edit = resolution == "label_wrong" and corrected_value not in (None, "")
    if edit:
        if label.annotator_id != actor.id and not may_edit_others:
            raise PermissionDenied(
                "Only the expert who wrote this label (or a project admin) may change it."
            )
        if criterion == AGGREGATE:
            raise InvalidInput(
                "The overall score follows from the criteria: correct a criterion instead."
            )
        if criterion == WINNER:
            label_service.correct_label_preference(
                session,
                label,
                actor=actor,
                preference=str(corrected_value),
                expected_revision=expected_revision,
                reason=note or "resolved a disagreement with the judge: my label was wrong",
            )
        else:
            label_service.correct_label_value(
                session,
                label,
                actor=actor,
                criterion=criterion,
                value=corrected_value,
                expected_revision=expected_revision,
                reason=note or "resolved a disagreement with the judge: my label was wrong",
            )
    record = session.exec(
        select(DisagreementResolution).where(
            DisagreementResolution.run_id == run.id,
            DisagreementResolution.label_id == label.id,
            DisagreementResolution.criterion == criterion,
        )
    ).first()
    if record is None:
        record = DisagreementResolution(
            project_id=run.project_id,
            run_id=run.id or 0,
            label_id=label.id or 0,
            rollout_id=label.rollout_id,
            criterion=criterion,
            resolution=resolution,
        )
    record.resolution = resolution
    record.note = note.strip()[:5000]
    record.resolved_by_id = actor.id
    record.resolved_at = utcnow()
    session.add(record)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("Someone resolved this disagreement at the same moment; reload.") from None
    audit_service.record(
        session,
        actor=actor,
        action="disagreement.resolve",
        object_type="disagreement_resolution",
        object_id=record.id,
        project_id=run.project_id,
        summary=f"resolved a disagreement on {criterion} for rollout {label.rollout_id} in run "
        f"{run.id}: {RESOLUTION_NAMES[resolution].lower()}",
        details={
            "run_id": run.id,
            "label_id": label.id,
            "criterion": criterion,
            "resolution": resolution,
            "label_edited": edit,
        },
    )
    session.commit()
    return record


def criterion_choices(criterion: Criterion | None) -> list[tuple[str, str]]:
    """(value, text) pairs to correct a label with."""
    if criterion is None:
        return [("A", "A"), ("B", "B"), ("tie", "tie")]
    if criterion.type == "boolean":
        return [("pass", "pass"), ("fail", "fail")]
    return [(str(level.value), str(level.value)) for level in criterion.levels]


def judge_default(criterion: Criterion | None, judge: Any) -> str:
    """The correction offered first: the judge's own value, as a label would hold it."""
    if criterion is None:
        return str(judge or "")
    value = label_values.judge_label(criterion, judge)
    if isinstance(value, bool):
        return "pass" if value else "fail"
    return "" if value is None else str(value)
