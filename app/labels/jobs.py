"""The worker's label-import handler: a label file imported as a durable job with progress.

It runs on the rollout import's machinery (`app/rollouts/jobs.py`: the job table, the lease,
progress committed with each batch, the problem list, resume after a crash): every line is
checked first (nothing is stored when a line has a problem, unless the import skips invalid
lines), then the labels are written in batches, each committed with the progress, so a page
and the CLI can show how far a large file has come and a crashed import resumes after the last
stored batch (writing a label again stores nothing new).

`run_label_import_once(ctx)` does one import and returns True if there was one to do.
"""

from __future__ import annotations

from pathlib import Path

from app.auth.models import User
from app.core.errors import DomainError
from app.core.jobs import WorkerContext
from app.labels import exchange, transfer
from app.projects.models import Project
from app.rollouts import service as rollout_service
from app.rollouts.formats.common import Problem
from app.rollouts.jobs import LABELS_FORMAT, ImportRunner, run_format_once

STORE_BATCH = 100  # labels written (and committed with the progress) at a time


def run_label_import_once(ctx: WorkerContext) -> bool:
    return run_format_once(ctx, LABELS_FORMAT, LabelImportRunner)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


class LabelImportRunner(ImportRunner):
    """Checks the whole label file, then writes the labels in committed batches."""

    NOUN = "label"
    AUDIT_PREFIX = "label.import"

    def _plan(self, *, report: bool) -> exchange.LabelPlan:
        job = self.job
        text = Path(job.stored_path).read_bytes().decode("utf-8-sig")
        project = self.session.get(Project, job.project_id)
        if project is None:  # pragma: no cover - the job is deleted with its project
            raise RuntimeError("the project of this import was deleted")

        def progress(done: int, total: int) -> None:
            if report and done:
                job.lines_read = done
                job.bytes_read = job.size_bytes * done // max(total, 1)
                self.checkpoint()

        fmt = job.options.get("label_format") or transfer.guess_format(job.filename, text)
        return exchange.plan_labels(
            self.session,
            project,
            rubric_version_id=int(job.options["rubric_version_id"]),
            text=text,
            fmt=fmt,
            on_progress=progress,
        )

    def validate(self) -> bool:
        job = self.job
        job.options = {**job.options, "updated": 0}
        self.start_check("checking every line before importing")
        try:
            plan = self._plan(report=True)
        except UnicodeDecodeError:
            self.add_problem(Problem(None, None, "the file is not UTF-8 text"), "file")
            self.finish(rollout_service.REJECTED, "the file cannot be imported: it is not UTF-8")
            return False
        except DomainError as error:
            self.add_problem(Problem(None, None, error.message), "file")
            self.finish(rollout_service.REJECTED, f"the file cannot be imported: {error.message}")
            return False
        for problem in plan.problems:
            self.add_problem(Problem(problem.line, problem.field, problem.message), "invalid")
        job.invalid = len({p.line for p in plan.problems})
        job.lines_read = plan.records
        job.bytes_read = job.size_bytes
        if plan.problems and not job.skip_invalid:
            self.finish(
                rollout_service.REJECTED,
                f"{_plural(job.invalid, 'line')} of {plan.records} "
                f"{'has' if job.invalid == 1 else 'have'} problems, so nothing was imported. "
                "Fix them and upload the file again, or import it again choosing to skip "
                "invalid lines.",
            )
            return False
        if not plan.planned:
            self.finish(
                rollout_service.REJECTED, "no line of the file can be imported, so nothing was."
            )
            return False
        return True

    def store(self) -> None:
        job = self.job
        job.status = rollout_service.IMPORTING
        job.bytes_read = 0
        job.lines_read = job.resume_line
        job.message = "importing"
        self.checkpoint()
        plan = self._plan(report=False)
        todo = [entry for entry in plan.planned if entry[2].line > job.resume_line]
        actor = self.session.get(User, job.created_by_id) if job.created_by_id else None
        for start in range(0, len(todo), STORE_BATCH):
            batch = todo[start : start + STORE_BATCH]
            result = exchange.ImportResult()
            exchange.store_labels(self.session, batch, result, actor)
            job.inserted += result.created
            job.duplicates += result.unchanged
            job.conflicts += result.skipped
            job.options = {**job.options, "updated": job.options.get("updated", 0) + result.updated}
            for problem in result.problems:
                found = Problem(problem.get("line"), problem.get("field"), problem["message"])
                self.add_problem(found, "conflict")
            job.resume_line = job.lines_read = batch[-1][2].line
            job.bytes_read = job.size_bytes * (start + len(batch)) // len(todo)
            self.checkpoint()
        self.finish(rollout_service.DONE, self.done())

    def done(self) -> str:
        job = self.job
        summary = exchange.ImportResult(
            created=job.inserted,
            updated=int(job.options.get("updated") or 0),
            unchanged=job.duplicates,
            skipped=job.invalid,
        ).summary
        if job.conflicts:
            summary += (
                f"; {_plural(job.conflicts, 'label')} entered in the studio kept (the file does "
                "not overwrite them)"
            )
        return summary
