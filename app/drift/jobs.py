"""The worker's drift-import handler: the rollout import's durable machinery (lease, whole-file
check, batches with progress, resume) running the drift sample parser and storage.

`run_drift_import_once(ctx)` does one import and returns True if there was one to do.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.exc import SQLAlchemyError

from app.core.jobs import WorkerContext
from app.drift import service as drift_service
from app.drift.bulk import (
    DriftOutcome,
    DriftTarget,
    analyze_drift_samples,
    storage_problem,
    store_batch,
)
from app.drift.models import TrainingRun
from app.drift.records import DriftLine, DriftOptions, StepMap, iter_records
from app.drift.s3 import download_prefix
from app.rollouts import service as rollout_service
from app.rollouts.bulk import BatchTarget, refresh_statistics_if_stale
from app.rollouts.formats.common import Problem
from app.rollouts.jobs import ImportRunner, claim_import, process_import

log = logging.getLogger(__name__)


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
        options = self.drift_options()
        if self.job.status == rollout_service.VALIDATING:
            options = replace(options, check_only=True)
        return iter_records(stream, options)

    def unstorable(self, item: Any) -> Problem | None:
        return storage_problem(item) if isinstance(item, DriftLine) else None

    def store_batch(self, target: BatchTarget, batch: list[Any], position: int) -> None:
        job = self.job
        drift_target = DriftTarget(
            job.project_id, int(job.options["training_run_id"]), job.id, job.filename
        )
        outcome: DriftOutcome = store_batch(self.session, drift_target, batch)
        job.inserted += outcome.inserted
        job.duplicates += outcome.duplicates
        job.conflicts += len(outcome.conflicts)
        for problem in outcome.conflicts:
            self.add_problem(problem, "conflict")
        job.resume_line = job.lines_read = batch[-1].line_no
        job.bytes_read = position
        self.checkpoint()
        if job.inserted >= self.analyze_at:
            # Fresh-table row estimates make the per-batch id lookups scan: refresh them.
            self.analyze_at = job.inserted * 2
            try:
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
            # The dashboard's series is computed here, once, so no page waits for it.
            drift_service.series(self.session, run)
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
