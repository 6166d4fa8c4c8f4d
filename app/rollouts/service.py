"""Rollouts: start imports (the file is stored, a worker does the work), read import jobs and
their problems, and browse, search and read rollouts. Public functions commit once."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import delete, func, or_, select
from sqlmodel import Session, col

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.csv_safe import safe_csv_rows
from app.core.errors import Conflict, InvalidInput, NotFound
from app.projects.models import Project
from app.rollouts.formats.csv_table import CSV_FIELDS, pick_delimiter, resolve_mapping
from app.rollouts.formats.lines import (
    BLANK_MESSAGE,
    HEAD_BYTES,
    UTF8_BOM,
    check_head,
    read_head,
    too_big_message,
)
from app.rollouts.models import Rollout, RolloutImport, RolloutImportProblem, RolloutPair
from app.rollouts.parsing import FORMATS, FileRejected, ParseOptions, detect_format, iter_parse
from app.rollouts.schemas import ImportPublic

CHUNK_BYTES = 1024 * 1024
FIRST_PROBLEMS = 20  # problems shown with an import job (the problems URL has them all)

# Import statuses; ACTIVE ones are waiting for or being worked on by a worker.
AWAITING_MAPPING = "awaiting_mapping"
QUEUED = "queued"
VALIDATING = "validating"
IMPORTING = "importing"
DONE = "done"
REJECTED = "rejected"
FAILED = "failed"
CANCELLED = "cancelled"
ACTIVE_STATUSES = (QUEUED, VALIDATING, IMPORTING)
FINISHED_STATUSES = (DONE, REJECTED, FAILED, CANCELLED)

# Column names people use for the two fields every CSV needs.
_CSV_GUESSES = {
    "input": ("input", "prompt", "question", "instruction", "query"),
    "response": ("response", "answer", "completion", "output"),
}


class ImportRefused(InvalidInput):
    """The file cannot be imported at all; `details` holds the problem as a list of one."""


def _refused(error: FileRejected) -> ImportRefused:
    return ImportRefused(
        error.message, details=[{"line": error.line, "field": None, "message": error.message}]
    )


# ---------------------------------------------------------------------------- starting imports


@dataclass(frozen=True)
class ImportChoices:
    """What the person chose for an import: format, CSV mapping, and whether to skip bad lines."""

    format: str = "auto"
    skip_invalid: bool = False
    csv_mapping: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InvalidInput(
                f"unknown format '{self.format}'; choose one of: {', '.join(FORMATS)}"
            )
        unknown = [key for key in self.csv_mapping if key not in CSV_FIELDS]
        if unknown:
            raise InvalidInput(
                f"the CSV column mapping names an unknown field '{unknown[0]}'; the fields are: "
                f"{', '.join(CSV_FIELDS)}"
            )


def parse_csv_mapping(text: str | None) -> dict[str, str]:
    """A column mapping given as JSON text ({"input": "Question", ...})."""
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidInput(
            'csv_mapping must be a JSON object like {"input": "Question", "response": "Answer"}'
        ) from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInput(
            "csv_mapping must be a JSON object of field names to column names, like "
            '{"input": "Question", "response": "Answer"}'
        )
    return value


def save_upload(settings: Settings, source: BinaryIO) -> tuple[Path, int]:
    """Copy an upload into the upload folder a chunk at a time; refuse it past the size limit."""
    settings.upload_dir.mkdir(parents=True, exist_ok=True)
    path = settings.upload_dir / f"import-{uuid.uuid4().hex}.upload"
    size = 0
    try:
        with path.open("xb") as out:
            while chunk := source.read(CHUNK_BYTES):
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    raise ImportRefused(too_big_message(settings.max_upload_bytes, None))
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, size


def _precheck(path: Path, filename: str, choices: ImportChoices, browser_mapping: bool) -> str:
    """The file's format, after the checks its first block allows; raises ImportRefused.

    With browser_mapping a CSV file is not checked against a mapping yet: the person chooses
    the columns after seeing the header.
    """
    with path.open("rb") as stream:
        head = read_head(stream)
        try:
            check_head(head)
            if not head.removeprefix(UTF8_BOM).strip() and len(head) < HEAD_BYTES:
                raise FileRejected(BLANK_MESSAGE)
            fmt = choices.format if choices.format != "auto" else detect_format(head, filename)
            if fmt == "csv" and browser_mapping:
                if not csv_header(head):
                    raise FileRejected(BLANK_MESSAGE)
                return fmt
            stream.seek(0)
            options = ParseOptions(format=fmt, csv_mapping=dict(choices.csv_mapping))
            iter_parse(stream, options, filename)  # raises for what the first block shows
        except FileRejected as error:
            raise _refused(error) from None
    return fmt


def csv_header(head: bytes) -> list[str]:
    """The column names of a CSV file from its first block."""
    text = head.removeprefix(UTF8_BOM).decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text), delimiter=pick_delimiter(head))
    for row in reader:
        if any(cell.strip() for cell in row):
            return [cell.strip() for cell in row]
    return []


def suggested_mapping(header: list[str]) -> dict[str, str]:
    """Field -> column preselected in the mapping form: same names, then common synonyms."""
    lowered = {name.lower(): name for name in header}
    mapping: dict[str, str] = {}
    for fieldname in CSV_FIELDS:
        for candidate in _CSV_GUESSES.get(fieldname, (fieldname,)):
            if candidate in lowered:
                mapping[fieldname] = lowered[candidate]
                break
    return mapping


def _job_file(settings: Settings, source: BinaryIO | None, path: Path | None) -> tuple[Path, int]:
    """An upload streamed into the upload folder, or a local file used in place (the CLI)."""
    if path is None:
        if source is None:
            raise InvalidInput("no file was sent")
        return save_upload(settings, source)
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    size = path.stat().st_size
    if size > settings.max_upload_bytes:
        raise ImportRefused(too_big_message(settings.max_upload_bytes, size))
    return path, size


def _lease_to(job: RolloutImport, settings: Settings, worker_id: str) -> None:
    """A job created already leased to the process that runs it inline (the CLI)."""
    job.status = VALIDATING
    job.lease_owner = worker_id
    job.lease_expires_at = utcnow() + timedelta(seconds=settings.lease_seconds)
    job.attempts = 1
    job.started_at = utcnow()


def create_import(
    session: Session,
    settings: Settings,
    project: Project,
    actor: User | None,
    *,
    filename: str,
    source: BinaryIO | None = None,
    path: Path | None = None,
    choices: ImportChoices | None = None,
    browser_mapping: bool = False,
    claim_by: str | None = None,
) -> RolloutImport:
    """Record an import job for a file and queue it for a worker.

    Give `source` (an upload: streamed into the upload folder) or `path` (a local file used in
    place, e.g. by the CLI). Whole-file problems visible in the first block (empty, binary,
    wrong encoding, JSON array, unknown format, missing CSV column) refuse it at once with
    ImportRefused. With browser_mapping, a CSV file waits for its column mapping. With
    claim_by, the job is created already leased to that worker (the CLI runs it inline).
    """
    choices = choices or ImportChoices()
    filename = (Path(filename or "upload").name or "upload")[:500]
    keep_file = path is not None
    path, size = _job_file(settings, source, path)
    try:
        fmt = _precheck(path, filename, choices, browser_mapping)
    except BaseException:
        if not keep_file:
            path.unlink(missing_ok=True)
        raise
    options: dict[str, Any] = {"requested_format": choices.format, "keep_file": keep_file}
    status = QUEUED
    if fmt == "csv":
        options["csv_mapping"] = {k: v for k, v in choices.csv_mapping.items() if v}
        if browser_mapping:
            with path.open("rb") as stream:
                options["csv_header"] = csv_header(read_head(stream))
            status = AWAITING_MAPPING
    job = RolloutImport(
        project_id=project.id or 0,
        created_by_id=actor.id if actor else None,
        filename=filename,
        stored_path=str(path),
        size_bytes=size,
        format=fmt,
        options=options,
        skip_invalid=choices.skip_invalid,
        status=status,
    )
    if claim_by is not None and status == QUEUED:
        _lease_to(job, settings, claim_by)
    session.add(job)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="rollout.import.create",
        object_type="rollout_import",
        object_id=job.id,
        project_id=project.id,
        summary=f"started importing {filename} ({fmt})"
        + (", skipping invalid lines" if choices.skip_invalid else ""),
        details={
            "filename": filename,
            "format": fmt,
            "size_bytes": size,
            "skip_invalid": choices.skip_invalid,
        },
    )
    session.commit()
    return job


def set_csv_mapping(
    session: Session, job: RolloutImport, actor: User, mapping: Mapping[str, str]
) -> RolloutImport:
    """Apply the column mapping chosen for a CSV import and queue it."""
    if job.status != AWAITING_MAPPING:
        raise Conflict("This import is not waiting for a column mapping any more.")
    ImportChoices(csv_mapping=mapping)  # checks the field names
    chosen = {key: value for key, value in mapping.items() if value}
    try:
        resolve_mapping(list(job.options.get("csv_header", [])), chosen)
    except FileRejected as error:
        raise InvalidInput(error.message) from None
    job.options = {**job.options, "csv_mapping": chosen}
    job.status = QUEUED
    session.add(job)
    audit_service.record(
        session,
        actor=actor,
        action="rollout.import.map_columns",
        object_type="rollout_import",
        object_id=job.id,
        project_id=job.project_id,
        summary=f"chose the CSV columns for {job.filename}",
        details={"csv_mapping": chosen},
    )
    session.commit()
    return job


def cancel_import(session: Session, job: RolloutImport, actor: User) -> RolloutImport:
    """Cancel an import nobody has started working on; its file is deleted."""
    if job.status not in (AWAITING_MAPPING, QUEUED):
        raise Conflict("Only an import that has not started yet can be cancelled.")
    job.status = CANCELLED
    job.finished_at = utcnow()
    job.message = "cancelled before it started; nothing was imported"
    session.add(job)
    audit_service.record(
        session,
        actor=actor,
        action="rollout.import.cancel",
        object_type="rollout_import",
        object_id=job.id,
        project_id=job.project_id,
        summary=f"cancelled the import of {job.filename}",
    )
    session.commit()
    remove_upload(job)
    return job


def remove_upload(job: RolloutImport) -> None:
    """Delete the stored upload (never a file the CLI imported in place)."""
    if job.stored_path and not job.options.get("keep_file"):
        with contextlib.suppress(OSError):
            Path(job.stored_path).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- reading imports


def get_import(session: Session, project_id: int, import_id: int) -> RolloutImport:
    job = session.get(RolloutImport, import_id)
    if job is None or job.project_id != project_id:
        raise NotFound("No such import in this project.")
    return job


def list_imports(session: Session, project_id: int, limit: int = 20) -> list[RolloutImport]:
    query = (
        select(RolloutImport)
        .where(col(RolloutImport.project_id) == project_id)
        .order_by(col(RolloutImport.id).desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def list_problems(
    session: Session, import_id: int, *, limit: int = 100, after: int | None = None
) -> list[RolloutImportProblem]:
    query = select(RolloutImportProblem).where(col(RolloutImportProblem.import_id) == import_id)
    if after is not None:
        query = query.where(col(RolloutImportProblem.id) > after)
    query = query.order_by(col(RolloutImportProblem.id)).limit(limit)
    return list(session.scalars(query))


def iter_problems(session: Session, import_id: int) -> Iterator[RolloutImportProblem]:
    """Every problem of an import, in file order, read a page at a time."""
    after: int | None = None
    while True:
        page = list_problems(session, import_id, limit=1000, after=after)
        yield from page
        if len(page) < 1000:
            return
        after = page[-1].id


def problems_as_jsonl(session: Session, import_id: int) -> Iterator[str]:
    for problem in iter_problems(session, import_id):
        row = {
            "line": problem.line,
            "field": problem.field,
            "kind": problem.kind,
            "message": problem.message,
        }
        yield json.dumps(row, ensure_ascii=False) + "\n"


def problems_as_csv(session: Session, import_id: int) -> Iterator[str]:
    rows = (
        [problem.line or "", problem.field or "", problem.kind, problem.message]
        for problem in iter_problems(session, import_id)
    )
    return safe_csv_rows(["line", "field", "kind", "message"], rows)


def import_progress(job: RolloutImport) -> float:
    """0..1 across both phases (checking the whole file, then importing it)."""
    if job.status == DONE:
        return 1.0
    share = min(job.bytes_read / job.size_bytes, 1.0) if job.size_bytes else 0.0
    if job.status == VALIDATING:
        return share / 2
    if job.status == IMPORTING:
        return 0.5 + share / 2
    return 0.0


def import_public(session: Session, job: RolloutImport) -> ImportPublic:
    """An import job as the API shows it (rollout, label, verdict and drift imports alike): its
    first problems and its progress."""
    problems = list_problems(session, job.id or 0, limit=FIRST_PROBLEMS)
    return ImportPublic.of(job, problems, import_progress(job))


def get_rollout(session: Session, project_id: int, rollout_id: int) -> Rollout:
    rollout = session.get(Rollout, rollout_id)
    if rollout is None or rollout.project_id != project_id:
        raise NotFound("No such rollout in this project.")
    return rollout


def pair_partners(session: Session, rollout: Rollout) -> list[tuple[str, Rollout]]:
    """The other halves of the preference pairs this rollout is in: ("A" or "B", rollout)."""
    query = select(RolloutPair).where(
        or_(
            col(RolloutPair.rollout_a_id) == rollout.id,
            col(RolloutPair.rollout_b_id) == rollout.id,
        )
    )
    partners: list[tuple[str, Rollout]] = []
    for pair in session.scalars(query):
        is_a = pair.rollout_a_id == rollout.id
        other = session.get(Rollout, pair.rollout_b_id if is_a else pair.rollout_a_id)
        if other is not None:
            partners.append(("B" if is_a else "A", other))
    return partners


def count_rollouts(session: Session, project_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(Rollout).where(col(Rollout.project_id) == project_id)
        )
        or 0
    )


def delete_problems(
    session: Session, import_id: int, *, kind: str | None = None, after_line: int | None = None
) -> None:
    """Helper for the worker: forget problems before redoing the work that found them."""
    statement = delete(RolloutImportProblem).where(col(RolloutImportProblem.import_id) == import_id)
    if kind is not None:
        statement = statement.where(col(RolloutImportProblem.kind) == kind)
    if after_line is not None:
        statement = statement.where(col(RolloutImportProblem.line) > after_line)
    session.execute(statement)


def create_file_job(
    session: Session,
    settings: Settings,
    project: Project,
    actor: User | None,
    *,
    fmt: str,
    filename: str,
    options: dict[str, Any],
    source: BinaryIO | None = None,
    path: Path | None = None,
    skip_invalid: bool = False,
    claim_by: str | None = None,
    action: str,
    summary: str,
) -> RolloutImport:
    """Record a durable import of another kind of file (labels, verdicts) in the import job
    table and queue it for the worker (or lease it to ``claim_by``, which runs it inline).

    Give ``source`` (an upload, streamed into the upload folder) or ``path`` (a local file used
    in place). The worker handler of ``fmt`` does the rest, with the rollout import's lease,
    progress, problems and resume.
    """
    filename = (Path(filename or "upload").name or "upload")[:500]
    keep_file = path is not None
    path, size = _job_file(settings, source, path)
    if size == 0:
        if not keep_file:
            path.unlink(missing_ok=True)
        raise InvalidInput("The file is empty.")
    job = RolloutImport(
        project_id=project.id or 0,
        created_by_id=actor.id if actor else None,
        filename=filename,
        stored_path=str(path),
        size_bytes=size,
        format=fmt,
        options={**options, "keep_file": keep_file},
        skip_invalid=skip_invalid,
        status=QUEUED,
    )
    if claim_by is not None:
        _lease_to(job, settings, claim_by)
    session.add(job)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action=action,
        object_type="rollout_import",
        object_id=job.id,
        project_id=project.id,
        summary=summary[:1000],
        details={"filename": filename, "format": fmt, "size_bytes": size, **options},
    )
    session.commit()
    return job
