"""The worker's probe-run job: make the rewrites of queued runs (then the judge-run job judges
them with the judging engine), and write the report once their judge run has finished."""

from __future__ import annotations

import logging

from sqlmodel import Session

from app.core.jobs import WorkerContext
from app.probes import steps as probe_steps

log = logging.getLogger(__name__)


def run_probes_once(ctx: WorkerContext) -> bool:
    did_work = False
    with Session(ctx.engine) as session:
        for run_id in probe_steps.runs_to_prepare(session):
            if probe_steps.prepare_run(session, run_id):
                log.info("probe run %s: rewrites made, judge run queued", run_id)
                did_work = True
        for run_id in probe_steps.runs_to_finish(session):
            if probe_steps.finish_run(session, run_id):
                log.info("probe run %s: report written", run_id)
                did_work = True
    return did_work
