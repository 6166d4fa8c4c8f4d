"""The states of a judge run and how a finished run's state follows from its verdicts.

Pure module (no web or database imports): the engine, the pages, the API and the CLI share it.
"""

from __future__ import annotations

from enum import StrEnum


class WorkItemStatus(StrEnum):
    """A run's work item: pending -> leased (a worker holds it until the lease expires) -> done."""

    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"


class RunStatus(StrEnum):
    """[preparing ->] queued -> running -> completed | with_errors | failed | cancelled (resume:
    back to queued, or to preparing when its work items were not all created).

    `preparing`: a large selection is being resolved by a worker (app/judging/preparation.py):
    the run's work items, its size and its estimate are not all there yet, so no judge call
    starts.

    `with_errors`: every item has a verdict but some calls failed (those verdicts carry the neutral
    score); `failed`: every call failed, or the run could not be judged at all."""

    PREPARING = "preparing"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    WITH_ERRORS = "with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]


STATUS_LABELS = {
    RunStatus.PREPARING: "preparing",
    RunStatus.QUEUED: "queued",
    RunStatus.RUNNING: "running",
    RunStatus.COMPLETED: "completed",
    RunStatus.WITH_ERRORS: "completed with errors",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELLED: "cancelled",
}
# Runs whose work items are being judged (a preparing run's are still being created).
ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
# Runs a page keeps polling and a user may cancel.
UNFINISHED_STATUSES = (RunStatus.PREPARING, *ACTIVE_STATUSES)
FINAL_STATUSES = (
    RunStatus.COMPLETED,
    RunStatus.WITH_ERRORS,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
)
MAX_FIRST_ERROR = 300


def finished_status(done: int, errors: int) -> RunStatus:
    """The state of a run whose every item has a verdict: `errors` of `done` calls failed."""
    if done > 0 and errors >= done:
        return RunStatus.FAILED
    if errors > 0:
        return RunStatus.WITH_ERRORS
    return RunStatus.COMPLETED


def short_error(text: str | None, limit: int = MAX_FIRST_ERROR) -> str:
    """One line of an error for people: control characters and runs of space folded, cut short."""
    if not text:
        return ""
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def finished_message(status: RunStatus, done: int, errors: int, first_error: str | None) -> str:
    """What the run page, the API and the CLI say about a finished run's failures."""
    first = short_error(first_error)
    tail = f" The first error: {first}" if first else ""
    if status is RunStatus.FAILED:
        return (
            f"Every judge call failed ({errors:,} of {done:,}); the stored scores are the neutral "
            f"score, not judgments. Check the judge configuration (Test connection).{tail}"
        )
    if status is RunStatus.WITH_ERRORS:
        return (
            f"{errors:,} of {done:,} judge calls failed; those verdicts carry the neutral score."
            f"{tail}"
        )
    return ""
