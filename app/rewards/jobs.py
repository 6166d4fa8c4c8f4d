"""The worker's reward-preview job: one large preview at a time, with progress."""

from __future__ import annotations

import logging

from sqlmodel import Session

from app.core.jobs import WorkerContext
from app.rewards import preview_jobs

log = logging.getLogger(__name__)


def run_reward_previews_once(ctx: WorkerContext) -> bool:
    with Session(ctx.engine, expire_on_commit=False) as session:
        job_id = preview_jobs.claim_job(session, ctx.worker_id, ctx.settings.lease_seconds)
        if job_id is None:
            return False
        job = preview_jobs.run_job(session, job_id, ctx.settings.lease_seconds)
        log.info("reward preview %s: %s (%s of %s)", job_id, job.status, job.done, job.total)
    return True
