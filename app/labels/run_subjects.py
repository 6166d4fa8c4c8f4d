"""A judge run's labelled subjects read from the database: labels joined to verdicts in SQL.

Only subjects that carry a submitted label (or, for a comparison's gold scope, the subjects of a
given set of rollouts) are read, with the few columns the figures need (never a verdict's raw
text), in a fixed number of statements whatever the size of the run. What a run holds overall
(items judged, items without a usable verdict) is counted in SQL. Each result carries the data
version it was read at, which keys the per-run caches of the figures built on it.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Text, case, cast, distinct, exists, func, null
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from app.agreement.subjects import (
    RunSubject,
    SubjectLabel,
    chosen_labels,
    pair_readings,
    rubric_readings,
)
from app.core import stored
from app.core.errors import NotFound
from app.core.memo import VersionedCache
from app.core.stored import FigureKind
from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from app.labels import service as label_service
from app.labels.models import Label, LabelTally
from app.labels.values import OK_PARSE_STATUSES
from app.rollouts.models import RolloutPair
from app.rubrics.definition import RubricDefinition
from app.rubrics.models import Rubric, RubricVersion


class VerdictRow(NamedTuple):
    id: int
    rollout_id: int
    pair_id: int | None
    repeat: int
    order_shown: str
    scores: Any
    answer: Any
    aggregate: float | None
    normalized: float | None
    winner: str | None
    parse_status: str
    error: str | None
    rollout_b_id: int | None


@dataclass
class RunContext:
    """A run with its rubric version, the rubric, its definition and the sibling versions whose
    labels count for it (labels carry over between versions of one rubric by criterion key)."""

    run: JudgeRun
    version: RubricVersion
    rubric: Rubric
    definition: RubricDefinition
    siblings: list[int]

    @property
    def version_label(self) -> str:
        return f"{self.rubric.name} v{self.version.number}"

    @property
    def preference(self) -> bool:
        return self.definition.mode == "preference"


@dataclass(frozen=True)
class RunSummary:
    """What the run holds overall, counted in SQL; plain values only (cached figures carry it
    across requests, so it holds no database object)."""

    run_id: int
    rubric_id: int
    version_label: str
    definition: RubricDefinition
    siblings: tuple[int, ...]
    items_judged: int
    judge_errors: int


def run_context(session: Session, run: JudgeRun) -> RunContext:
    version = session.get(RubricVersion, run.rubric_version_id)
    rubric = session.get(Rubric, version.rubric_id) if version else None
    if version is None or rubric is None:  # pragma: no cover - foreign keys keep them
        raise NotFound("The run's rubric version no longer exists.")
    return RunContext(
        run,
        version,
        rubric,
        label_service.definition_of(version),
        label_service.sibling_version_ids(session, version),
    )


def _submitted(context: RunContext) -> list[Any]:
    conditions: list[Any] = [
        col(Label.rubric_version_id).in_(context.siblings),
        col(Label.status) == "submitted",
    ]
    conditions.append(
        col(Label.pair_id).is_not(None) if context.preference else col(Label.pair_id).is_(None)
    )
    return conditions


def data_version(session: Session, context: RunContext) -> tuple[Any, ...]:
    """The key of everything derived from the run's verdicts and labels, in one statement of two
    index lookups: the run's latest verdict id (verdicts are only ever added) and how many times
    the labels under the run's rubric were written (`LabelTally`, kept by triggers on every
    insert, update and delete). The database and the run's creation time make ids reused after a
    rollback (SQLite) a different key."""
    latest_verdict = (
        sa_select(func.max(col(Verdict.id)))
        .where(col(Verdict.run_id) == context.run.id)
        .scalar_subquery()
    )
    written = (
        sa_select(col(LabelTally.changes))
        .where(col(LabelTally.rubric_id) == context.rubric.id)
        .scalar_subquery()
    )
    verdict, changes = session.execute(sa_select(latest_verdict, written)).one()
    return (
        str(session.get_bind().engine.url),
        context.run.id,
        str(context.run.created_at),
        int(verdict or 0),
        int(changes or 0),
    )


_SUMMARIES: VersionedCache[tuple[int, int]] = VersionedCache(64)


def run_summary(
    session: Session, context: RunContext, version: tuple[Any, ...] | None = None
) -> RunSummary:
    """Items judged and items without a usable verdict, in one aggregate statement, cached per
    data version (``version``, read when not given)."""
    key = (*(version or data_version(session, context))[:4],)

    def count() -> tuple[int, int]:
        return _count_subjects(session, context)

    judged, errors = stored.remembered(
        session, _SUMMARIES, FigureKind.RUN_COUNTS, key, count, judge_run_id=context.run.id
    )
    return RunSummary(
        run_id=context.run.id or 0,
        rubric_id=context.rubric.id or 0,
        version_label=context.version_label,
        definition=context.definition,
        siblings=tuple(context.siblings),
        items_judged=judged,
        judge_errors=errors,
    )


def _count_subjects(session: Session, context: RunContext) -> tuple[int, int]:
    subject = col(Verdict.pair_id) if context.preference else col(Verdict.rollout_id)
    usable = case((col(Verdict.parse_status).in_(OK_PARSE_STATUSES), subject), else_=None)
    judged, ok = session.execute(
        sa_select(func.count(distinct(subject)), func.count(distinct(usable))).where(
            col(Verdict.run_id) == context.run.id,
            col(Verdict.pair_id).is_not(None)
            if context.preference
            else col(Verdict.pair_id).is_(None),
        )
    ).one()
    return int(judged or 0), int(judged or 0) - int(ok or 0)


def _answers_where_needed(session: Session, verdicts: list[VerdictRow]) -> list[VerdictRow]:
    """Read the answers of the verdicts whose values are only in their answer (older or imported
    verdicts without ``scores.raw``): one statement, and none when every verdict has them."""
    needed = [
        v.id
        for v in verdicts
        if not isinstance((v.scores or {}).get("raw"), dict) and v.parse_status in OK_PARSE_STATUSES
    ]
    if not needed:
        return verdicts
    answers = dict(
        session.execute(
            sa_select(col(Verdict.id), col(Verdict.answer)).where(col(Verdict.id).in_(needed))
        ).all()
    )
    return [v._replace(answer=answers[v.id]) if v.id in answers else v for v in verdicts]


class _Decoder:
    """JSON documents read as text and decoded once per distinct text: a run's verdict scores
    and label values repeat (a pass/fail rubric of five criteria has 32 shapes), so 20,000 rows
    decode a few dozen documents. Rows with equal text share one (read-only) object, and labels
    with equal values share the memo of what the figures derive from them."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._memos: dict[str, dict[Any, Any]] = {}

    def value(self, text: str | None) -> Any:
        if text is None:
            return None
        found = self._values.get(text)
        if found is None:
            found = self._values[text] = json.loads(text)
        return found

    def memo(self, text: str | None) -> dict[Any, Any]:
        return self._memos.setdefault(text or "", {})


def subjects(
    session: Session,
    context: RunContext,
    *,
    rollout_ids: Collection[int] | None = None,
    rollout_query: Any = None,
    subject_query: Any = None,
    annotators: Collection[str] | None = None,
    labelled_only: bool = True,
    texts: bool = True,
) -> list[RunSubject]:
    """The run's subjects with their reading and chosen labels, in rollout order.

    The run's work items say which subjects it judged (by subject key, indexed per run); they
    can be narrowed to ``rollout_ids``, to ``rollout_query`` (a SQL select of rollout ids) or to
    ``subject_query`` (a SQL select of subject keys). ``labelled_only`` (the default) keeps the
    subjects with a submitted label (of the given annotators); otherwise every judged subject in
    the scope is read, labelled or not. Without ``texts`` the readings leave the judge's
    justification and evidence out. Two statements: labels, then the verdicts.
    """
    run = context.run
    preference = context.preference
    scope: list[Any] = [col(JudgeWorkItem.run_id) == run.id]
    if rollout_ids is not None:
        scope.append(col(JudgeWorkItem.rollout_id).in_(sorted(rollout_ids) or [0]))
    if rollout_query is not None:
        scope.append(col(JudgeWorkItem.rollout_id).in_(rollout_query))
    if subject_query is not None:
        scope.append(col(JudgeWorkItem.subject_key).in_(subject_query))
    label_conditions = _submitted(context)
    if annotators is not None:
        label_conditions.append(col(Label.annotator_key).in_(sorted(annotators) or [""]))
    # A label counts for the run when the run has a work item (in scope) for its subject.
    judged = exists().where(*scope, col(JudgeWorkItem.subject_key) == col(Label.subject_key))
    decoded = _Decoder()
    label_rows = session.execute(
        sa_select(
            col(Label.id),
            col(Label.rollout_id),
            col(Label.subject_key),
            col(Label.rubric_version_id),
            col(Label.annotator_key),
            col(Label.annotator_name),
            col(Label.annotator_id),
            cast(col(Label.values), Text),
            col(Label.critiques) if texts else null(),
            col(Label.overall_critique),
            col(Label.preference),
            col(Label.revision),
            col(Label.updated_at),
        ).where(*label_conditions, judged)
    ).all()
    labels = [
        SubjectLabel(
            id=row[0],
            rollout_id=row[1],
            subject_key=row[2],
            rubric_version_id=row[3],
            annotator_key=row[4],
            annotator_name=row[5],
            annotator_id=row[6],
            values=decoded.value(row[7]),
            critiques=row[8],
            overall_critique=row[9],
            preference=row[10],
            revision=row[11],
            updated_at=row[12],
            memo=decoded.memo(row[7]),
        )
        for row in label_rows
    ]
    grouped = chosen_labels(labels, context.version.id or 0)
    if labelled_only:
        # The verdicts of the labelled subjects only: work items by (run, subject key), then
        # their verdicts by the unique work item id.
        scope.append(
            col(JudgeWorkItem.subject_key).in_(
                sa_select(col(Label.subject_key)).where(*label_conditions)
            )
        )
    second = RolloutPair
    query = (
        sa_select(
            col(Verdict.id),
            col(Verdict.rollout_id),
            col(Verdict.pair_id),
            col(Verdict.repeat),
            col(Verdict.order_shown),
            cast(col(Verdict.scores), Text),
            col(Verdict.answer) if texts else null(),
            col(Verdict.aggregate),
            col(Verdict.normalized),
            col(Verdict.winner),
            col(Verdict.parse_status),
            col(Verdict.error),
            col(second.rollout_b_id),
        )
        .join(JudgeWorkItem, col(JudgeWorkItem.id) == col(Verdict.work_item_id))
        .outerjoin(second, col(second.id) == col(Verdict.pair_id))
        .where(
            *scope,
            col(Verdict.run_id) == run.id,
            col(Verdict.pair_id).is_not(None) if preference else col(Verdict.pair_id).is_(None),
        )
        .order_by(col(Verdict.id))
    )
    verdicts = [
        VerdictRow(*row)._replace(scores=decoded.value(row.scores))
        for row in session.execute(query).all()
    ]
    if not texts:
        verdicts = _answers_where_needed(session, verdicts)
    partners = {v.pair_id: v.rollout_b_id for v in verdicts if v.pair_id is not None}
    readings: dict[str, tuple[int, int | None, Any]] = {}
    if preference:
        readings.update(pair_readings(context.definition, verdicts, texts=texts))
    else:
        readings.update(rubric_readings(context.definition, verdicts, texts=texts))
    found: list[RunSubject] = []
    for key, (rollout_id, pair_id, reading) in sorted(readings.items(), key=lambda e: e[1][0]):
        chosen = grouped.get(key, [])
        if labelled_only and not chosen:
            continue
        found.append(
            RunSubject(
                subject_key=key,
                rollout_id=rollout_id,
                pair_id=pair_id,
                rollout_b_id=partners.get(pair_id) if pair_id is not None else None,
                reading=reading,
                labels=chosen,
            )
        )
    return found


# Two runs' lists (some 15 MB each at 20,000 labels): a run's figures and its disagreement list.
_LABELLED: VersionedCache[list[RunSubject]] = VersionedCache(2)


def labelled_subjects(
    session: Session,
    context: RunContext,
    version: tuple[Any, ...] | None = None,
    annotators: Collection[str] | None = None,
) -> list[RunSubject]:
    """``subjects(..., texts=False)`` of the whole run, cached per data version (``version``,
    read when not given) and annotators: the agreement figures, the disagreement index, the
    leaderboard and the slices read one list instead of reading the run once each. The list
    and its subjects are shared: read them, never change them."""
    key = (
        "labelled",
        *(version or data_version(session, context)),
        None if annotators is None else tuple(sorted(annotators)),
    )
    return _LABELLED.get_or_compute(
        key, lambda: subjects(session, context, annotators=annotators, texts=False)
    )
