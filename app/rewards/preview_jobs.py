"""Reward previews too large for a request: recorded as a job, computed by the worker a batch at
a time with progress, and read back from the stored result.

A selection of up to ``INLINE_LIMIT`` rollouts is previewed inside the request; a larger one
(up to ``MAX_PREVIEW_ROLLOUTS``) becomes a `RewardPreviewJob`.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import InvalidInput, NotFound
from app.judging.models import JudgeRun
from app.projects.models import Project
from app.rewards import service as reward_service
from app.rewards.models import PreviewJobStatus, RewardPreviewJob
from app.rewards.outcomes import ComponentSummary, HistogramBin, RewardPreview, RolloutReward
from app.rewards.service import MAX_PREVIEW_ROLLOUTS, PreviewSelection

INLINE_LIMIT = 1_000  # rollouts previewed inside a request; more go to the worker


@dataclasses.dataclass
class PreviewPlan:
    """What a preview request gets: the preview itself, or the size that needs a job."""

    preview: RewardPreview | None
    size: int


def plan_preview(session: Session, project: Project, selection: PreviewSelection) -> PreviewPlan:
    """The preview when the selection is small enough for a request, else its size (a job is
    then started by ``start_job``)."""
    reward_service.get_run(session, project.id or 0, selection.run_id)
    if selection.sample is not None and selection.sample > MAX_PREVIEW_ROLLOUTS:
        raise InvalidInput(f"A sample holds at most {MAX_PREVIEW_ROLLOUTS:,} rollouts.")
    ids = reward_service.select_rollout_ids(session, project.id or 0, selection)
    if len(ids) > INLINE_LIMIT:
        return PreviewPlan(None, len(ids))
    return PreviewPlan(reward_service.compute_preview(session, project, selection, ids), len(ids))


def start_job(
    session: Session, project: Project, selection: PreviewSelection, actor: User
) -> RewardPreviewJob:
    """Record a preview for the worker (the selection is checked now, its limit included)."""
    reward_service.get_run(session, project.id or 0, selection.run_id)
    if selection.sample is not None and selection.sample > MAX_PREVIEW_ROLLOUTS:
        raise InvalidInput(f"A sample holds at most {MAX_PREVIEW_ROLLOUTS:,} rollouts.")
    size = len(reward_service.select_rollout_ids(session, project.id or 0, selection))
    job = RewardPreviewJob(
        project_id=project.id or 0,
        run_id=selection.run_id,
        selection=dataclasses.asdict(selection),
        total=size,
        created_by_id=actor.id,
    )
    session.add(job)
    session.commit()
    return job


def get_job(session: Session, project_id: int, job_id: int) -> RewardPreviewJob:
    job = session.get(RewardPreviewJob, job_id)
    if job is None or job.project_id != project_id:
        raise NotFound(f"No reward preview with id {job_id} in this project.")
    return job


def job_selection(job: RewardPreviewJob) -> PreviewSelection:
    return PreviewSelection(**job.selection)


def job_preview(session: Session, job: RewardPreviewJob) -> RewardPreview | None:
    """The stored result of a finished job."""
    if job.status != PreviewJobStatus.done or job.result is None:
        return None
    run = session.get(JudgeRun, job.run_id)
    if run is None:  # pragma: no cover - the job is deleted with its run
        raise NotFound("The preview's judge run no longer exists.")
    return preview_from_json(run, job.result)


def preview_to_json(preview: RewardPreview) -> dict[str, Any]:
    return {
        "rows": [
            [r.rollout_id, r.external_id, r.group_key, r.step, r.outcome] for r in preview.rows
        ],
        "missing_verdicts": preview.missing_verdicts,
        "histogram": [dataclasses.asdict(b) for b in preview.histogram],
        "components": [dataclasses.asdict(c) for c in preview.components],
        "judge_ok": preview.judge_ok,
        "judge_errors": preview.judge_errors,
        "gated": preview.gated,
        "mean": preview.mean,
        "minimum": preview.minimum,
        "maximum": preview.maximum,
        "groups": preview.groups,
        "zero_spread_groups": preview.zero_spread_groups,
        "single_member_groups": preview.single_member_groups,
    }


def preview_from_json(run: JudgeRun, data: dict[str, Any]) -> RewardPreview:
    return RewardPreview(
        run=run,
        rows=[RolloutReward(*row) for row in data["rows"]],
        missing_verdicts=data["missing_verdicts"],
        histogram=[HistogramBin(**b) for b in data["histogram"]],
        components=[ComponentSummary(**c) for c in data["components"]],
        judge_ok=data["judge_ok"],
        judge_errors=data["judge_errors"],
        gated=data["gated"],
        mean=data["mean"],
        minimum=data["minimum"],
        maximum=data["maximum"],
        groups=data["groups"],
        zero_spread_groups=list(data["zero_spread_groups"]),
        single_member_groups=data["single_member_groups"],
    )


# ---- the worker's side --------------------------------------------------------------------------


def claim_job(session: Session, worker_id: str, lease_seconds: int) -> int | None:
    """The oldest queued job (or a running one whose worker's lease ran out), leased to us."""
    now = utcnow()
    claimable = or_(
        col(RewardPreviewJob.status) == PreviewJobStatus.queued,
        (col(RewardPreviewJob.status) == PreviewJobStatus.running)
        & (col(RewardPreviewJob.lease_expires_at) < now),
    )
    job_id = session.exec(
        select(RewardPreviewJob.id).where(claimable).order_by(col(RewardPreviewJob.id)).limit(1)
    ).first()
    if job_id is None:
        return None
    claimed = session.execute(
        update(RewardPreviewJob)
        .where(col(RewardPreviewJob.id) == job_id, claimable)
        .values(
            status=PreviewJobStatus.running,
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
        )
    )
    session.commit()
    return int(job_id) if claimed.rowcount == 1 else None  # type: ignore[attr-defined]


def run_job(session: Session, job_id: int, lease_seconds: int) -> RewardPreviewJob:
    """Compute a claimed job a batch at a time, recording progress (and renewing the lease)."""
    job = session.get(RewardPreviewJob, job_id)
    project = session.get(Project, job.project_id) if job else None
    if job is None or project is None:  # pragma: no cover - deleted with the project
        raise NotFound(f"No reward preview job {job_id}.")
    selection = job_selection(job)

    def progress(done: int, total: int) -> None:
        job.done, job.total = done, total
        job.lease_expires_at = utcnow() + timedelta(seconds=lease_seconds)
        session.add(job)
        session.commit()

    try:
        ids = reward_service.select_rollout_ids(session, project.id or 0, selection)
        progress(0, len(ids))
        result = reward_service.compute_preview(session, project, selection, ids, progress)
    except (InvalidInput, NotFound) as exc:
        session.rollback()
        job.status = PreviewJobStatus.failed
        job.error = str(exc)
    else:
        job.result = preview_to_json(result)
        job.status = PreviewJobStatus.done
    job.finished_at = utcnow()
    job.lease_owner = None
    session.add(job)
    session.commit()
    return job
