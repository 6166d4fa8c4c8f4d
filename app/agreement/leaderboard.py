"""The runs leaderboard: every judge run of a project with its headline figures, so judges,
rubric versions and prompting strategies compare at a glance.

Per run: accuracy (pairwise runs: the mean over the two orders) or raw agreement (rubric runs:
the overall verdict), Cohen's kappa with its base rate, true-positive / true-negative rates,
positional agreement, self-consistency, tokens, cost and mean latency. Figures come from the
labelled subjects only (SQL joins); run totals and latency are SQL aggregates.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from sqlalchemy import case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.agreement import pairs
from app.agreement.pairwise import PairItem, pairwise_figures
from app.agreement.stats import proportion
from app.core import stored
from app.core.memo import VersionedCache
from app.core.stored import FigureKind
from app.judging.models import JudgeRun, Verdict
from app.labels import review, run_subjects
from app.labels.models import GoldItem, LabelTally
from app.rubrics.models import Rubric, RubricVersion

RESAMPLES = 500


class Scope(StrEnum):
    ALL = "all"
    GOLD_TEST = "gold_test"  # the locked test split of the gold set


@dataclass
class LeaderboardRow:
    run_id: int
    judge: str
    rubric: str
    rubric_version_id: int
    rubric_version: int
    mode: str
    kind: str
    status: str
    n_labels: int = 0
    headline: str = ""  # "accuracy" (pairwise) or "agreement" (rubric: overall verdict)
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    kappa: float | None = None
    kappa_ci_low: float | None = None
    kappa_ci_high: float | None = None
    base_rate: float | None = None  # experts' share of "fail" (rubric) or of "A" (pairwise)
    true_positive_rate: float | None = None
    true_negative_rate: float | None = None
    positional_agreement: float | None = None
    self_consistency: float | None = None  # share of items whose repeats all agree
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    mean_latency_ms: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)


SORTABLE = (
    "run_id",
    "judge",
    "rubric_version",
    "value",
    "kappa",
    "base_rate",
    "true_positive_rate",
    "true_negative_rate",
    "positional_agreement",
    "self_consistency",
    "input_tokens",
    "cost",
    "mean_latency_ms",
    "n_labels",
)
CSV_FIELDS = [f.name for f in fields(LeaderboardRow) if f.name != "extras"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A spreadsheet cell that cannot run as a formula: text starting with = + - @ tab or CR
    gets a leading apostrophe (OWASP CSV injection advice). Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(rows: Iterable[LeaderboardRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for row in rows:
        writer.writerow([csv_safe(getattr(row, name)) for name in CSV_FIELDS])
    return out.getvalue()


def sort_rows(rows: list[LeaderboardRow], key: str, descending: bool) -> list[LeaderboardRow]:
    """Sorted by ``key``; runs without the figure go last either way."""
    if key not in SORTABLE:
        key = "value"
    present = [r for r in rows if getattr(r, key) is not None]
    missing = [r for r in rows if getattr(r, key) is None]
    present.sort(key=lambda r: getattr(r, key), reverse=descending)
    return present + missing


def filter_rows(rows: Sequence[LeaderboardRow], text: str) -> list[LeaderboardRow]:
    needle = text.strip().lower()
    if not needle:
        return list(rows)
    return [r for r in rows if needle in f"{r.judge} {r.rubric} v{r.rubric_version}".lower()]


def _gold_test(session: Session, project_id: int) -> set[int]:
    query = select(GoldItem.rollout_id).where(
        GoldItem.project_id == project_id, GoldItem.split == "test"
    )
    return {int(r) for r in session.exec(query).all()}


def _pairwise_row(
    session: Session, row: LeaderboardRow, run: JudgeRun, version: RubricVersion, scope: Scope
) -> None:
    items: list[PairItem] = pairs.pair_items(session, run, version)
    if scope == Scope.GOLD_TEST:
        allowed = _gold_test(session, run.project_id)
        first = pairs.pair_rollouts(session, [str(i.key) for i in items])
        items = [i for i in items if first.get(str(i.key)) in allowed]
    figures = pairwise_figures(items, resamples=RESAMPLES)
    accuracy, kappa = figures.figures["accuracy"], figures.figures["kappa"]
    row.headline = "accuracy"
    row.n_labels = figures.n_labels
    row.value, row.ci_low, row.ci_high = accuracy.value, accuracy.ci_low, accuracy.ci_high
    row.kappa, row.kappa_ci_low, row.kappa_ci_high = kappa.value, kappa.ci_low, kappa.ci_high
    experts = [e for item in items for e in item.experts]
    row.base_rate = sum(e == "A" for e in experts) / len(experts) if experts else None
    row.positional_agreement = figures.figures["positional_agreement"].value
    row.extras = {
        "inconsistent_rate": figures.figures["inconsistent_rate"].value,
        "tie_rate": figures.figures["tie_rate"].value,
    }


def _rubric_row(
    session: Session, row: LeaderboardRow, run: JudgeRun, version: RubricVersion, scope: Scope
) -> None:
    """The overall verdict's figures: over the whole run, the run's cached agreement figures
    (computed once per data version from the labelled subjects, shared with the run's page);
    over the gold test split, the labelled subjects of its rollouts only (read in SQL)."""
    from app.agreement import service as agreement_service

    if scope == Scope.GOLD_TEST:
        context = run_subjects.run_context(session, run)
        gold = select(GoldItem.rollout_id).where(
            GoldItem.project_id == run.project_id, GoldItem.split == "test"
        )
        subjects = run_subjects.subjects(session, context, rollout_query=gold, texts=False)
        overall, _ = agreement_service.overall_agreement(context.definition, subjects)
    else:
        found = agreement_service.run_agreement(session, run).overall
        if found is None:  # pragma: no cover - rubric runs always have an overall verdict
            return
        overall = found
    binary = overall.binary
    row.headline = "agreement"
    row.n_labels = overall.n
    if binary is not None:
        row.value = binary.agreement.value
        row.kappa = binary.kappa.value
        row.true_positive_rate = binary.true_positive_rate.value
        row.true_negative_rate = binary.true_negative_rate.value
    if overall.uncertainty is not None:
        u = overall.uncertainty
        if overall.kind == "boolean":
            row.ci_low, row.ci_high = u.agreement_ci.low, u.agreement_ci.high
            row.kappa_ci_low, row.kappa_ci_high = u.kappa_ci.low, u.kappa_ci.high
        row.base_rate = u.expert_fail_rate.value
    if run.repeats > 1:
        row.self_consistency = _cached(
            "repeats", session, run, lambda: repeat_agreement(session, run)
        )


def repeat_agreement(session: Session, run: JudgeRun) -> float | None:
    """The share of rollouts whose repeated verdicts (two or more with a score) all pass or all
    fail (normalised score 0.5 or more): `reliability.self_consistency`'s ``all_agree``, counted
    in SQL per rollout instead of reading every verdict of the run."""
    scored = func.count(col(Verdict.normalized))
    passed = func.count(case((col(Verdict.normalized) >= 0.5, 1), else_=None))
    per_rollout = (
        sa_select(scored.label("scored"), passed.label("passed"))
        .where(col(Verdict.run_id) == run.id, col(Verdict.pair_id).is_(None))
        .group_by(col(Verdict.rollout_id))
        .subquery()
    )
    usable, agreeing = session.execute(
        sa_select(
            func.count(case((per_rollout.c.scored >= 2, 1), else_=None)),
            func.count(
                case(
                    (
                        (per_rollout.c.scored >= 2)
                        & (
                            (per_rollout.c.passed == 0)
                            | (per_rollout.c.passed == per_rollout.c.scored)
                        ),
                        1,
                    ),
                    else_=None,
                )
            ),
        )
    ).one()
    return proportion(int(agreeing or 0), int(usable or 0)).value


# Per-run figures that read every verdict of a run (mean latency, self-consistency), cached per
# run and its latest verdict id: verdicts are only ever added, so a run's figures change only
# when that id does (an index lookup per run, in one statement for the whole leaderboard).
_RUN_FIGURES: VersionedCache[Any] = VersionedCache(512)


def _latest_verdicts(session: Session, runs: Sequence[JudgeRun]) -> dict[int, int]:
    if not runs:
        return {}
    latest = (
        sa_select(func.max(col(Verdict.id)))
        .where(col(Verdict.run_id) == col(JudgeRun.id))
        .scalar_subquery()
    )
    return {
        int(run_id): int(found or 0)
        for run_id, found in session.execute(
            sa_select(col(JudgeRun.id), latest).where(col(JudgeRun.id).in_([r.id for r in runs]))
        ).all()
    }


def _run_key(session: Session, run: JudgeRun, latest: int) -> tuple[Any, ...]:
    return (str(session.get_bind().engine.url), run.id, str(run.created_at), latest)


def _cached(name: str, session: Session, run: JudgeRun, compute: Callable[[], Any]) -> Any:
    latest = _latest_verdicts(session, [run]).get(run.id or 0, 0)
    return stored.remembered(
        session,
        _RUN_FIGURES,
        FigureKind.LEADERBOARD,
        (name, *_run_key(session, run, latest)),
        compute,
        judge_run_id=run.id,
    )


def _latencies(session: Session, runs: Sequence[JudgeRun]) -> dict[int, float | None]:
    """Mean latency per run: one statement for the runs not cached at their latest verdict."""
    latest = _latest_verdicts(session, runs)
    keys = {
        run.id or 0: ("latency", *_run_key(session, run, latest.get(run.id or 0, 0)))
        for run in runs
    }
    found: dict[int, float | None] = {}
    missing: list[int] = []
    for run_id, key in keys.items():
        hit = _RUN_FIGURES.peek((str(FigureKind.LEADERBOARD), *key))
        if hit is None:
            hit = stored.load(session, FigureKind.LEADERBOARD, key)
            if hit is stored.MISSING:
                missing.append(run_id)
                continue
            _RUN_FIGURES.put((str(FigureKind.LEADERBOARD), *key), hit)
        found[run_id] = hit[0]
    if missing:
        means = dict(
            session.execute(
                sa_select(col(Verdict.run_id), func.avg(col(Verdict.latency_ms)))
                .where(col(Verdict.run_id).in_(missing))
                .group_by(col(Verdict.run_id))
            ).all()
        )
        for run_id in missing:
            mean = means.get(run_id)
            value = None if mean is None else float(mean)
            _RUN_FIGURES.put((str(FigureKind.LEADERBOARD), *keys[run_id]), (value,))
            stored.save(
                session, FigureKind.LEADERBOARD, keys[run_id], (value,), judge_run_id=run_id
            )
            found[run_id] = value
    return found


def leaderboard(
    session: Session, project_id: int, scope: Scope = Scope.ALL
) -> list[LeaderboardRow]:
    """One row per judge run of the project (the newest 200), kept per data version: the key is
    read in a few statements of plain columns (no run snapshot or rubric definition is decoded),
    and the rows are computed only when it changes."""
    latest = (
        sa_select(func.max(col(Verdict.id)))
        .where(col(Verdict.run_id) == col(JudgeRun.id))
        .scalar_subquery()
    )
    snapshot = col(JudgeRun.judge_snapshot)
    runs_key = tuple(
        tuple(str(value) for value in row)
        for row in session.execute(
            sa_select(
                col(JudgeRun.id),
                col(JudgeRun.created_at),
                col(JudgeRun.status),
                col(JudgeRun.kind),
                col(JudgeRun.input_tokens),
                col(JudgeRun.output_tokens),
                col(JudgeRun.cost),
                col(JudgeRun.repeats),
                snapshot["name"].as_string(),
                snapshot["model_id"].as_string(),
                col(JudgeRun.external_judge_name),
                col(RubricVersion.id),
                col(Rubric.name),
                col(Rubric.mode),
                latest,
            )
            .join(RubricVersion, col(RubricVersion.id) == col(JudgeRun.rubric_version_id))
            .join(Rubric, col(Rubric.id) == col(RubricVersion.rubric_id))
            .where(col(JudgeRun.project_id) == project_id)
            .order_by(col(JudgeRun.id))
            .limit(MAX_RUNS)
        ).all()
    )
    key = (
        str(session.get_bind().engine.url),
        project_id,
        scope,
        runs_key,
        _labels_written(session, project_id),
        tuple(sorted(_gold_test(session, project_id))) if scope == Scope.GOLD_TEST else None,
    )
    built = _BOARDS.get_or_compute(key, lambda: _rows(session, _runs(session, project_id), scope))
    return [dataclasses.replace(row, extras=dict(row.extras)) for row in built]


MAX_RUNS = 200


def _runs(session: Session, project_id: int) -> Sequence[Any]:
    return session.exec(
        select(JudgeRun, RubricVersion, Rubric)
        .join(RubricVersion, col(RubricVersion.id) == col(JudgeRun.rubric_version_id))
        .join(Rubric, col(Rubric.id) == col(RubricVersion.rubric_id))
        .where(JudgeRun.project_id == project_id)
        .order_by(col(JudgeRun.id))
        .limit(MAX_RUNS)
    ).all()


# Whole leaderboards, cached per data version of every run on them (the runs' own fields, their
# latest verdicts), the project's labels and, for the gold test scope, the test split itself.
_BOARDS: VersionedCache[list[LeaderboardRow]] = VersionedCache(16)


def _labels_written(session: Session, project_id: int) -> tuple[tuple[int, int], ...]:
    """How many times each rubric's labels in the project were written (`LabelTally`)."""
    return tuple(
        (int(rubric_id), int(changes))
        for rubric_id, changes in session.execute(
            sa_select(col(LabelTally.rubric_id), col(LabelTally.changes))
            .where(col(LabelTally.project_id) == project_id)
            .order_by(col(LabelTally.rubric_id))
        ).all()
    )


def _rows(session: Session, runs: Sequence[Any], scope: Scope) -> list[LeaderboardRow]:
    latency = _latencies(session, [run for run, _, _ in runs])
    rows: list[LeaderboardRow] = []
    for run, version, rubric in runs:
        row = LeaderboardRow(
            run_id=run.id or 0,
            judge=review.judge_name(run),
            rubric=rubric.name,
            rubric_version_id=version.id or 0,
            rubric_version=version.number,
            mode=rubric.mode,
            kind=run.kind,
            status=run.status,
            input_tokens=run.input_tokens,
            output_tokens=run.output_tokens,
            cost=run.cost,
            mean_latency_ms=latency.get(run.id or 0) if run.kind != "external" else None,
        )
        if rubric.mode == "preference":
            _pairwise_row(session, row, run, version, scope)
        else:
            _rubric_row(session, row, run, version, scope)
        rows.append(row)
    return rows
