"""The annotation view of one queue item: the document with highlighted excerpts, the response(s),
the expert's label, and what is revealed after submitting."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import and_, func
from sqlmodel import Session, col, select

from app.auth.models import User
from app.core.errors import NotFound
from app.judging.models import JudgeRun, Verdict
from app.labels import highlight
from app.labels import values as label_values
from app.labels.annotation import is_assignee
from app.labels.models import AnnotationQueue, Label, QueueItem
from app.labels.queues import ResponseView, neighbours
from app.labels.service import (
    annotator_key,
    definition_of,
    find_label,
    sibling_version_ids,
)
from app.labels.values import LabelStatus
from app.rollouts.models import Rollout, RolloutPair
from app.rubrics.definition import RubricDefinition
from app.rubrics.models import RubricVersion

# ---- the annotation view ----------------------------------------------------------------------


@dataclass
class RevealedVerdict:
    run_id: int
    judge_name: str
    version_label: str
    reading: label_values.JudgeReading


@dataclass
class Reveal:
    """What an expert sees once she has submitted: the judge's verdicts and colleagues' labels."""

    verdicts: list[RevealedVerdict]
    other_labels: list[Label]


@dataclass
class ItemView:
    queue: AnnotationQueue
    item: QueueItem
    version: RubricVersion
    definition: RubricDefinition
    rollout: Rollout
    label: Label | None
    can_label: bool
    shown_order: str
    left: ResponseView
    right: ResponseView | None
    document: list[highlight.Segment] | None
    position: int
    total: int
    previous_id: int | None
    next_id: int | None
    reveal: Reveal | None

    @property
    def submitted(self) -> bool:
        return self.label is not None and self.label.status == LabelStatus.submitted


def _response_view(rollout: Rollout, definition: RubricDefinition, offset: int = 0) -> ResponseView:
    items = highlight.structured_items(rollout.response or "", definition.item_field)
    excerpts = [item.excerpt or "" for item in items or []]
    matches = highlight.locate_excerpts(rollout.target_document or "", excerpts)
    # Mark indices are shared by both responses of a pair: offset the second one's.
    matches = [
        highlight.ExcerptMatch(m.index + offset, m.excerpt, m.status, m.spans) for m in matches
    ]
    return ResponseView(rollout, items, matches)


def _reveal(session: Session, version: RubricVersion, item: QueueItem, me: str) -> Reveal:
    siblings = sibling_version_ids(session, version)
    others = list(
        session.exec(
            select(Label)
            .where(
                Label.subject_key == item.subject_key,
                col(Label.rubric_version_id).in_(siblings),
                Label.status == LabelStatus.submitted,
                Label.annotator_key != me,
            )
            .order_by(col(Label.submitted_at))
        ).all()
    )
    subject = (
        col(Verdict.pair_id) == item.pair_id
        if item.pair_id is not None
        else and_(col(Verdict.rollout_id) == item.rollout_id, col(Verdict.pair_id).is_(None))
    )
    rows = session.exec(
        select(Verdict, JudgeRun)
        .join(JudgeRun, col(JudgeRun.id) == col(Verdict.run_id))
        .where(subject, col(JudgeRun.rubric_version_id).in_(siblings), Verdict.repeat == 0)
        .order_by(col(JudgeRun.id).desc())
        .limit(12)
    ).all()
    versions: dict[int, RubricVersion] = {}
    by_run: dict[int, tuple[JudgeRun, str, dict[str, label_values.JudgeReading]]] = {}
    for verdict, run in rows:
        if run.id not in by_run and len(by_run) >= 3:
            continue
        run_version = versions.setdefault(
            run.rubric_version_id, session.get(RubricVersion, run.rubric_version_id) or version
        )
        reading = label_values.read_verdict(
            definition_of(run_version),
            scores=verdict.scores,
            answer=verdict.answer,
            aggregate=verdict.aggregate,
            normalized=verdict.normalized,
            winner=verdict.winner,
            parse_status=verdict.parse_status,
            error=verdict.error,
        )
        name = verdict.judge_name or run.external_judge_name or f"run {run.id}"
        by_run.setdefault(run.id or 0, (run, name, {}))[2][verdict.order_shown or "AB"] = reading
    verdicts: list[RevealedVerdict] = []
    for run_id, (run, name, orders) in by_run.items():
        reading = orders.get("AB") or next(iter(orders.values()))
        if item.pair_id is not None:
            # Both orders of a pair make one verdict.
            winner = label_values.combined_winner(orders.get("AB"), orders.get("BA"))
            reading = dataclasses.replace(reading, winner=winner)
        verdicts.append(
            RevealedVerdict(run_id, name, f"v{versions[run.rubric_version_id].number}", reading)
        )
    return Reveal(verdicts, others)


def item_view(session: Session, queue: AnnotationQueue, item: QueueItem, user: User) -> ItemView:
    version = session.get(RubricVersion, queue.rubric_version_id)
    if version is None:  # pragma: no cover - the foreign key keeps it
        raise NotFound("The queue's rubric version no longer exists.")
    definition = definition_of(version)
    key = annotator_key(user)
    label = find_label(session, version.id or 0, item.subject_key, key)
    rollout = session.get(Rollout, item.rollout_id)
    if rollout is None:  # pragma: no cover - the foreign key keeps it
        raise NotFound("The rollout of this item no longer exists.")
    order = ""
    left = _response_view(rollout, definition)
    right: ResponseView | None = None
    if item.pair_id is not None:
        pair = session.get(RolloutPair, item.pair_id)
        partner = session.get(Rollout, pair.rollout_b_id) if pair else None
        if pair is None or partner is None:  # pragma: no cover - cascades remove the item
            raise NotFound("The pair of this item no longer exists.")
        order = (label.shown_order if label and label.shown_order else "") or (
            label_values.shown_order(pair.id or 0, key)
        )
        first, second = (rollout, partner) if order == "AB" else (partner, rollout)
        left = _response_view(first, definition)
        right = _response_view(second, definition, offset=len(left.matches))
    matches = [*left.matches, *(right.matches if right else [])]
    document = (
        highlight.segments(rollout.target_document, matches) if rollout.target_document else None
    )
    previous_id, next_id = neighbours(session, queue, item)
    total = int(
        session.exec(
            select(func.count()).select_from(QueueItem).where(QueueItem.queue_id == queue.id)
        ).one()
    )
    submitted = label is not None and label.status == LabelStatus.submitted
    return ItemView(
        queue=queue,
        item=item,
        version=version,
        definition=definition,
        rollout=rollout,
        label=label,
        can_label=is_assignee(session, queue, user) and not queue.closed,
        shown_order=order,
        left=left,
        right=right,
        document=document,
        position=item.position + 1,
        total=total,
        previous_id=previous_id,
        next_id=next_id,
        # Blind labeling: nothing of the judge or colleagues until her own label is in.
        reveal=_reveal(session, version, item, key) if submitted else None,
    )
