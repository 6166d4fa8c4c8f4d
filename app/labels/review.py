"""Disagreement review: a judge run's verdicts next to the experts' labels, the items where they
differ, and the experts' resolutions (judge wrong / label wrong / criterion ambiguous).

`run_data` (verdicts paired with labels) is also what the agreement figures are computed from.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.agreement.pairwise import Outcome
from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.judging.models import JudgeRun, Verdict
from app.labels import highlight, queues
from app.labels import service as label_service
from app.labels import values as label_values
from app.labels.models import DisagreementResolution, Label
from app.labels.values import AGGREGATE, JudgeReading
from app.rollouts.models import Rollout, RolloutPair
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
_CHUNK = 500


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


# ---- verdicts paired with labels --------------------------------------------------------------


@dataclass
class RunSubject:
    """One judged rollout (or pair) of a run with the experts' labels on it."""

    subject_key: str
    rollout_id: int
    pair_id: int | None
    rollout_b_id: int | None
    reading: JudgeReading
    labels: list[Label] = field(default_factory=list)


@dataclass
class RunData:
    run: JudgeRun
    version: RubricVersion
    rubric: Rubric
    definition: RubricDefinition
    subjects: dict[str, RunSubject]

    @property
    def version_label(self) -> str:
        return f"{self.rubric.name} v{self.version.number}"

    @property
    def judge_errors(self) -> int:
        return sum(not s.reading.ok for s in self.subjects.values())

    @property
    def labelled(self) -> list[RunSubject]:
        return [s for s in self.subjects.values() if s.labels]


def _reading(definition: RubricDefinition, verdict: Verdict) -> JudgeReading:
    return label_values.read_verdict(
        definition,
        scores=verdict.scores,
        answer=verdict.answer,
        aggregate=verdict.aggregate,
        normalized=verdict.normalized,
        winner=verdict.winner,
        parse_status=verdict.parse_status,
        error=verdict.error,
    )


def _usable(verdict: Verdict) -> bool:
    return verdict.parse_status in label_values.OK_PARSE_STATUSES


def rubric_readings(
    definition: RubricDefinition, verdicts: list[Verdict]
) -> dict[str, tuple[int, None, JudgeReading]]:
    by_rollout: dict[int, list[Verdict]] = defaultdict(list)
    for verdict in verdicts:
        if verdict.pair_id is None:
            by_rollout[verdict.rollout_id].append(verdict)
    readings: dict[str, tuple[int, None, JudgeReading]] = {}
    for rollout_id, group in by_rollout.items():
        # The first usable repeat speaks for the run (repeats are for self-consistency).
        group.sort(key=lambda v: (not _usable(v), v.repeat))
        readings[label_service.rollout_subject(rollout_id)] = (
            rollout_id,
            None,
            _reading(definition, group[0]),
        )
    return readings


def _pair_readings(
    definition: RubricDefinition, verdicts: list[Verdict]
) -> dict[str, tuple[int, int, JudgeReading]]:
    by_pair: dict[int, dict[int, dict[str, Verdict]]] = defaultdict(lambda: defaultdict(dict))
    rollout_a: dict[int, int] = {}
    for verdict in verdicts:
        if verdict.pair_id is None:
            continue
        rollout_a[verdict.pair_id] = verdict.rollout_id
        if _usable(verdict):
            by_pair[verdict.pair_id][verdict.repeat][verdict.order_shown] = verdict
    readings: dict[str, tuple[int, int, JudgeReading]] = {}
    for pair_id in rollout_a:
        repeats = by_pair.get(pair_id)
        if not repeats:
            reading = JudgeReading(False, {}, None, None, error="the judge gave no usable verdict")
        else:
            orders = {
                order: _reading(definition, verdict)
                for order, verdict in repeats[min(repeats)].items()
            }
            if "AB" in orders or "BA" in orders:
                first = orders.get("AB") or orders["BA"]
                winner = label_values.combined_winner(orders.get("AB"), orders.get("BA"))
            else:
                # A verdict imported already combined over both orders; reviews and the
                # MT-Bench figures count an inconsistent one as a tie (the pairwise figures
                # read it from the verdict as it is stored).
                first = orders[""]
                winner = "tie" if first.winner == Outcome.INCONSISTENT else first.winner
            reading = dataclasses.replace(first, winner=winner)
        readings[label_service.pair_subject(pair_id)] = (rollout_a[pair_id], pair_id, reading)
    return readings


def chosen_labels(labels: list[Label], preferred_version: int) -> dict[str, list[Label]]:
    """One label per (subject, annotator): the one on the run's version, else the newest."""
    best: dict[tuple[str, str], Label] = {}
    for label in labels:
        key = (label.subject_key, label.annotator_key)
        current = best.get(key)
        rank = (label.rubric_version_id == preferred_version, label.updated_at)
        if current is None or rank > (
            current.rubric_version_id == preferred_version,
            current.updated_at,
        ):
            best[key] = label
    grouped: dict[str, list[Label]] = defaultdict(list)
    for label in sorted(best.values(), key=lambda item: (item.annotator_name, item.id or 0)):
        grouped[label.subject_key].append(label)
    return grouped


def run_data(session: Session, run: JudgeRun) -> RunData:
    """Every subject the run judged, with its verdict reading and the submitted labels on it
    (labels on any version of the same rubric count, matched by criterion key)."""
    version = session.get(RubricVersion, run.rubric_version_id)
    rubric = session.get(Rubric, version.rubric_id) if version else None
    if version is None or rubric is None:  # pragma: no cover - foreign keys keep them
        raise NotFound("The run's rubric version no longer exists.")
    definition = label_service.definition_of(version)
    verdicts = list(session.exec(select(Verdict).where(Verdict.run_id == run.id)).all())
    readings: dict[str, tuple[int, int | None, JudgeReading]] = {}
    if definition.mode == "preference":
        readings.update(_pair_readings(definition, verdicts))
    else:
        readings.update(rubric_readings(definition, verdicts))
    partners: dict[int, int] = {}
    pair_ids = [p for _, p, _ in readings.values() if p is not None]
    for start in range(0, len(pair_ids), _CHUNK):
        for pair_id, b_id in session.exec(
            select(RolloutPair.id, RolloutPair.rollout_b_id).where(
                col(RolloutPair.id).in_(pair_ids[start : start + _CHUNK])
            )
        ).all():
            partners[int(pair_id or 0)] = int(b_id)
    siblings = label_service.sibling_version_ids(session, version)
    keys = list(readings)
    labels: list[Label] = []
    for start in range(0, len(keys), _CHUNK):
        labels.extend(
            session.exec(
                select(Label).where(
                    col(Label.rubric_version_id).in_(siblings),
                    Label.status == "submitted",
                    col(Label.subject_key).in_(keys[start : start + _CHUNK]),
                )
            ).all()
        )
    grouped = chosen_labels(labels, version.id or 0)
    subjects = {
        key: RunSubject(
            subject_key=key,
            rollout_id=rollout_id,
            pair_id=pair_id,
            rollout_b_id=partners.get(pair_id) if pair_id is not None else None,
            reading=reading,
            labels=grouped.get(key, []),
        )
        for key, (rollout_id, pair_id, reading) in sorted(
            readings.items(), key=lambda entry: entry[1][0]
        )
    }
    return RunData(run, version, rubric, definition, subjects)


# ---- disagreements ----------------------------------------------------------------------------


@dataclass
class DisagreementRow:
    subject: RunSubject
    external_id: str
    label: Label
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


@dataclass
class DisagreementReport:
    data: RunData
    rows: list[DisagreementRow]
    counts: dict[str, int]
    by_criterion: list[tuple[str, str, int, int]]  # key, name, open, total
    compared_labels: int
    hidden: int
    tolerance: float
    aggregate_tolerance: float

    @property
    def rollout_ids(self) -> list[int]:
        return sorted({row.subject.rollout_id for row in self.rows})


def _candidate_rows(
    data: RunData, subject: RunSubject, label: Label, tolerance: float, agg_tolerance: float
) -> list[tuple[str, str, Criterion | None, Any, Any, bool, list[str], list[str], str]]:
    """(key, name, criterion, human, judge, disagrees, justification, evidence, critique) for
    every comparable criterion of one label."""
    definition = data.definition
    reading = subject.reading
    out: list[tuple[str, str, Criterion | None, Any, Any, bool, list[str], list[str], str]] = []
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
    aggregate = label_values.label_aggregate(definition, values)
    if has_scale and aggregate is not None and reading.normalized is not None:
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


def disagreements(
    session: Session,
    run: JudgeRun,
    *,
    viewer: User,
    tolerance: float = DEFAULT_TOLERANCE,
    aggregate_tolerance: float = DEFAULT_AGGREGATE_TOLERANCE,
    rollout_id: int | None = None,
) -> DisagreementReport:
    """Every (label, criterion) where the judge and an expert disagree, plus those resolved
    already, with counts. Items the viewer still has to label blind are left out (counted)."""
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise InvalidInput("The tolerance must be a number of scale points, 0 or more.")
    if not (math.isfinite(aggregate_tolerance) and 0 <= aggregate_tolerance <= 1):
        raise InvalidInput("The overall-score tolerance must be between 0 and 1.")
    data = run_data(session, run)
    blind = label_service.blind_subjects(session, run.project_id, viewer)
    resolutions = {
        (r.label_id, r.criterion): r
        for r in session.exec(
            select(DisagreementResolution).where(DisagreementResolution.run_id == run.id)
        ).all()
    }
    subjects = [
        s
        for s in data.subjects.values()
        if s.labels and (rollout_id is None or s.rollout_id == rollout_id)
    ]
    external = _external_ids(session, [s.rollout_id for s in subjects])
    rows: list[DisagreementRow] = []
    hidden: set[str] = set()
    compared = 0
    for subject in subjects:
        for label in subject.labels:
            candidates = _candidate_rows(data, subject, label, tolerance, aggregate_tolerance)
            compared += bool(candidates)
            for key, name, criterion, human, judge, differs, why, evidence, critique in candidates:
                resolution = resolutions.get((label.id or 0, key))
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
    counts = Counter(row.resolution.resolution for row in rows if row.resolution is not None)
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    names: dict[str, str] = {}
    for row in rows:
        names[row.criterion_key] = row.criterion_name
        per[row.criterion_key][1] += 1
        per[row.criterion_key][0] += row.resolution is None
    order = [c.key for c in data.definition.criteria] + [AGGREGATE, WINNER]
    return DisagreementReport(
        data=data,
        rows=rows,
        counts={
            "total": len(rows),
            "open": sum(row.resolution is None for row in rows),
            **{name: counts.get(name, 0) for name in RESOLUTIONS},
        },
        by_criterion=[(k, names[k], per[k][0], per[k][1]) for k in order if k in per],
        compared_labels=compared,
        hidden=len(hidden),
        tolerance=tolerance,
        aggregate_tolerance=aggregate_tolerance,
    )


def _external_ids(session: Session, rollout_ids: list[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for start in range(0, len(rollout_ids), _CHUNK):
        for rid, ext in session.exec(
            select(Rollout.id, Rollout.external_id).where(
                col(Rollout.id).in_(rollout_ids[start : start + _CHUNK])
            )
        ).all():
            found[int(rid or 0)] = ext
    return found


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
    definition = report.data.definition
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
