"""Disagreement review: a judge run's verdicts next to the experts' labels, the items where they
differ, and the experts' resolutions (judge wrong / label wrong / criterion ambiguous).

Only labelled subjects are read (`run_subjects`: labels joined to verdicts in SQL). The list's
counts come from a per-run index of the disagreements, cached per data version and tolerances;
a page reads the full rows of its own rollouts only, and the detail page only its rollout's.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.agreement.subjects import RunSubject, SubjectLabel, label_aggregate
from app.auth.models import User
from app.core import stored
from app.core.errors import InvalidInput, NotFound
from app.core.memo import VersionedCache
from app.core.stored import FigureKind
from app.judging.models import JudgeRun
from app.labels import highlight, queues, run_subjects
from app.labels import service as label_service
from app.labels import values as label_values
from app.labels.models import DisagreementResolution
from app.labels.run_subjects import RunContext, RunSummary
from app.labels.values import AGGREGATE
from app.rollouts.models import Rollout
from app.rubrics.definition import Criterion, RubricDefinition
from app.rubrics.models import Rubric, RubricVersion

WINNER = "_winner"
RESOLUTIONS = ("judge_wrong", "label_wrong", "ambiguous")
RESOLUTION_NAMES = {
    "judge_wrong": "Judge wrong",
    "label_wrong": "Label was wrong",
    "ambiguous": "Criterion ambiguous",
}
DEFAULT_TOLERANCE = 0.5  # scale points
DEFAULT_AGGREGATE_TOLERANCE = 0.125  # of the normalised 0..1 score (0.5 points on 1..5)


# ---- runs -------------------------------------------------------------------------------------


def get_run(session: Session, project_id: int, run_id: int) -> JudgeRun:
    run = session.get(JudgeRun, run_id)
    if run is None or run.project_id != project_id:
        raise NotFound(f"No judge run with id {run_id} in this project.")
    return run


@dataclass
class RunRow:
    run: JudgeRun
    version_label: str
    mode: str
    judge_name: str


def judge_name(run: JudgeRun) -> str:
    snapshot = run.judge_snapshot or {}
    return str(
        snapshot.get("name") or run.external_judge_name or snapshot.get("model_id") or "judge"
    )


def list_runs(session: Session, project_id: int, *, limit: int = 200) -> list[RunRow]:
    rows = session.exec(
        select(JudgeRun, RubricVersion, Rubric)
        .join(RubricVersion, col(RubricVersion.id) == col(JudgeRun.rubric_version_id))
        .join(Rubric, col(Rubric.id) == col(RubricVersion.rubric_id))
        .where(JudgeRun.project_id == project_id)
        .order_by(col(JudgeRun.id).desc())
        .limit(limit)
    ).all()
    return [
        RunRow(run, f"{rubric.name} v{version.number}", rubric.mode, judge_name(run))
        for run, version, rubric in rows
    ]


# ---- disagreements ----------------------------------------------------------------------------

PAGE_SIZE = 25  # rollouts per page of the disagreement list (the API's default)
# Rollouts per page of the disagreement review page: each rollout brings up to one card per
# criterion, each with its resolution form; 10 rollouts are some 25 cards and 60 KB of HTML
# (25 rollouts were 160 KB, a page nobody reads at once, and the slowest page to render).
PAGE_ROLLOUTS = 10
MAX_PAGE_SIZE = 200


@dataclass
class DisagreementRow:
    subject: RunSubject
    external_id: str
    label: SubjectLabel
    criterion_key: str
    criterion_name: str
    criterion: Criterion | None
    human: Any
    human_text: str
    judge: Any
    judge_text: str
    critique: str
    justification: list[str]
    evidence: list[str]
    resolution: DisagreementResolution | None
    disagrees_now: bool

    @property
    def row_id(self) -> str:
        return f"{self.label.id}-{self.criterion_key}"


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One (label, criterion) that disagrees or was resolved: what counts and pages read."""

    rollout_id: int
    subject_key: str
    criterion_key: str
    resolution: str | None


@dataclass
class DisagreementIndex:
    """Every disagreement of a run at some tolerances, in list order, without their text; with
    what every page reads computed once: each entry's rollout id (for the keyset's binary
    search) and the counts over the whole run (for a viewer with nothing to label blind)."""

    entries: list[IndexEntry]
    compared_labels: int
    rollout_ids: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    by_criterion: list[tuple[str, str, int, int]] = field(default_factory=list)


@dataclass
class DisagreementReport:
    summary: RunSummary
    rows: list[DisagreementRow]  # this page's (or this rollout's)
    counts: dict[str, int]
    by_criterion: list[tuple[str, str, int, int]]  # key, name, open, total
    compared_labels: int
    hidden: int
    tolerance: float
    aggregate_tolerance: float
    cursor: str | None = None
    next_cursor: str | None = None

    @property
    def rollout_ids(self) -> list[int]:
        return sorted({row.subject.rollout_id for row in self.rows})


Candidate = tuple[str, str, Criterion | None, Any, Any, bool, list[str], list[str], str]


def _candidate_rows(
    definition: RubricDefinition,
    subject: RunSubject,
    label: SubjectLabel,
    tolerance: float,
    agg_tolerance: float,
) -> list[Candidate]:
    """(key, name, criterion, human, judge, disagrees, justification, evidence, critique) for
    every comparable criterion of one label."""
    reading = subject.reading
    out: list[Candidate] = []
    if not reading.ok:
        return out
    if definition.mode == "preference":
        if label.preference is not None and reading.winner is not None:
            out.append(
                (
                    WINNER,
                    "Preferred response",
                    None,
                    label.preference,
                    reading.winner,
                    label.preference != reading.winner,
                    [reading.justification] if reading.justification else [],
                    [],
                    label.overall_critique,
                )
            )
        return out
    values = label.values or {}
    for criterion in definition.criteria:
        human = values.get(criterion.key)
        verdict = reading.criteria.get(criterion.key)
        if human is None or verdict is None or verdict.value is None:
            continue
        out.append(
            (
                criterion.key,
                criterion.name,
                criterion,
                human,
                verdict.value,
                label_values.criterion_disagrees(criterion, human, verdict.value, tolerance),
                verdict.justification,
                verdict.evidence,
                (label.critiques or {}).get(criterion.key, ""),
            )
        )
    has_scale = any(c.type == "scale" for c in definition.criteria)
    aggregate = label_aggregate(definition, label) if has_scale else None
    if aggregate is not None and reading.normalized is not None:
        out.append(
            (
                AGGREGATE,
                "Overall score",
                None,
                aggregate.value,
                reading.aggregate,
                label_values.aggregate_disagrees(
                    aggregate.normalized, reading.normalized, agg_tolerance
                ),
                [reading.justification] if reading.justification else [],
                [],
                label.overall_critique,
            )
        )
    return out


def _check_tolerances(tolerance: float, aggregate_tolerance: float) -> None:
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise InvalidInput("The tolerance must be a number of scale points, 0 or more.")
    if not (math.isfinite(aggregate_tolerance) and 0 <= aggregate_tolerance <= 1):
        raise InvalidInput("The overall-score tolerance must be between 0 and 1.")


def _resolution_version(session: Session, run: JudgeRun) -> tuple[Any, ...]:
    row = session.execute(
        sa_select(
            func.count(col(DisagreementResolution.id)),
            func.max(col(DisagreementResolution.id)),
            func.max(DisagreementResolution.resolved_at),
        ).where(col(DisagreementResolution.run_id) == run.id)
    ).one()
    return (int(row[0] or 0), int(row[1] or 0), str(row[2]))


def _resolution_kinds(session: Session, run: JudgeRun) -> dict[tuple[int, str], str]:
    return {
        (int(label_id), criterion): resolution
        for label_id, criterion, resolution in session.execute(
            sa_select(
                col(DisagreementResolution.label_id),
                col(DisagreementResolution.criterion),
                col(DisagreementResolution.resolution),
            ).where(col(DisagreementResolution.run_id) == run.id)
        )
    }


_INDEXES: VersionedCache[DisagreementIndex] = VersionedCache(16)


def disagreement_index(
    session: Session,
    context: RunContext,
    version: tuple[Any, ...],
    tolerance: float,
    aggregate_tolerance: float,
) -> DisagreementIndex:
    """Every disagreeing or resolved (label, criterion) of the run's labelled subjects, cached
    per data version (verdicts, labels, resolutions) and tolerances."""
    key = (
        "disagreements",
        *version,
        _resolution_version(session, context.run),
        tolerance,
        aggregate_tolerance,
    )

    def build() -> DisagreementIndex:
        resolutions = _resolution_kinds(session, context.run)
        entries: list[IndexEntry] = []
        compared = 0
        for subject in run_subjects.labelled_subjects(session, context, version):
            for label in subject.labels:
                candidates = _candidate_rows(
                    context.definition, subject, label, tolerance, aggregate_tolerance
                )
                compared += bool(candidates)
                for candidate in candidates:
                    resolution = resolutions.get((label.id, candidate[0]))
                    if candidate[5] or resolution is not None:
                        entries.append(
                            IndexEntry(
                                subject.rollout_id, subject.subject_key, candidate[0], resolution
                            )
                        )
        counts, by_criterion = _counts(context.definition, entries)
        return DisagreementIndex(
            entries, compared, [e.rollout_id for e in entries], counts, by_criterion
        )

    return stored.remembered(
        session, _INDEXES, FigureKind.DISAGREEMENTS, key, build, judge_run_id=context.run.id
    )


def _counts(
    definition: RubricDefinition, entries: list[IndexEntry]
) -> tuple[dict[str, int], list[tuple[str, str, int, int]]]:
    kinds = Counter(e.resolution for e in entries if e.resolution is not None)
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry in entries:
        per[entry.criterion_key][1] += 1
        per[entry.criterion_key][0] += entry.resolution is None
    names = {c.key: c.name for c in definition.criteria}
    names[AGGREGATE] = "Overall score"
    names[WINNER] = "Preferred response"
    order = [c.key for c in definition.criteria] + [AGGREGATE, WINNER]
    counts = {
        "total": len(entries),
        "open": sum(e.resolution is None for e in entries),
        **{name: kinds.get(name, 0) for name in RESOLUTIONS},
    }
    return counts, [(k, names[k], per[k][0], per[k][1]) for k in order if k in per]


def parse_cursor(cursor: str | None) -> int | None:
    """The keyset cursor of the disagreement list: the last rollout id of the previous page."""
    if cursor is None or cursor == "":
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise InvalidInput("The page cursor is not one this list gave out; start from page one.")
    return int(cursor)


def disagreements(
    session: Session,
    run: JudgeRun,
    *,
    viewer: User,
    tolerance: float = DEFAULT_TOLERANCE,
    aggregate_tolerance: float = DEFAULT_AGGREGATE_TOLERANCE,
    rollout_id: int | None = None,
    cursor: str | None = None,
    page_size: int = PAGE_SIZE,
) -> DisagreementReport:
    """The (label, criterion) pairs where the judge and an expert disagree, plus those resolved
    already, with counts over the whole run. Items the viewer still has to label blind are left
    out (counted). The list is paged by rollout (keyset: rollouts after ``cursor``), ``page_size``
    rollouts a page; with ``rollout_id`` only that rollout is read (the detail page)."""
    _check_tolerances(tolerance, aggregate_tolerance)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"A page holds 1 to {MAX_PAGE_SIZE} rollouts.")
    after = parse_cursor(cursor)
    context = run_subjects.run_context(session, run)
    version = run_subjects.data_version(session, context)
    summary = run_subjects.run_summary(session, context, version)
    blind = label_service.blind_subjects(session, run.project_id, viewer)
    if rollout_id is not None:
        rows, compared, hidden = _rows(
            session, context, [rollout_id], blind, tolerance, aggregate_tolerance
        )
        counts, by_criterion = _counts(
            context.definition,
            [
                IndexEntry(
                    r.subject.rollout_id,
                    r.subject.subject_key,
                    r.criterion_key,
                    r.resolution.resolution if r.resolution else None,
                )
                for r in rows
            ],
        )
        return DisagreementReport(
            summary, rows, counts, by_criterion, compared, hidden, tolerance, aggregate_tolerance
        )
    index = disagreement_index(session, context, version, tolerance, aggregate_tolerance)
    if blind:
        visible = [e for e in index.entries if e.subject_key not in blind]
        hidden_keys = {e.subject_key for e in index.entries if e.subject_key in blind}
        counts, by_criterion = _counts(context.definition, visible)
        start = 0
    else:  # nothing hidden from this viewer: the index's own counts and a binary search
        visible, hidden_keys = index.entries, set()
        counts, by_criterion = dict(index.counts), list(index.by_criterion)
        start = bisect.bisect_right(index.rollout_ids, after) if after is not None else 0
    page: list[int] = []
    next_cursor = None
    for entry in itertools.islice(visible, start, None):
        if after is not None and entry.rollout_id <= after:
            continue
        if page and entry.rollout_id == page[-1]:
            continue
        if len(page) == page_size:
            next_cursor = str(page[-1])
            break
        page.append(entry.rollout_id)
    rows, _, _ = _rows(session, context, page, blind, tolerance, aggregate_tolerance)
    return DisagreementReport(
        summary,
        rows,
        counts,
        by_criterion,
        index.compared_labels,
        len(hidden_keys),
        tolerance,
        aggregate_tolerance,
        cursor=str(after) if after is not None else None,
        next_cursor=next_cursor,
    )


def _rows(
    session: Session,
    context: RunContext,
    rollout_ids: list[int],
    blind: set[str],
    tolerance: float,
    aggregate_tolerance: float,
) -> tuple[list[DisagreementRow], int, int]:
    """The full rows of a few rollouts (their verdicts, labels, resolutions and names only)."""
    if not rollout_ids:
        return [], 0, 0
    found = run_subjects.subjects(session, context, rollout_ids=rollout_ids)
    label_ids = sorted({label.id for subject in found for label in subject.labels})
    resolutions = {
        (r.label_id, r.criterion): r
        for r in session.exec(
            select(DisagreementResolution).where(
                DisagreementResolution.run_id == context.run.id,
                col(DisagreementResolution.label_id).in_(label_ids or [0]),
            )
        ).all()
    }
    external = {
        int(rid or 0): ext
        for rid, ext in session.exec(
            select(Rollout.id, Rollout.external_id).where(col(Rollout.id).in_(rollout_ids))
        ).all()
    }
    rows: list[DisagreementRow] = []
    hidden: set[str] = set()
    compared = 0
    for subject in found:
        for label in subject.labels:
            candidates = _candidate_rows(
                context.definition, subject, label, tolerance, aggregate_tolerance
            )
            compared += bool(candidates)
            for key, name, criterion, human, judge, differs, why, evidence, critique in candidates:
                resolution = resolutions.get((label.id, key))
                if not differs and resolution is None:
                    continue
                if subject.subject_key in blind:
                    hidden.add(subject.subject_key)
                    continue
                rows.append(
                    DisagreementRow(
                        subject=subject,
                        external_id=external.get(subject.rollout_id, str(subject.rollout_id)),
                        label=label,
                        criterion_key=key,
                        criterion_name=name,
                        criterion=criterion,
                        human=human,
                        human_text=label_values.format_value(criterion, human),
                        judge=judge,
                        judge_text=label_values.format_value(criterion, judge),
                        critique=critique,
                        justification=why,
                        evidence=evidence,
                        resolution=resolution,
                        disagrees_now=differs,
                    )
                )
    return rows, compared, len(hidden)


# ---- the document beside the disagreements ----------------------------------------------------


@dataclass
class DocumentView:
    """The rollout's target document with the response's excerpts and the judge's evidence
    marked. Mark indices 0..len(excerpts)-1 are excerpts, the rest evidence quotes."""

    segments: list[highlight.Segment] | None
    items: list[highlight.StructuredItem] | None
    excerpts: list[highlight.ExcerptMatch]
    evidence: list[highlight.ExcerptMatch]

    @property
    def kinds(self) -> dict[int, str]:
        kinds = {m.index: "excerpt" for m in self.excerpts}
        kinds.update({m.index: "evidence" for m in self.evidence})
        return kinds


def rollout_document(rollout: Rollout, report: DisagreementReport) -> dict[str, Any]:
    """Template context for one rollout's document, response and judge evidence."""
    definition = report.summary.definition
    items = highlight.structured_items(rollout.response or "", definition.item_field)
    document = rollout.target_document or ""
    excerpts = highlight.locate_excerpts(document, [i.excerpt or "" for i in items or []])
    quotes: list[str] = []
    for row in report.rows:
        for quote in row.evidence:
            if quote not in quotes:
                quotes.append(quote)
    offset = len(excerpts)
    evidence = [
        highlight.ExcerptMatch(m.index + offset, m.excerpt, m.status, m.spans)
        for m in highlight.locate_excerpts(document, quotes)
    ]
    segments = highlight.segments(document, [*excerpts, *evidence]) if document else None
    return {
        "rollout": rollout,
        "document": DocumentView(segments, items, excerpts, evidence),
        "response_view": queues.ResponseView(rollout, items, excerpts),
    }
