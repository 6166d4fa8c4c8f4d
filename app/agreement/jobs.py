"""The worker's figure refresh: a finished run's agreement figures computed before anyone asks.

A run's figures (agreement, corrected estimates, the disagreement index at the default
tolerances, what the run holds) are computed from a data version and stored (`app.core.stored`).
When a run finishes or a label that counts for it changes, a refresh is requested; this job
computes the figures for the new data version, so the first visit reads them instead of waiting
for a computation over the whole run. A run still being judged is skipped: its verdicts change
the data version with every batch, and finishing requests a refresh of its own.
"""

from __future__ import annotations

import logging
import time

from sqlmodel import Session

from app.agreement import service as agreement_service
from app.core import stored
from app.core.jobs import WorkerContext
from app.judging.models import JudgeRun
from app.judging.status import UNFINISHED_STATUSES
from app.labels import review, run_subjects

log = logging.getLogger(__name__)


def refresh_run(session: Session, run: JudgeRun) -> None:
    """Compute (or find stored) every figure a run's agreement pages open with."""
    result = agreement_service.run_agreement(session, run)
    agreement_service.corrected_estimates(session, run, result)
    context = run_subjects.run_context(session, run)
    version = run_subjects.data_version(session, context)
    review.disagreement_index(
        session,
        context,
        version,
        review.DEFAULT_TOLERANCE,
        review.DEFAULT_AGGREGATE_TOLERANCE,
    )


def run_figure_refresh_once(ctx: WorkerContext) -> bool:
    with Session(ctx.engine, expire_on_commit=False) as session:
        claimed = stored.claim_refresh(session, ctx.worker_id, ctx.settings.lease_seconds)
        if claimed is None:
            return False
        run_id, requested_at = claimed
        run = session.get(JudgeRun, run_id)
        if run is not None and run.status not in UNFINISHED_STATUSES:
            started = time.perf_counter()
            try:
                refresh_run(session, run)
            except Exception:  # a run whose figures fail must not hold up the others
                log.exception("figures of judge run %s could not be computed", run_id)
            else:
                log.info(
                    "figures of judge run %s computed in %.2f s",
                    run_id,
                    time.perf_counter() - started,
                )
            session.rollback()  # a read-only pass: nothing of the session's to keep
        stored.finish_refresh(session, run_id, requested_at)
    return True
