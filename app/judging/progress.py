"""Judge runs as lists and progress: run rows, the progress figures a page polls, verdict lists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.core.clock import utcnow
from app.judging import verdicts as judge_engine  # pure: plans, prompts, costs (not the executor)
from app.judging.models import JudgeRun, Verdict
from app.judging.status import RunStatus
from app.rollouts.models import Rollout
from app.rubrics.models import Rubric, RubricVersion

# ---- listing and progress ---------------------------------------------------------------------


@dataclass
class RunRow:
    run: JudgeRun
    rubric_name: str
    version_number: int

    @property
    def judge_name(self) -> str:
        return run_judge_name(self.run)


def run_judge_name(run: JudgeRun) -> str:
    if run.kind == "external":
        return run.external_judge_name or "external"
    snapshot = run.judge_snapshot or {}
    return str(snapshot.get("name") or "")


def list_runs(
    session: Session, project_id: int, *, comparison_key: str | None = None, limit: int = 200
) -> list[RunRow]:
    query = (
        select(JudgeRun, Rubric.name, RubricVersion.number)
        .join(RubricVersion, col(RubricVersion.id) == col(JudgeRun.rubric_version_id))
        .join(Rubric, col(Rubric.id) == col(RubricVersion.rubric_id))
        .where(JudgeRun.project_id == project_id)
    )
    if comparison_key:
        query = query.where(JudgeRun.comparison_key == comparison_key)
    query = query.order_by(col(JudgeRun.id).desc()).limit(limit)
    return [RunRow(run, name, number) for run, name, number in session.exec(query)]


def run_row(session: Session, run: JudgeRun) -> RunRow:
    version = session.get(RubricVersion, run.rubric_version_id)
    rubric = session.get(Rubric, version.rubric_id) if version else None
    return RunRow(run, rubric.name if rubric else "?", version.number if version else 0)


@dataclass
class RunProgress:
    status: RunStatus
    total: int
    done: int
    errors: int
    rate_per_s: float | None
    eta_s: float | None
    cost: float
    input_tokens: int
    output_tokens: int

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done)

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 100

    message: str = ""

    @property
    def finished(self) -> bool:
        return self.status in judge_engine.FINAL_STATUSES

    @property
    def label(self) -> str:
        return self.status.label

    @property
    def has_errors(self) -> bool:
        return self.status in (RunStatus.WITH_ERRORS, RunStatus.FAILED)


def run_progress(run: JudgeRun, now: datetime | None = None) -> RunProgress:
    """Done, errors, rate (verdicts a second since the run started or resumed) and time left.

    A preparing run counts subjects selected of those expected instead of verdicts."""
    if run.status == RunStatus.PREPARING:
        state = (run.settings or {}).get("preparation") or {}
        return RunProgress(
            status=RunStatus.PREPARING,
            total=int(state.get("expected") or 0),
            done=int(state.get("selected") or 0),
            errors=0,
            rate_per_s=None,
            eta_s=None,
            cost=0.0,
            input_tokens=0,
            output_tokens=0,
            message=run.message,
        )
    now = now or utcnow()
    rate: float | None = None
    if run.status == "running" and run.rate_base_at is not None:
        elapsed = (now - run.rate_base_at).total_seconds()
        done_since = run.items_done - run.rate_base_done
        if elapsed > 0.5 and done_since > 0:
            rate = done_since / elapsed
    elif run.status in judge_engine.FINAL_STATUSES and run.started_at and run.finished_at:
        elapsed = (run.finished_at - run.started_at).total_seconds()
        if elapsed > 0 and run.items_done:
            rate = run.items_done / elapsed
    remaining = max(0, run.items_total - run.items_done)
    eta = remaining / rate if rate and run.status == "running" else None
    return RunProgress(
        status=RunStatus(run.status),
        total=run.items_total,
        done=run.items_done,
        errors=run.items_error,
        rate_per_s=rate,
        eta_s=eta,
        cost=run.cost,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        message=run.message,
    )


def list_verdicts(
    session: Session,
    run: JudgeRun,
    *,
    after_id: int | None = None,
    parse_status: str | None = None,
    limit: int = 50,
) -> list[Verdict]:
    """The run's verdicts in id order, keyset-paginated."""
    query = select(Verdict).where(Verdict.run_id == run.id)
    if parse_status:
        query = query.where(Verdict.parse_status == parse_status)
    if after_id is not None:
        query = query.where(col(Verdict.id) > after_id)
    return list(session.exec(query.order_by(col(Verdict.id)).limit(limit)))


# What the run page's verdict table shows of a verdict (never its answer or raw reply).
VERDICT_SUMMARY = (
    col(Verdict.id),
    col(Verdict.rollout_id),
    col(Verdict.pair_id),
    col(Verdict.repeat),
    col(Verdict.order_shown),
    col(Verdict.winner),
    col(Verdict.normalized),
    col(Verdict.aggregate),
    col(Verdict.parse_status),
    col(Verdict.latency_ms),
    col(Verdict.input_tokens),
    col(Verdict.output_tokens),
    col(Verdict.attempts),
    col(Verdict.error),
)


def verdict_summaries(
    session: Session,
    run: JudgeRun,
    *,
    after_id: int | None = None,
    parse_status: str | None = None,
    limit: int = 50,
) -> list[Any]:
    """``list_verdicts`` as plain rows of VERDICT_SUMMARY's columns (attribute access by name):
    a page of the run page's table without building ORM objects."""
    query = sa_select(*VERDICT_SUMMARY).where(col(Verdict.run_id) == run.id)
    if parse_status:
        query = query.where(col(Verdict.parse_status) == parse_status)
    if after_id is not None:
        query = query.where(col(Verdict.id) > after_id)
    return list(session.execute(query.order_by(col(Verdict.id)).limit(limit)).all())


def rollout_labels(session: Session, rollout_ids: Sequence[int]) -> dict[int, str]:
    """External ids of rollouts, for showing verdicts."""
    if not rollout_ids:
        return {}
    query = select(Rollout.id, Rollout.external_id).where(col(Rollout.id).in_(set(rollout_ids)))
    return {rid or 0: ext for rid, ext in session.exec(query)}
