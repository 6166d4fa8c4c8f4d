"""The worker's drift-import handler: the rollout import's durable machinery (lease, batches
with progress committed with each batch, resume) running the drift sample parser and storage.

Unlike a rollout import, a drift import reads its file once: each line is checked as its batch
is stored (a training run's million samples are not read twice). A file that turns out to be
refused as a whole (an invalid line without "skip invalid lines", or a file-level problem such
as a cut-off gzip stream) stops storing at once, reads on to report every problem, and the
samples it had stored are removed again (`undo`): when the job ends, nothing of a refused file
is stored, as with the rollout import's checking pass.

`run_drift_import_once(ctx)` does one import and returns True if there was one to do.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.core.jobs import WorkerContext
from app.drift import service as drift_service
from app.drift.bulk import (
    DriftTarget,
    analyze_drift_samples,
    copy_packed,
    storage_problem,
    store_batch,
)
from app.drift.copy_rows import PackedLine, PackTarget, pack_chunk, unpack
from app.drift.models import DriftSample, TrainingRun
from app.drift.records import DriftLine, DriftOptions, StepMap, iter_records
from app.drift.s3 import download_prefix
from app.projects.models import Project
from app.rollouts import service as rollout_service
from app.rollouts.bulk import BatchTarget, refresh_statistics_if_stale
from app.rollouts.formats.common import FileRejected, Problem
from app.rollouts.jobs import ImportRunner, Prefetched, claim_import, process_import
from app.rollouts.models import Rollout

log = logging.getLogger(__name__)

# Lines per stored batch (two COPYs and one commit each), and at most this many bytes of file.
BATCH_LINES = 5000
BATCH_BYTES = 16 * 1024 * 1024
# The file position is read every this many lines (each read is a system call).
TELL_EVERY = 200
# Files from this size on are checked and measured in a pool of processes, spawned (they share
# nothing with this one but the lines sent and the records sent back); a smaller file is not
# worth their start. The lines are read, and the batches stored, here.
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
MAX_PARSE_PROCESSES = 4
# ...and only once this many chunks of lines were checked here: spawning the processes costs
# seconds of CPU (each imports the app), more than checking a few thousand lines, and a file can
# be large for few lines (the demo's 2,000 samples carry the whole contract each: 27 MB).
INLINE_CHUNKS = 20


def parse_processes() -> int:
    """Processes to check lines in: one per core, at most MAX_PARSE_PROCESSES (the database and
    this process's threads mostly wait on each other)."""
    return max(1, min(MAX_PARSE_PROCESSES, os.cpu_count() or 1))


class DeferredPool(Executor):
    """Runs its first `inline` tasks in the calling thread (their futures come back done), and
    starts the real pool, made by `start`, only for the tasks after them."""

    def __init__(self, workers: int, inline: int, start: Callable[[], Executor]) -> None:
        self._max_workers = workers  # read by records.iter_records to bound pending chunks
        self._inline = inline
        self._start = start
        self._pool: Executor | None = None

    @property
    def started(self) -> bool:
        return self._pool is not None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._pool is None and self._inline > 0:
            self._inline -= 1
            future: Future[Any] = Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as error:  # handed to whoever reads the result, as a pool would
                future.set_exception(error)
            return future
        if self._pool is None:
            self._pool = self._start()
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


_samples = DriftSample.__table__  # type: ignore[attr-defined]
_rollouts = Rollout.__table__  # type: ignore[attr-defined]
_runs = TrainingRun.__table__  # type: ignore[attr-defined]


def run_drift_import_once(ctx: WorkerContext) -> bool:
    import_id = claim_import(ctx.engine, ctx.worker_id, ctx.settings.lease_seconds, drift=True)
    if import_id is None:
        return False
    job = process_import(
        ctx.engine,
        ctx.settings,
        import_id,
        ctx.worker_id,
        stop=ctx.stop,
        runner_class=DriftImportRunner,
    )
    if job is not None:
        log.info("drift import %s: %s (%s)", import_id, job.status, job.message)
    return True


class DriftImportRunner(ImportRunner):
    NOUN = "drift sample"
    AUDIT_PREFIX = "drift.import"

    _options: DriftOptions | None = None

    def drift_options(self) -> DriftOptions:
        if self._options is None:
            run = self.session.get(TrainingRun, int(self.job.options["training_run_id"]))
            if run is None:
                raise RuntimeError("the training run of this import was deleted")
            self._options = DriftOptions(
                training_run=run.name,
                step_map=StepMap.from_json(run.step_map),
                max_file_bytes=max(self.settings.max_upload_bytes, 1),
            )
        return self._options

    def open(self) -> BinaryIO:
        s3 = self.job.options.get("s3")
        if s3 and not (self.job.stored_path and Path(self.job.stored_path).is_file()):
            self.job.stored_path, self.job.size_bytes = download_prefix(
                self.settings, s3["bucket"], s3.get("prefix") or ""
            )
            self.job.options = {**self.job.options, "s3_downloaded": True}
            self.session.add(self.job)
            self.session.commit()
        return super().open()

    def parse(self, stream: BinaryIO) -> Iterator[Any]:
        return iter_records(stream, self.drift_options())

    # ------------------------------------------------------------------ one pass

    _fresh = False
    _chunk_parser: Any = None
    _last_bad: int | None = None
    _kept = 0

    def validate(self) -> bool:
        """Start the one pass (there is no separate checking pass): clear what an earlier,
        abandoned attempt found and switch to importing."""
        job = self.job
        rollout_service.delete_problems(self.session, job.id or 0)
        job.bytes_read = job.lines_read = job.invalid = job.problem_count = 0
        job.inserted = job.duplicates = job.conflicts = job.pairs = job.resume_line = 0
        job.repeats = 0
        job.status = rollout_service.IMPORTING
        job.message = "importing: every line is checked as it is stored"
        self._fresh = True
        self.checkpoint()
        return True

    def refusing(self) -> bool:
        """An invalid line was found and the import does not skip them: the file is refused."""
        return bool(self.job.invalid) and not self.job.skip_invalid

    def store(self) -> None:
        job = self.job
        if not self._fresh:
            # Resuming: whatever was found past the last committed batch was rolled back with
            # it; clear anything left there all the same, so nothing is reported twice.
            rollout_service.delete_problems(self.session, job.id or 0, after_line=job.resume_line)
        job.status = rollout_service.IMPORTING
        job.bytes_read = 0
        job.message = "importing: every line is checked as it is stored"
        self.checkpoint()
        target = BatchTarget(job.project_id, job.id, job.filename)
        self.drift_options()  # read here: the reading thread never touches the session
        self._chunk_parser = self.chunk_parser()
        try:
            # The next batch is read and checked in a thread while the database stores this one.
            with Prefetched(self.pieces(), depth=2) as pieces:
                for lines, problems, last_line, position in pieces:
                    self.store_piece(target, lines, problems, last_line, position)
        except FileRejected as error:
            self.add_problem(Problem(error.line, None, error.message), "file")
            self.undo()
            self.finish(
                rollout_service.REJECTED,
                f"the file cannot be imported: {error.message}{self.kept_note()}",
            )
            return
        if self.refusing():
            self.undo()
            self.finish(
                rollout_service.REJECTED,
                f"{job.invalid:,} line{'' if job.invalid == 1 else 's'} of {job.lines_read} "
                f"{'has' if job.invalid == 1 else 'have'} problems, so nothing was imported. "
                "Fix them and upload the file again, or import it again choosing to skip "
                f"invalid lines.{self.kept_note()}",
            )
            return
        if not (job.inserted or job.duplicates or job.conflicts):
            self.finish(
                rollout_service.REJECTED,
                "no line of the file can be imported, so nothing was imported.",
            )
            return
        self.finish(rollout_service.DONE, self.done())

    def pieces(self) -> Iterator[tuple[list[DriftLine], list[Problem], int, int]]:
        """(good lines, problems, last line number, file position) per batch, past the line
        the import stopped at; runs in the reading thread, so it never touches the session."""
        resume_line = self.job.resume_line
        with self.open() as stream:
            pool = self.parse_pool()  # after open: an S3 import knows its size only then
            try:
                yield from self._pieces(stream, resume_line, pool)
            finally:
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)

    def parse_pool(self) -> Executor | None:
        workers = parse_processes()
        if workers < 2 or (self.job.size_bytes or 0) < PARALLEL_MIN_BYTES:
            return None
        return DeferredPool(
            workers,
            INLINE_CHUNKS,
            lambda: ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")),
        )

    def _pieces(
        self, stream: BinaryIO, resume_line: int, pool: Executor | None
    ) -> Iterator[tuple[list[DriftLine], list[Problem], int, int]]:
        lines: list[DriftLine] = []
        problems: list[Problem] = []
        last_line = resume_line
        start = position = 0
        count = 0
        for item in iter_records(stream, self.drift_options(), pool, self._chunk_parser):
            if isinstance(item, Problem):
                if (item.line or 0) <= resume_line:
                    continue
                problems.append(item)
                last_line = max(last_line, item.line or 0)
            else:
                if item.line_no <= resume_line:
                    continue
                last_line = max(last_line, item.line_no)
                problem = self.unstorable(item)
                if problem is None:
                    lines.append(item)
                else:
                    problems.append(problem)
            count += 1
            if count % TELL_EVERY == 0:
                position = stream.tell()
            if (
                len(lines) >= BATCH_LINES
                or len(problems) >= BATCH_LINES
                or position - start >= BATCH_BYTES
            ):
                position = stream.tell()
                yield lines, problems, last_line, position
                lines, problems, start = [], [], position
        if lines or problems:
            yield lines, problems, last_line, stream.tell()

    def chunk_parser(self) -> Any:
        """On PostgreSQL, the good lines come back packed as COPY rows (copy_rows)."""
        if self.session.get_bind().dialect.name != "postgresql":
            return None
        job = self.job
        target = PackTarget(
            job.project_id, int(job.options["training_run_id"]), job.id, job.filename
        )
        return partial(pack_chunk, target=target)

    def store_piece(
        self,
        target: BatchTarget,
        lines: list[DriftLine],
        problems: list[Problem],
        last_line: int,
        position: int,
    ) -> None:
        job = self.job
        for problem in problems:
            if problem.line != self._last_bad or problem.line is None:
                job.invalid += 1
                self._last_bad = problem.line
            self.add_problem(problem, "invalid")
        if lines and not self.refusing():
            self.store_batch(target, lines, position)
        job.resume_line = job.lines_read = max(job.resume_line, last_line)
        job.bytes_read = position
        self.checkpoint()
        self.refresh_statistics()

    def kept_note(self) -> str:
        if not self._kept:
            return ""
        return (
            f" ({self._kept:,} rollouts made from its samples were kept: a queue, label or run "
            "already used them while the file was being read)"
        )

    def undo(self) -> None:
        """Remove what this import stored (the file is refused): its drift samples, and the
        rollouts made for them unless something already uses one (kept, and said so)."""
        job = self.job
        run_id = int(job.options["training_run_id"])
        removed = self.session.execute(
            delete(_samples).where(
                _samples.c.training_run_id == run_id, _samples.c.import_id == job.id
            )
        )
        kept = 0
        try:
            with self.session.begin_nested():
                self.session.execute(
                    delete(_rollouts).where(
                        _rollouts.c.import_id == job.id, _rollouts.c.from_drift.is_(True)
                    )
                )
        except IntegrityError:
            kept = int(
                self.session.scalar(
                    select(func.count())
                    .select_from(_rollouts)
                    .where(_rollouts.c.import_id == job.id, _rollouts.c.from_drift.is_(True))
                )
                or 0
            )
            log.warning("drift import %s refused: %s rollouts in use were kept", job.id, kept)
        if removed.rowcount:  # type: ignore[attr-defined]
            c = _samples.c
            run = select(c.training_run_id).where(c.training_run_id == run_id)
            self.session.execute(
                update(_runs)
                .where(_runs.c.id == run_id)
                .values(
                    sample_count=run.with_only_columns(func.count()).scalar_subquery(),
                    step_min=run.with_only_columns(func.min(c.step)).scalar_subquery(),
                    step_max=run.with_only_columns(func.max(c.step)).scalar_subquery(),
                    data_version=_runs.c.data_version + 1,
                )
            )
        job.inserted = 0
        self._kept = kept
        self.session.commit()

    def unstorable(self, item: Any) -> Problem | None:
        return storage_problem(item) if isinstance(item, DriftLine) else None

    def store_batch(self, target: BatchTarget, batch: list[Any], position: int) -> None:
        job = self.job
        drift_target = DriftTarget(
            job.project_id, int(job.options["training_run_id"]), job.id, job.filename
        )
        if all(isinstance(item, PackedLine) for item in batch):
            outcome, left = copy_packed(self.session, drift_target, batch)
            if left:  # not stored, in a batch that met stored records: the checked way
                options = self.drift_options()
                more = store_batch(self.session, drift_target, [unpack(i, options) for i in left])
                outcome.inserted += more.inserted
                outcome.duplicates += more.duplicates
                outcome.conflicts += more.conflicts
                outcome.looked_up = True
        else:  # some lines could not be packed: the batch goes the way records go
            options = self.drift_options()
            lines = [unpack(i, options) if isinstance(i, PackedLine) else i for i in batch]
            outcome = store_batch(self.session, drift_target, lines)
        job.inserted += outcome.inserted
        job.duplicates += outcome.duplicates
        job.conflicts += len(outcome.conflicts)
        for problem in outcome.conflicts:
            self.add_problem(problem, "conflict")
        self._looked_up = self._looked_up or outcome.looked_up

    _looked_up = False

    def refresh_statistics(self, *, final: bool = False) -> None:
        """After a committed batch: ANALYZE the tables as they double, when batches look
        records up (see rollouts.bulk.refresh_statistics_if_stale); COPY-only batches need no
        planner. final: once at the end, for the dashboard's aggregates."""
        job = self.job
        if final or (self._looked_up and job.inserted >= self.analyze_at):
            # Fresh-table row estimates make the per-batch id lookups scan: refresh them.
            self.analyze_at = job.inserted * 2
            try:
                if not final:
                    refresh_statistics_if_stale(self.session, job.inserted)
                analyze_drift_samples(self.session)
            except SQLAlchemyError:  # e.g. not the tables' owner: imports still work, slower
                self.session.rollback()
                self.analyze_at = sys.maxsize
                log.warning("could not ANALYZE during drift import %s", job.id, exc_info=True)

    def done(self) -> str:
        job = self.job
        run = self.session.get(TrainingRun, int(job.options["training_run_id"]))
        if run is not None and job.inserted:
            self.refresh_statistics(final=True)
            # The dashboard's series and signals are computed here, once (the signals are kept
            # in the database for this data version), so no page waits for them.
            drift_service.series(self.session, run)
            project = self.session.get(Project, run.project_id)
            if project is not None:
                drift_service.signals(self.session, project, run)
        parts = [f"imported {job.inserted:,} drift sample{'' if job.inserted == 1 else 's'}"]
        if job.duplicates:
            parts.append(f"{job.duplicates:,} already imported before (skipped)")
        if job.conflicts:
            parts.append(
                f"{job.conflicts:,} conflict{'' if job.conflicts == 1 else 's'}: a record id "
                "already used with different content (not imported, nothing overwritten)"
            )
        if job.invalid:
            parts.append(f"{job.invalid:,} invalid line{'' if job.invalid == 1 else 's'} skipped")
        return "; ".join(parts)
