"""The worker's verdict-import handler: a file of external verdicts imported as a durable job.

It runs on the rollout import's machinery (`app/rollouts/jobs.py`: the job table, the lease,
progress committed as the file is read and checked, the problem list, resume): every line is
read and checked first, with progress, and nothing is stored when a line has a problem; then the
external runs (one per judge) are stored in one transaction, which also records their ids on the
job, so an import resumed after a crash never stores them twice.

`run_verdict_import_once(ctx)` does one import and returns True if there was one to do.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import DomainError
from app.core.jobs import WorkerContext
from app.judging import external
from app.judging.models import JudgeRun
from app.projects.models import Project
from app.rollouts import service as rollout_service
from app.rollouts.formats.common import Problem
from app.rollouts.jobs import VERDICTS_FORMAT, ImportRunner, LeaseLost, run_format_once
from app.rollouts.models import RolloutImport

_imports = RolloutImport.__table__  # type: ignore[attr-defined]


def run_verdict_import_once(ctx: WorkerContext) -> bool:
    return run_format_once(ctx, VERDICTS_FORMAT, VerdictImportRunner)


class VerdictImportRunner(ImportRunner):
    """Reads and checks the whole file with progress, then stores its runs at once."""

    NOUN = "verdict"
    AUDIT_PREFIX = "judge_run.import"

    _plan: external.VerdictPlan | None = None

    def _project(self) -> Project:
        project = self.session.get(Project, self.job.project_id)
        if project is None:  # pragma: no cover - the job is deleted with its project
            raise RuntimeError("the project of this import was deleted")
        return project

    def _check(self, *, report: bool) -> external.VerdictPlan:
        job = self.job
        half = job.size_bytes // 2
        with Path(job.stored_path).open("rb") as stream:

            def read(stage: str, count: int) -> None:
                if report and stage == "read":
                    job.lines_read = count
                    job.bytes_read = stream.tell() // 2  # reading is the first half
                    self.checkpoint()

            def checked(done: int, total: int) -> None:
                if report and done:
                    job.lines_read = done
                    job.bytes_read = half + half * done // max(total, 1)
                    self.checkpoint()

            return external.plan_verdicts(
                self.session,
                self._project(),
                rubric_version_id=int(job.options["rubric_version_id"]),
                stream=stream,
                judge_name=job.options.get("judge_name") or None,
                on_progress=read,
                on_checked=checked,
            )

    def validate(self) -> bool:
        job = self.job
        self.start_check("reading and checking every line before importing")
        try:
            plan = self._check(report=True)
        except DomainError as error:
            self.add_problem(Problem(None, None, error.message), "file")
            self.finish(rollout_service.REJECTED, f"the file cannot be imported: {error.message}")
            return False
        job.lines_read = plan.lines
        job.bytes_read = job.size_bytes
        if plan.problems.total:
            for problem in plan.problems.items:
                self.add_problem(
                    Problem(problem.get("line"), problem.get("field"), problem["message"]),
                    "invalid",
                )
            job.invalid = len({p.get("line") for p in plan.problems.items})
            shown = len(plan.problems.items)
            self.finish(
                rollout_service.REJECTED,
                f"{plan.problems.total:,} problem(s) in the file"
                + (f" (the first {shown:,} are listed)" if shown < plan.problems.total else "")
                + ", so nothing was imported. Fix them and upload the file again.",
            )
            return False
        self._plan = plan
        return True

    def store(self) -> None:
        job = self.job
        if job.options.get("run_ids"):  # stored before the worker stopped: only finish
            self.finish(rollout_service.DONE, self.done())
            return
        job.status = rollout_service.IMPORTING
        job.bytes_read = 0
        job.message = f"storing {job.lines_read:,} verdicts"
        self.checkpoint()
        plan = self._plan or self._check(report=False)
        actor = self.session.get(User, job.created_by_id) if job.created_by_id else None

        def record(runs: list[JudgeRun]) -> None:
            # In the runs' own transaction, with the lease checked: stored once, whatever happens.
            renewed = self.session.execute(
                update(_imports)
                .where(_imports.c.id == job.id, _imports.c.lease_owner == self.worker_id)
                .values(lease_expires_at=utcnow() + timedelta(seconds=self.settings.lease_seconds))
            )
            if renewed.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLost()
            job.options = {**job.options, "run_ids": [run.id for run in runs]}
            job.inserted = len(plan.rows)
            job.resume_line = job.lines_read
            job.bytes_read = job.size_bytes
            self.session.add(job)

        external.store_verdicts(
            self.session,
            self._project(),
            actor,
            int(job.options["rubric_version_id"]),
            plan.rows,
            job.filename,
            before_commit=record,
        )
        self.finish(rollout_service.DONE, self.done())

    def done(self) -> str:
        runs = [
            self.session.get(JudgeRun, run_id) for run_id in self.job.options.get("run_ids") or []
        ]
        listed = ", ".join(f"#{run.id} ({run.external_judge_name})" for run in runs if run)
        return f"Imported {self.job.inserted:,} verdicts as external run(s) {listed}"
