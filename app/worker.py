"""The background worker: claims durable jobs from the database and does them.

Each kind of long work (rollout imports, judge runs, ...) registers a `JobHandler`. A handler's
`run_once` claims one unit of work with a lease (row locks with SKIP LOCKED on PostgreSQL), does
it, and returns True if it did anything. Leases that expire are claimed again, so a killed worker
loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.engine import Engine

from app.core.config import Settings
from app.core.gc_tuning import tune_gc
from app.core.jobs import JobHandler, WorkerContext, new_worker_id

__all__ = ["JobHandler", "WorkerContext", "new_worker_id", "run_worker", "start_embedded_worker"]

log = logging.getLogger(__name__)


def _handlers() -> list[tuple[str, JobHandler]]:
    """Every job kind, in priority order.

    Imported here rather than at module level so `rubric-studio --help` stays cheap; imported
    without any guard, so a broken job module stops the worker loudly instead of silently
    dropping its kind of job.
    """
    from app.agreement.jobs import run_figure_refresh_once
    from app.drift.jobs import run_drift_import_once
    from app.judging.import_jobs import run_verdict_import_once
    from app.judging.jobs import run_judging_once
    from app.judging.preparation import run_preparation_once
    from app.labels.jobs import run_label_import_once
    from app.probes.jobs import run_probes_once
    from app.rewards.jobs import run_reward_previews_once
    from app.rollouts.jobs import run_import_once

    return [
        ("rollout-import", run_import_once),
        ("judge-prepare", run_preparation_once),
        ("judge-run", run_judging_once),
        ("label-import", run_label_import_once),
        ("verdict-import", run_verdict_import_once),
        ("probe-run", run_probes_once),
        ("drift-import", run_drift_import_once),
        ("reward-preview", run_reward_previews_once),
        ("figure-refresh", run_figure_refresh_once),
    ]


def run_worker(
    engine: Engine,
    settings: Settings,
    stop: threading.Event | None = None,
    *,
    once: bool = False,
    own_process: bool = False,
) -> None:
    """Loop until `stop` is set (or, with once=True, until no job has work).

    `own_process`: the worker is the process's only job (`rubric-studio worker`), so it may tune
    the process-wide garbage collector for many small, short-lived allocations.
    """
    ctx = WorkerContext(
        engine=engine, settings=settings, worker_id=new_worker_id(), stop=stop or threading.Event()
    )
    handlers = _handlers()
    if own_process:
        tune_gc()  # after the handlers' imports: their objects live as long as the process
    log.info("worker %s started with handlers %s", ctx.worker_id, [n for n, _ in handlers])
    while not ctx.stop.is_set():
        did_work = False
        for name, handler in handlers:
            try:
                did_work = handler(ctx) or did_work
            except Exception:  # one failing job must not stop the worker
                log.exception("job handler %s failed", name)
                time.sleep(1)
        if once and not did_work:
            return
        if not did_work:
            ctx.stop.wait(settings.worker_poll_interval_s)


def start_embedded_worker(engine: Engine, settings: Settings) -> threading.Event:
    """Run a worker thread inside the web process (the SQLite single-command mode)."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker, args=(engine, settings, stop), name="embedded-worker", daemon=True
    )
    thread.start()
    return stop
