"""The worker's rollout-import handler: claim a queued import with a lease, check the whole file,
then store it in batches, committing progress with each batch so a page can poll it and a
crashed import resumes where it stopped.

`run_import_once(ctx)` does one import and returns True if there was one to do.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar

from sqlalchemy import and_, case, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.jobs import WorkerContext
from app.rollouts import service
from app.rollouts.bulk import (
    BatchTarget,
    refresh_statistics_if_stale,
    storage_problem,
    store_batch,
)
from app.rollouts.models import RolloutImport, RolloutImportProblem
from app.rollouts.parsing import FileRejected, ParseOptions, Problem, iter_parse

log = logging.getLogger(__name__)

BATCH_LINES = 1000
BATCH_BYTES = 8 * 1024 * 1024
PROGRESS_EVERY_LINES = 5000
PROGRESS_EVERY_S = 1.0
PROBLEMS_PER_INSERT = 500
MAX_ATTEMPTS = 3
# Planner statistics are refreshed when this many rows were added, and at each doubling.
ANALYZE_AFTER_ROWS = 2000
# Problems kept for the download; a file this broken is counted, not listed further.
MAX_STORED_PROBLEMS = 1_000_000

ProgressCallback = Callable[[RolloutImport], None]
T = TypeVar("T")

_imports = RolloutImport.__table__  # type: ignore[attr-defined]
_problems = RolloutImportProblem.__table__  # type: ignore[attr-defined]


class LeaseLost(Exception):
    """Another worker took the import over (our lease expired); stop without writing."""


class Stopped(Exception):
    """The worker is shutting down; the import is handed back to be resumed."""


def run_import_once(ctx: WorkerContext) -> bool:
    import_id = claim_import(ctx.engine, ctx.worker_id, ctx.settings.lease_seconds)
    if import_id is None:
        return False
    job = process_import(ctx.engine, ctx.settings, import_id, ctx.worker_id, stop=ctx.stop)
    if job is not None:
        log.info("rollout import %s: %s (%s)", import_id, job.status, job.message)
    return True


def run_format_once(ctx: WorkerContext, fmt: str, runner_class: type[ImportRunner]) -> bool:
    """One import of another kind of file (labels, verdicts) sharing the job table."""
    import_id = claim_import(ctx.engine, ctx.worker_id, ctx.settings.lease_seconds, formats=(fmt,))
    if import_id is None:
        return False
    job = process_import(
        ctx.engine, ctx.settings, import_id, ctx.worker_id, stop=ctx.stop, runner_class=runner_class
    )
    if job is not None:
        log.info("%s import %s: %s (%s)", fmt, import_id, job.status, job.message)
    return True


def _claimable(now: Any) -> Any:
    c = _imports.c
    return or_(
        c.status == service.QUEUED,
        and_(
            c.status.in_((service.VALIDATING, service.IMPORTING)),
            or_(c.lease_expires_at.is_(None), c.lease_expires_at < now),
        ),
    )


# Imports of drift samples (app/drift/jobs.py), labels (app/labels/jobs.py) and external verdicts
# (app/judging/import_jobs.py) share the job table; each handler claims its own formats.
DRIFT_FORMAT = "drift"
LABELS_FORMAT = "labels"
VERDICTS_FORMAT = "verdicts"
OTHER_FORMATS = (DRIFT_FORMAT, LABELS_FORMAT, VERDICTS_FORMAT)


def claim_import(
    engine: Engine,
    worker_id: str,
    lease_seconds: float,
    *,
    drift: bool = False,
    formats: tuple[str, ...] | None = None,
) -> int | None:
    """Lease the oldest import that is queued or whose worker stopped renewing its lease.

    drift: claim imports of drift samples (format "drift") instead of rollout imports;
    formats: claim imports of these formats (labels, verdicts).
    """
    now = utcnow()
    c = _imports.c
    if drift:
        formats = (DRIFT_FORMAT,)
    kind = c.format.in_(formats) if formats else c.format.not_in(OTHER_FORMATS)
    with Session(engine) as session:
        query = select(c.id).where(_claimable(now), kind).order_by(c.id).limit(1)
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        import_id = session.scalar(query)
        if import_id is None:
            return None
        # The condition is repeated so that, on SQLite, only one claimer's update matches.
        result = session.execute(
            update(_imports)
            .where(c.id == import_id, _claimable(now))
            .values(
                status=case((c.status == service.QUEUED, service.VALIDATING), else_=c.status),
                lease_owner=worker_id,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                attempts=c.attempts + 1,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return None
        session.commit()
        return int(import_id)


def process_import(
    engine: Engine,
    settings: Settings,
    import_id: int,
    worker_id: str,
    *,
    stop: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
    runner_class: type[ImportRunner] | None = None,
) -> RolloutImport | None:
    """Do (or resume) an import this worker holds the lease of; returns the job as it ended.

    runner_class: the runner of another kind of file using the same job table (drift samples).
    """
    with Session(engine, expire_on_commit=False) as session:
        job = session.get(RolloutImport, import_id)
        if job is None or job.lease_owner != worker_id:
            return job
        runner = (runner_class or ImportRunner)(
            session, settings, job, worker_id, stop, on_progress
        )
        try:
            if job.attempts > MAX_ATTEMPTS:
                runner.finish(
                    service.FAILED,
                    f"the import was interrupted {MAX_ATTEMPTS} times and was given up; the "
                    f"{_plural(job.inserted, runner.NOUN)} stored before that are kept. Upload the "
                    "file again to import the rest (rollouts already stored are not duplicated).",
                )
                return job
            if job.started_at is None:
                job.started_at = utcnow()
            if job.status != service.IMPORTING and not runner.validate():
                return job
            runner.store()
        except LeaseLost:
            session.rollback()
            log.warning("rollout import %s: lease lost to another worker", import_id)
        except Stopped:
            session.rollback()
            runner.release()
        except Exception as error:
            log.exception("rollout import %s failed", import_id)
            session.rollback()
            job = session.get(RolloutImport, import_id)
            if job is not None and job.lease_owner == worker_id:
                runner.job = job
                runner.finish(
                    service.FAILED,
                    f"the import stopped because of an internal error ({type(error).__name__}: "
                    f"{str(error)[:300]}); {_plural(job.inserted, runner.NOUN)} had been stored "
                    "and are kept. The error was logged for the administrators.",
                )
        return job


class ImportRunner:
    """Checks a whole file, then stores it in batches. Another kind of file sharing the job
    table (drift samples) subclasses it and overrides `parse`, `unstorable`, `store_batch`,
    `done` and the names."""

    NOUN = "rollout"
    AUDIT_PREFIX = "rollout.import"

    def __init__(
        self,
        session: Session,
        settings: Settings,
        job: RolloutImport,
        worker_id: str,
        stop: threading.Event | None,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.job = job
        self.worker_id = worker_id
        self.stop = stop
        self.on_progress = on_progress
        self.pending: list[dict[str, Any]] = []
        self.analyze_at = ANALYZE_AFTER_ROWS

    # ------------------------------------------------------------------ shared

    def options(self) -> ParseOptions:
        return ParseOptions(
            format=self.job.format,
            csv_mapping=dict(self.job.options.get("csv_mapping") or {}),
            max_file_bytes=max(self.settings.max_upload_bytes, 1),
        )

    def open(self) -> BinaryIO:
        return Path(self.job.stored_path).open("rb")

    def checkpoint(self) -> None:
        """Commit progress (and the work done with it) if the lease is still ours."""
        self.flush_problems()
        job = self.job
        now = utcnow()
        renewed = self.session.execute(
            update(_imports)
            .where(_imports.c.id == job.id, _imports.c.lease_owner == self.worker_id)
            .values(lease_expires_at=now + timedelta(seconds=self.settings.lease_seconds))
        )
        if renewed.rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost()
        self.session.add(job)
        self.session.commit()
        if self.on_progress:
            self.on_progress(job)
        if self.stop is not None and self.stop.is_set():
            raise Stopped()

    def start_check(self, message: str) -> None:
        """Phase 1 starts (again) from nothing: no problems, every count at 0; committed."""
        job = self.job
        service.delete_problems(self.session, job.id or 0)
        job.status = service.VALIDATING
        job.bytes_read = job.lines_read = job.invalid = job.problem_count = 0
        job.inserted = job.duplicates = job.conflicts = job.pairs = job.resume_line = 0
        job.repeats = 0
        job.message = message
        self.checkpoint()

    def add_problem(self, problem: Problem, kind: str) -> None:
        self.job.problem_count += 1
        if self.job.problem_count <= MAX_STORED_PROBLEMS:
            self.pending.append(
                {
                    "import_id": self.job.id,
                    "kind": kind,
                    "line": problem.line,
                    "field": problem.field[:300] if problem.field else None,
                    "message": problem.message,
                }
            )
        if len(self.pending) >= PROBLEMS_PER_INSERT:
            self.flush_problems()

    def flush_problems(self) -> None:
        if self.pending:
            self.session.execute(insert(_problems), self.pending)
            self.pending = []

    def release(self) -> None:
        """Hand the import back (worker shutting down): another worker resumes it at once."""
        self.session.execute(
            update(_imports)
            .where(_imports.c.id == self.job.id, _imports.c.lease_owner == self.worker_id)
            .values(lease_owner=None, lease_expires_at=None)
        )
        self.session.commit()

    def finish(self, status: str, message: str) -> None:
        job = self.job
        self.flush_problems()
        job.status = status
        job.message = message
        job.finished_at = utcnow()
        job.lease_owner = None
        job.lease_expires_at = None
        self.session.add(job)
        actor = self.session.get(User, job.created_by_id) if job.created_by_id else None
        audit_service.record(
            self.session,
            actor=actor,
            action=f"{self.AUDIT_PREFIX}.{status}",
            object_type="rollout_import",
            object_id=job.id,
            project_id=job.project_id,
            summary=f"{job.filename}: {message}"[:1000],
            details={
                "filename": job.filename,
                "format": job.format,
                "skip_invalid": job.skip_invalid,
                "csv_mapping": job.options.get("csv_mapping"),
                "lines": job.lines_read,
                "inserted": job.inserted,
                "duplicates": job.duplicates,
                "repeats": job.repeats,
                "conflicts": job.conflicts,
                "invalid_lines": job.invalid,
                "pairs": job.pairs,
            },
        )
        self.session.commit()
        service.remove_upload(job)
        if self.on_progress:
            self.on_progress(job)

    # ------------------------------------------------------------------ the kind of file

    def parse(self, stream: BinaryIO) -> Iterator[Any]:
        """Good lines (objects with `line_no`) and Problems; raises FileRejected."""
        return iter_parse(stream, self.options(), self.job.filename)

    def unstorable(self, item: Any) -> Problem | None:
        """A problem the databases would have with a good line (see bulk.storage_problem)."""
        return storage_problem(item)

    def done(self) -> str:
        return done_message(self.job)

    # ------------------------------------------------------------------ phase 1: check

    def validate(self) -> bool:
        """Read the whole file and record every problem; False when the import is refused."""
        job = self.job
        self.start_check("checking every line before importing")
        valid_lines = 0
        last_bad_line: int | None = None
        since_checkpoint = 0
        last_checkpoint = time.monotonic()
        with self.open() as stream:
            try:
                for item in self.parse(stream):
                    if not isinstance(item, Problem):
                        problem = self.unstorable(item)
                        if problem is None:
                            valid_lines += 1
                            job.lines_read = item.line_no
                        else:
                            item = problem
                    if isinstance(item, Problem):
                        if item.line != last_bad_line or item.line is None:
                            job.invalid += 1
                            last_bad_line = item.line
                        job.lines_read = max(job.lines_read, item.line or 0)
                        self.add_problem(item, "invalid")
                    since_checkpoint += 1
                    if since_checkpoint >= PROGRESS_EVERY_LINES or (
                        time.monotonic() - last_checkpoint >= PROGRESS_EVERY_S
                    ):
                        job.bytes_read = stream.tell()
                        self.checkpoint()
                        since_checkpoint, last_checkpoint = 0, time.monotonic()
            except FileRejected as error:
                self.add_problem(Problem(error.line, None, error.message), "file")
                job.bytes_read = stream.tell()
                self.finish(service.REJECTED, f"the file cannot be imported: {error.message}")
                return False
            job.bytes_read = stream.tell()
        if job.invalid and not job.skip_invalid:
            self.finish(
                service.REJECTED,
                f"{_plural(job.invalid, 'line')} of {job.lines_read} "
                f"{'has' if job.invalid == 1 else 'have'} problems, so nothing was imported. "
                "Fix them and upload the file again, or import it again choosing to skip "
                "invalid lines.",
            )
            return False
        if not valid_lines:
            self.finish(
                service.REJECTED, "no line of the file can be imported, so nothing was imported."
            )
            return False
        return True

    # ------------------------------------------------------------------ phase 2: store

    def store(self) -> None:
        job = self.job
        if job.status == service.IMPORTING:
            # Resuming: conflicts past the last stored batch were rolled back with it.
            for kind in ("conflict", "duplicate"):
                service.delete_problems(
                    self.session, job.id or 0, kind=kind, after_line=job.resume_line
                )
        job.status = service.IMPORTING
        job.bytes_read = 0
        job.message = "importing"
        self.checkpoint()
        target = BatchTarget(job.project_id, job.id, job.filename)
        # The next batch is parsed in a thread while the database stores this one.
        with Prefetched(self.batches(), depth=2) as batches:
            for batch, position in batches:
                self.store_batch(target, batch, position)
        self.finish(service.DONE, self.done())

    def batches(self) -> Iterator[tuple[list[Any], int]]:
        """The lines still to store, in batches, each with the file position after it."""
        resume_line = self.job.resume_line
        # Without invalid lines the check found nothing unstorable either: skip redoing it.
        recheck = self.job.invalid > 0
        batch: list[Any] = []
        with self.open() as stream:
            batch_start = 0
            for item in self.parse(stream):
                if isinstance(item, Problem) or item.line_no <= resume_line:
                    continue
                if recheck and self.unstorable(item) is not None:
                    continue  # reported by the check
                batch.append(item)
                if len(batch) >= BATCH_LINES or stream.tell() - batch_start >= BATCH_BYTES:
                    yield batch, stream.tell()
                    batch, batch_start = [], stream.tell()
            if batch:
                yield batch, stream.tell()

    def store_batch(self, target: BatchTarget, batch: list[Any], position: int) -> None:
        job = self.job
        outcome = store_batch(self.session, target, batch)
        job.inserted += outcome.inserted
        job.duplicates += outcome.duplicates
        job.pairs += outcome.pairs
        job.conflicts += len(outcome.conflicts)
        job.repeats += len(outcome.repeats)
        found = [(p, "conflict") for p in outcome.conflicts]
        found += [(p, "duplicate") for p in outcome.repeats]
        for problem, kind in sorted(found, key=lambda item: item[0].line or 0):
            self.add_problem(problem, kind)
        job.resume_line = job.lines_read = batch[-1].line_no
        job.bytes_read = position
        self.checkpoint()
        if job.inserted >= self.analyze_at:
            self.analyze_at = job.inserted * 2
            try:
                refresh_statistics_if_stale(self.session, job.inserted)
            except SQLAlchemyError:  # e.g. not the table's owner: imports still work, slower
                self.session.rollback()
                self.analyze_at = sys.maxsize
                log.warning("could not ANALYZE rollout during import %s", job.id, exc_info=True)


class Prefetched(Generic[T]):
    """Runs an iterator in a thread, up to `depth` items ahead of its consumer.

    Parsing is Python work and storing mostly waits on the database (which releases the GIL),
    so the two overlap. An error in the iterator is raised in the consumer.
    """

    _END = object()

    def __init__(self, source: Iterator[T], depth: int = 2) -> None:
        self._source = source
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="import-parser", daemon=True)

    def __enter__(self) -> Prefetched[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        while self._thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
            self._thread.join(timeout=0.05)

    def _put(self, item: Any) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(("item", item)):
                    return
            self._put(("end", None))
        except BaseException as error:  # handed to the consumer, raised there
            self._put(("error", error))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, value = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value


def done_message(job: RolloutImport) -> str:
    parts = [f"imported {_plural(job.inserted, 'rollout')}"]
    if job.pairs:
        parts.append(f"{_plural(job.pairs, 'preference pair')} created")
    before = job.duplicates - job.repeats
    if before:
        parts.append(f"{_plural(before, 'rollout')} already imported before (skipped)")
    if job.repeats:
        parts.append(
            f"{_plural(job.repeats, 'line')} repeating an earlier line of this file (skipped; "
            "each problem names the line it repeats)"
        )
    if job.conflicts:
        parts.append(
            f"{_plural(job.conflicts, 'conflict')}: an id already used with different content "
            "(not imported, nothing overwritten)"
        )
    if job.invalid:
        parts.append(f"{_plural(job.invalid, 'invalid line')} skipped as chosen")
    return "; ".join(parts)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def run_inline(
    engine: Engine,
    settings: Settings,
    import_id: int,
    worker_id: str,
    on_progress: ProgressCallback | None = None,
    runner_class: type[ImportRunner] | None = None,
) -> RolloutImport | None:
    """Run an import this process created already leased (the CLI and the demo loader)."""
    return process_import(
        engine, settings, import_id, worker_id, on_progress=on_progress, runner_class=runner_class
    )


_ImportRunner = ImportRunner  # the name tests patch
