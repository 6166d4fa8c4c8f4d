"""Label import and export (JSONL / CSV) between the studio and files, for the browser, the API
and the CLI. The file formats themselves are in the pure module `app.labels.transfer`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.config import Settings
from app.core.errors import Conflict, InvalidInput
from app.labels import transfer
from app.labels import values as label_values
from app.labels.models import Label
from app.labels.service import (
    CleanLabel,
    LabelInput,
    LabelTarget,
    annotator_key,
    blind_subjects,
    clean_input,
    definition_of,
    find_label,
    pair_subject,
    refresh_figures,
    rollout_subject,
    write_label,
)
from app.labels.values import LabelStatus, LabelValueError
from app.projects.models import Membership, Project
from app.rollouts import service as rollout_service
from app.rollouts.jobs import LABELS_FORMAT
from app.rollouts.models import Rollout, RolloutImport, RolloutPair
from app.rubrics import service as rubric_service
from app.rubrics.definition import RubricMode
from app.rubrics.models import Rubric, RubricVersion
from app.rubrics.service import VersionChoice

T = TypeVar("T")


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def summary(self) -> str:
        text = f"{self.created} labels imported, {self.updated} updated, {self.unchanged} unchanged"
        return text + (f", {self.skipped} lines skipped" if self.skipped else "")


def _members_by_email(session: Session, project_id: int) -> dict[str, User]:
    rows = session.exec(
        select(User)
        .join(Membership, col(Membership.user_id) == col(User.id))
        .where(Membership.project_id == project_id)
    ).all()
    return {u.email.lower(): u for u in rows}


def _chunks(values: Sequence[T], size: int = 500) -> Iterable[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _rollouts_by_external_id(
    session: Session, project_id: int, external_ids: Sequence[str]
) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(set(external_ids))):
        rows = session.exec(
            select(Rollout.external_id, Rollout.id).where(
                Rollout.project_id == project_id, col(Rollout.external_id).in_(list(chunk))
            )
        ).all()
        found.update({ext: int(rid) for ext, rid in rows if rid is not None})
    return found


def _pairs(session: Session, project_id: int) -> dict[tuple[int, int], int]:
    rows = session.exec(
        select(RolloutPair.rollout_a_id, RolloutPair.rollout_b_id, RolloutPair.id).where(
            RolloutPair.project_id == project_id
        )
    ).all()
    return {(int(a), int(b)): int(p) for a, b, p in rows if p is not None}


PlannedLabel = tuple[LabelTarget, CleanLabel, transfer.LabelRecord]
PROGRESS_EVERY = 200  # records between two progress reports
# Files larger than this are imported as a job with progress from the browser.
JOB_THRESHOLD_BYTES = 64 * 1024


@dataclass
class LabelPlan:
    """A checked label file: the labels to write, in file order, and every problem found."""

    version: RubricVersion
    records: int
    planned: list[PlannedLabel]
    problems: list[transfer.Problem]


def plan_labels(
    session: Session,
    project: Project,
    *,
    rubric_version_id: int,
    text: str,
    fmt: transfer.Format,
    on_progress: Callable[[int, int], None] | None = None,
) -> LabelPlan:
    """Check every line of a label file (reads only). ``on_progress(done, total)`` is told how
    many records have been checked, every PROGRESS_EVERY records."""
    if fmt not in transfer.FORMATS:
        raise InvalidInput(f"The format must be jsonl or csv, got {fmt!r}.")
    version = rubric_service.get_project_version(session, project.id or 0, rubric_version_id)
    definition = definition_of(version)
    project_id = project.id or 0
    records, problems = transfer.parse(text, fmt)
    by_external = _rollouts_by_external_id(
        session,
        project_id,
        [r.rollout for r in records if r.rollout] + [r.rollout_b for r in records if r.rollout_b],
    )
    pairs = _pairs(session, project_id) if definition.mode == RubricMode.preference else {}
    members = _members_by_email(session, project_id)
    planned: list[tuple[LabelTarget, CleanLabel, transfer.LabelRecord]] = []
    seen: dict[tuple[str, str], int] = {}
    for done, record in enumerate(records):
        if on_progress is not None and done % PROGRESS_EVERY == 0:
            on_progress(done, len(records))
        before = len(problems)
        rollout_id = record.rollout_id
        if record.rollout:
            rollout_id = by_external.get(record.rollout)
            if rollout_id is None:
                problems.append(
                    transfer.Problem(
                        record.line, "rollout", f"no rollout {record.rollout!r} in this project"
                    )
                )
        elif rollout_id is not None and session.get(Rollout, rollout_id) is None:
            problems.append(
                transfer.Problem(record.line, "rollout_id", f"no rollout with id {rollout_id}")
            )
            rollout_id = None
        pair_id: int | None = None
        if definition.mode == RubricMode.preference and rollout_id is not None:
            partner = by_external.get(record.rollout_b or "")
            if partner is None:
                problems.append(
                    transfer.Problem(
                        record.line,
                        "rollout_b",
                        "a preference label needs rollout_b, "
                        "the external id of the second response",
                    )
                )
            else:
                pair_id = pairs.get((rollout_id, partner))
                if pair_id is None and (partner, rollout_id) in pairs:
                    # The file names the pair the other way round: flip the winner.
                    pair_id = pairs[(partner, rollout_id)]
                    rollout_id = partner
                    if _valid_preference(record.preference):
                        preference = label_values.parse_preference(record.preference)
                        record.preference = _FLIPPED.get(preference or "", record.preference)
                if pair_id is None:
                    problems.append(
                        transfer.Problem(
                            record.line, "rollout_b", "these two rollouts are not a pair"
                        )
                    )
        try:
            clean = clean_input(
                definition,
                LabelInput(
                    values=record.values,
                    critiques=record.critiques,
                    overall_critique=record.overall_critique,
                    preference=record.preference,
                ),
                complete=False,
                order="AB",
            )
        except InvalidInput as exc:
            for problem in exc.details if isinstance(exc.details, list) else []:
                problems.append(transfer.Problem(record.line, problem["field"], problem["message"]))
            clean = None
        if clean is not None and not clean.values and clean.preference is None:
            problems.append(transfer.Problem(record.line, "values", "the label holds no value"))
        if len(problems) > before or clean is None or rollout_id is None:
            continue
        member = members.get(record.annotator.lower())
        key = annotator_key(member) if member else f"name:{record.annotator}"
        subject = pair_subject(pair_id) if pair_id is not None else rollout_subject(rollout_id)
        if (subject, key) in seen:
            problems.append(
                transfer.Problem(
                    record.line,
                    "annotator",
                    f"a second label by {record.annotator} for the same rollout "
                    f"(first on line {seen[(subject, key)]})",
                )
            )
            continue
        seen[(subject, key)] = record.line
        target = LabelTarget(
            project_id=project_id,
            version_id=version.id or 0,
            rollout_id=rollout_id,
            pair_id=pair_id,
            subject_key=subject,
            annotator_key=key,
            annotator_name=member.label if member else record.annotator,
            annotator_id=member.id if member else None,
            queue_id=None,
            shown_order="AB" if pair_id is not None else "",
        )
        planned.append((target, clean, record))
    return LabelPlan(version, len(records), planned, problems)


def import_labels(
    session: Session,
    project: Project,
    *,
    actor: User | None,
    rubric_version_id: int,
    text: str,
    fmt: transfer.Format,
    skip_invalid: bool = False,
) -> ImportResult:
    """Import labels collected elsewhere under a rubric version, keeping annotator names.

    An annotator that is a project member's email becomes that member; any other name is kept
    as the annotator's name. Every problem is reported with its line and field; unless
    ``skip_invalid``, one problem means nothing is stored. A label someone entered in the studio
    is never overwritten by a file; an imported label is updated (its history kept). A large
    file is better imported as a job with progress (`app/labels/jobs.py`).
    """
    plan = plan_labels(session, project, rubric_version_id=rubric_version_id, text=text, fmt=fmt)
    version, planned, problems = plan.version, plan.planned, plan.problems
    project_id = project.id or 0
    result = ImportResult(problems=[p.as_dict() for p in problems])
    bad_lines = {p.line for p in problems}
    if problems and not skip_invalid:
        raise InvalidInput(
            f"The file has {len(problems)} problems; nothing was imported. First: "
            + "; ".join(f"line {p.line}, {p.field}: {p.message}" for p in problems[:3]),
            details=result.problems[:500],
        )
    result.skipped = len(bad_lines)
    try:
        store_labels(session, planned, result, actor)
        audit_service.record(
            session,
            actor=actor,
            action="label.import",
            object_type="rubric_version",
            object_id=version.id,
            project_id=project_id,
            summary=f"imported labels ({result.summary})",
            details={"format": fmt, "problems": result.problems[:50]},
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("Labels were added meanwhile for the same rollouts; import again.") from None
    return result


def store_labels(
    session: Session,
    planned: Sequence[PlannedLabel],
    result: ImportResult,
    actor: User | None,
) -> None:
    """Write the checked labels (flushes only). A label entered in the studio is never
    overwritten by a file; an imported one is updated with its history kept."""
    written: set[int] = set()
    for target, clean, record in planned:
        existing = find_label(session, target.version_id, target.subject_key, target.annotator_key)
        if existing is not None and existing.source == "ui" and not clean.same_as(existing):
            result.skipped += 1
            result.problems.append(
                {
                    "line": record.line,
                    "field": "annotator",
                    "message": f"{record.annotator} already labelled this rollout in the "
                    "studio; the file does not overwrite it",
                }
            )
            continue
        label, outcome = write_label(
            session,
            target,
            clean,
            submit=True,
            expected_revision=None,
            actor=actor,
            source="import" if existing is None else existing.source,
            reason="imported from a file",
            request_figures=False,
        )
        if outcome == "created" and record.submitted_at is not None:
            label.submitted_at = record.submitted_at
            session.add(label)
        result.created += outcome in ("created", "submitted")
        result.updated += outcome == "updated"
        result.unchanged += outcome == "unchanged"
        if outcome != "unchanged":
            written.add(target.version_id)
    for version_id in sorted(written):
        refresh_figures(session, version_id)  # once per import, for the runs of its rubric


_FLIPPED = {"A": "B", "B": "A", "tie": "tie"}


def _valid_preference(value: str | None) -> bool:
    try:
        label_values.parse_preference(value)
    except LabelValueError:
        return False
    return True


def export_rows(
    session: Session,
    project_id: int,
    *,
    rubric_version_id: int | None = None,
    viewer: User | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Submitted labels as export rows, and the criterion keys (for CSV columns).

    With a ``viewer``, labels on items she still has to label blind are left out (her own
    labels excepted): an export must not reveal a colleague's answer before she gives hers.
    """
    query = (
        select(Label, Rollout, RubricVersion, Rubric)
        .join(Rollout, col(Rollout.id) == col(Label.rollout_id))
        .join(RubricVersion, col(RubricVersion.id) == col(Label.rubric_version_id))
        .join(Rubric, col(Rubric.id) == col(RubricVersion.rubric_id))
        .where(Label.project_id == project_id, Label.status == LabelStatus.submitted)
        .order_by(col(Label.id))
    )
    if rubric_version_id is not None:
        rubric_service.get_project_version(session, project_id, rubric_version_id)
        query = query.where(Label.rubric_version_id == rubric_version_id)
    rows = session.exec(query).all()
    if viewer is not None:
        blind = blind_subjects(session, project_id, viewer)
        mine = annotator_key(viewer)
        rows = [
            row for row in rows if row[0].subject_key not in blind or row[0].annotator_key == mine
        ]
    emails = {
        u.id: u.email
        for u in session.exec(
            select(User).where(col(User.id).in_({label.annotator_id for label, *_ in rows}))
        ).all()
    }
    partners: dict[int, str] = {}
    pair_ids = {label.pair_id for label, *_ in rows if label.pair_id is not None}
    if pair_ids:
        for pair_id, external in session.exec(
            select(RolloutPair.id, Rollout.external_id)
            .join(Rollout, col(Rollout.id) == col(RolloutPair.rollout_b_id))
            .where(col(RolloutPair.id).in_(pair_ids))
        ).all():
            partners[int(pair_id or 0)] = external
    keys: list[str] = []
    out: list[dict[str, Any]] = []
    for label, rollout, version, rubric in rows:
        for key in (c["key"] for c in version.definition.get("criteria", [])):
            if key not in keys:
                keys.append(key)
        row: dict[str, Any] = {
            "rollout": rollout.external_id,
            "rollout_id": rollout.id,
            "annotator": emails.get(label.annotator_id) or label.annotator_name,
            "rubric": rubric.name,
            "rubric_version": version.number,
            "values": label.values,
            "critiques": label.critiques,
            "overall_critique": label.overall_critique,
            "submitted_at": label.submitted_at,
        }
        if label.pair_id is not None:
            row["rollout_b"] = partners.get(label.pair_id)
            row["preference"] = label.preference
            row["shown_order"] = label.shown_order
        out.append(row)
    return out, keys


def export_labels(
    session: Session,
    project_id: int,
    *,
    fmt: transfer.Format,
    rubric_version_id: int | None = None,
    viewer: User | None = None,
) -> str:
    """Submitted labels as JSONL or CSV (blind items of ``viewer`` left out, see export_rows)."""
    if fmt not in transfer.FORMATS:
        raise InvalidInput(f"The format must be jsonl or csv, got {fmt!r}.")
    rows, keys = export_rows(
        session, project_id, rubric_version_id=rubric_version_id, viewer=viewer
    )
    return transfer.to_csv(rows, keys) if fmt == "csv" else transfer.to_jsonl(rows)


@dataclass
class LabelCounts:
    version: VersionChoice
    submitted: int
    drafts: int
    annotators: int


def label_counts(session: Session, project_id: int) -> list[LabelCounts]:
    """Labels per rubric version, for the import/export page."""
    by_version: dict[int, dict[str, int]] = defaultdict(lambda: {"submitted": 0, "draft": 0})
    for version_id, status, n in session.exec(
        select(Label.rubric_version_id, Label.status, func.count())
        .where(Label.project_id == project_id)
        .group_by(col(Label.rubric_version_id), col(Label.status))
    ).all():
        by_version[int(version_id)][status] = int(n)
    annotators = dict(
        session.exec(
            select(Label.rubric_version_id, func.count(func.distinct(Label.annotator_key)))
            .where(Label.project_id == project_id, Label.status == LabelStatus.submitted)
            .group_by(col(Label.rubric_version_id))
        ).all()
    )
    return [
        LabelCounts(
            choice,
            by_version[choice.id]["submitted"],
            by_version[choice.id]["draft"],
            int(annotators.get(choice.id, 0)),
        )
        for choice in rubric_service.version_choices(session, project_id)
    ]


def queue_label_import(
    session: Session,
    settings: Settings,
    project: Project,
    *,
    actor: User | None,
    rubric_version_id: int,
    filename: str,
    source: BinaryIO | None = None,
    path: Path | None = None,
    fmt: str = "auto",
    skip_invalid: bool = False,
    claim_by: str | None = None,
) -> RolloutImport:
    """Queue a label file as a durable import job with progress (`app/labels/jobs.py`); the
    worker checks every line, then writes the labels in committed batches."""
    version = rubric_service.get_project_version(session, project.id or 0, rubric_version_id)
    if fmt not in ("auto", *transfer.FORMATS):
        raise InvalidInput("The format must be jsonl, csv or auto.")
    chosen: str | None = None if fmt == "auto" else fmt
    if chosen is None and Path(filename).suffix.lower() in (".csv", ".jsonl", ".json", ".ndjson"):
        chosen = "csv" if Path(filename).suffix.lower() == ".csv" else "jsonl"
    return rollout_service.create_file_job(
        session,
        settings,
        project,
        actor,
        fmt=LABELS_FORMAT,
        filename=filename,
        options={"rubric_version_id": version.id, "label_format": chosen},
        source=source,
        path=path,
        skip_invalid=skip_invalid,
        claim_by=claim_by,
        action="label.import.create",
        summary=f"started importing labels from {filename} under rubric version {version.id}",
    )
