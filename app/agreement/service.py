"""Agreement figures of a judge run from the database: the run against the experts' labels, per
criterion and overall, preference agreement (MT-Bench), corrected estimates and checkpoint
ratings.

Only the run's labelled subjects are read (`app.labels.run_subjects`: labels joined to verdicts
in SQL, a fixed number of statements whatever the run's size); the unlabelled rest is counted and
averaged in SQL. The figures are the pure `figures` module's. A run's figures are cached per data
version (its verdicts' and labels' counts, max ids and latest change), so a new label or verdict
recomputes them and nothing else does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from app.agreement import pairs
from app.agreement.charts import CalibrationBin, calibration_chart, interval_chart
from app.agreement.comparison import (  # noqa: F401 - the service's public surface
    SCOPES,
    CriterionComparison,
    FlipRow,
    RunComparison,
    Scope,
    compare_runs,
)
from app.agreement.corrected import CorrectedRate, PPIMean, corrected_pass_rate, ppi_mean
from app.agreement.figures import (  # noqa: F401 - the service's public surface
    OVERALL,
    PREFERENCE_LABELS,
    CriterionAgreement,
    CriterionUncertainty,
    PreferenceAgreement,
    criterion_agreement,
    criterion_figures,
    labelled_rewards,
    overall_agreement,
    overall_expert,
    overall_judge,
    pairs_for,
    pass_level,
    preference_figures,
    run_calibration,
    uncertainty,
)
from app.agreement.pairwise import Outcome, PairwiseFigures
from app.agreement.ratings import Rating, rank_agreement, ratings, win_rates
from app.agreement.stats import figure_values
from app.core import stored
from app.core.memo import VersionedCache
from app.core.stored import FigureKind
from app.judging.models import JudgeRun, Verdict
from app.labels import run_subjects
from app.labels import service as label_service
from app.labels import values as label_values
from app.labels.models import Label
from app.labels.run_subjects import RunSummary
from app.rubrics.definition import RubricDefinition
from app.rubrics.models import RubricVersion


@dataclass
class RunAgreement:
    summary: RunSummary
    criteria: list[CriterionAgreement]
    overall: CriterionAgreement | None
    overall_rule: str
    preference: PreferenceAgreement | None
    n_labels: int
    items_labelled: int
    pairwise: PairwiseFigures | None = None
    calibration: list[CalibrationBin] = field(default_factory=list)
    # The labelled halves of the corrected estimates: (judge passes, expert passes) per
    # pass/fail criterion, and (judge score, expert score) pairs.
    labelled_passes: dict[str, list[tuple[bool, bool]]] = field(default_factory=dict)
    labelled_scores: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    version_key: tuple[Any, ...] = ()

    @property
    def definition(self) -> RubricDefinition:
        return self.summary.definition


_PAIRS = {(j, h): (j, h) for j in (False, True) for h in (False, True)}
_FIGURES: VersionedCache[RunAgreement] = VersionedCache(16)
_CORRECTED: VersionedCache[CorrectedEstimates | None] = VersionedCache(16)


def run_agreement(session: Session, run: JudgeRun) -> RunAgreement:
    """Agreement of a run's verdicts with the experts' submitted labels.

    Each expert label counts once: an item labelled by k experts gives k (label, verdict) pairs,
    as MT-Bench counts each expert vote separately.
    """
    context = run_subjects.run_context(session, run)
    version = run_subjects.data_version(session, context)
    return stored.remembered(
        session,
        _FIGURES,
        FigureKind.RUN_AGREEMENT,
        version,
        lambda: _run_agreement(session, context, version),
        judge_run_id=run.id,
    )


def _run_agreement(
    session: Session, context: run_subjects.RunContext, version: tuple[Any, ...]
) -> RunAgreement:
    key = ("agreement", *version)
    summary = run_subjects.run_summary(session, context, version)
    subjects = run_subjects.labelled_subjects(session, context, version)
    definition = context.definition
    n_labels = sum(len(s.labels) for s in subjects)
    if definition.mode == "preference":
        return RunAgreement(
            summary=summary,
            criteria=[],
            overall=None,
            overall_rule="",
            preference=preference_figures(subjects),
            n_labels=n_labels,
            items_labelled=len(subjects),
            pairwise=pairs.run_pairwise(session, context.run),
            version_key=key,
        )
    criteria: list[CriterionAgreement] = []
    passes: dict[str, list[tuple[bool, bool]]] = {}
    for criterion in definition.criteria:
        items: list[int] = []
        judge, human, by_item = pairs_for(subjects, criterion, items)
        criteria.append(criterion_figures(criterion, judge, human, by_item, items))
        if criterion.type == "boolean":
            # The four possible pairs, shared: a cached run holds references, not 20k tuples.
            passes[criterion.key] = [
                _PAIRS[bool(j), bool(h)] for j, h in zip(judge, human, strict=True)
            ]
    overall, rule = overall_agreement(definition, subjects)
    return RunAgreement(
        summary=summary,
        criteria=criteria,
        overall=overall,
        overall_rule=rule,
        preference=None,
        n_labels=n_labels,
        items_labelled=len(subjects),
        calibration=run_calibration(definition, subjects),
        labelled_passes=passes,
        labelled_scores=labelled_rewards(definition, subjects),
        version_key=key,
    )


def figure_rows(figures: Any) -> list[tuple[str, str]]:
    """(field path, readable name) of the figures a comparison table shows, in order."""
    names = {
        "agreement": "Raw agreement",
        "kappa": "Cohen's kappa",
        "true_positive_rate": "True-positive rate (fail caught)",
        "true_negative_rate": "True-negative rate (pass kept)",
        "exact": "Exact agreement",
        "within_one": "Within one level",
        "spearman": "Spearman correlation",
        "mean_absolute_error": "Mean absolute error",
        "quadratic_kappa": "Quadratic weighted kappa",
    }
    rows: list[tuple[str, str]] = []
    for path in figure_values(figures):
        leaf = path.rsplit(".", 1)[-1]
        prefix = "Pass/fail: " if path.startswith("binary.") else ""
        rows.append((path, prefix + names.get(leaf, leaf.replace("_", " "))))
    return rows


def run_charts(result: RunAgreement) -> dict[str, Any]:
    """Chart.js configurations for the run page (each chart's numbers are also in a table)."""
    found: dict[str, Any] = {}
    if result.pairwise is not None:
        shares = [
            "accuracy_ab",
            "accuracy_ba",
            "accuracy",
            "both_correct",
            "positional_agreement",
            "inconsistent_rate",
        ]
        estimates = [result.pairwise.figures[name] for name in shares]
        found["figures"] = interval_chart(
            shares,
            [e.value for e in estimates],
            [e.ci_low for e in estimates],
            [e.ci_high for e in estimates],
            "value",
        )
        return found
    rows = [c for c in [result.overall, *result.criteria] if c is not None]
    values: list[float | None] = []
    for c in rows:
        binary = c.binary
        values.append(binary.agreement.value if c.kind == "boolean" and binary else None)
        if c.kind == "scale":
            values[-1] = c.figures.exact.value  # type: ignore[union-attr]
    found["criteria"] = interval_chart(
        [c.name for c in rows],
        values,
        [c.uncertainty.agreement_ci.low if c.uncertainty else None for c in rows],
        [c.uncertainty.agreement_ci.high if c.uncertainty else None for c in rows],
        "agreement",
    )
    if result.calibration:
        found["calibration"] = calibration_chart(result.calibration)
    return found


# ---- corrected estimates ------------------------------------------------------------------------


@dataclass
class CorrectedCriterion:
    key: str
    name: str
    rate: CorrectedRate


@dataclass
class CorrectedEstimates:
    """The run's unlabelled items, corrected for the judge's error rates on the labelled ones."""

    n_unlabelled: int
    criteria: list[CorrectedCriterion]
    mean_reward: PPIMean | None


def _first_usable(run: JudgeRun) -> tuple[Any, ...]:
    """The run's first usable verdicts on single rollouts."""
    return (
        col(Verdict.run_id) == run.id,
        col(Verdict.pair_id).is_(None),
        col(Verdict.repeat) == 0,
        col(Verdict.parse_status).in_(label_values.OK_PARSE_STATUSES),
    )


def _labelled_rollouts(siblings: list[int]) -> Any:
    """SQL: the rollouts an expert has a submitted label on (for the run's rubric)."""
    return sa_select(col(Label.rollout_id)).where(
        col(Label.rubric_version_id).in_(siblings),
        col(Label.status) == "submitted",
        col(Label.pair_id).is_(None),
    )


def _verdict_sums(session: Session, where: Any, boolean: list[Any]) -> tuple[float, ...]:
    """(verdicts, scored verdicts, sum of scores, sum of squared scores, passes per pass/fail
    criterion) over the verdicts matching ``where``: sums, so that the unlabelled part is the
    whole run's minus the labelled part's."""
    pass_counts = [
        func.count(case((col(Verdict.scores)["criteria"][c.key].as_float() >= 0.5, 1), else_=None))
        for c in boolean
    ]
    row = session.execute(
        sa_select(
            func.count(col(Verdict.id)),
            func.count(col(Verdict.normalized)),
            func.sum(col(Verdict.normalized)),
            func.sum(col(Verdict.normalized) * col(Verdict.normalized)),
            *pass_counts,
        ).where(*where)
    ).one()
    return tuple(float(value or 0) for value in row)


_RUN_SUMS: VersionedCache[tuple[float, ...]] = VersionedCache(64)


def corrected_estimates(
    session: Session, run: JudgeRun, result: RunAgreement
) -> CorrectedEstimates | None:
    """Rogan–Gladen pass rate per pass/fail criterion and the PPI++ mean reward, over the
    run's verdicts on unlabelled rollouts (cached with the run's figures)."""
    if result.definition.mode != "rubric":
        return None
    return stored.remembered(
        session,
        _CORRECTED,
        FigureKind.CORRECTED,
        result.version_key,
        lambda: _corrected(session, run, result),
        judge_run_id=run.id,
    )


def _corrected(session: Session, run: JudgeRun, result: RunAgreement) -> CorrectedEstimates:
    """The unlabelled verdicts' counts and sums are the whole run's (one statement over the run,
    cached until a verdict is added: a new label does not recompute it) minus those of the
    labelled rollouts' verdicts (one statement by index over the labelled rollouts)."""
    boolean = [c for c in result.definition.criteria if c.type == "boolean"]
    # version_key: ("agreement", url, run id, created at, latest verdict, labels)
    whole = stored.remembered(
        session,
        _RUN_SUMS,
        FigureKind.RUN_SUMS,
        result.version_key[1:5],
        lambda: _verdict_sums(session, _first_usable(run), boolean),
        judge_run_id=run.id,
    )
    labelled = _verdict_sums(
        session,
        (
            *_first_usable(run),
            col(Verdict.rollout_id).in_(_labelled_rollouts(list(result.summary.siblings))),
        ),
        boolean,
    )
    count, scored, total, squares, *passes = (w - p for w, p in zip(whole, labelled, strict=True))
    n_unlabelled = int(round(count))
    n_scored = int(round(scored))
    criteria = [
        CorrectedCriterion(
            criterion.key,
            criterion.name,
            corrected_pass_rate(
                int(round(passed)), n_unlabelled, result.labelled_passes.get(criterion.key, [])
            ),
        )
        for criterion, passed in zip(boolean, passes, strict=True)
    ]
    f_labelled, y = result.labelled_scores
    mean_reward = None
    if n_unlabelled >= 2 and n_scored:
        mean = total / n_scored
        variance = max(0.0, squares / n_scored - mean**2) * n_unlabelled / (n_unlabelled - 1)
        mean_reward = ppi_mean(y, f_labelled, mean, variance, n_unlabelled)
    return CorrectedEstimates(n_unlabelled, criteria, mean_reward)


# ---- which checkpoint is better -----------------------------------------------------------------

_POINTS = {Outcome.A: 1.0, Outcome.B: 0.0, Outcome.TIE: 0.5, Outcome.INCONSISTENT: 0.5}


@dataclass
class RatingsComparison:
    """Ratings of the models / checkpoints in a preference run's labelled pairs, from the
    judge's outcomes and from the experts' labels, and how far the two orderings agree."""

    judge: list[Rating]
    experts: list[Rating]
    kendall_tau: float | None
    judge_win_rates: dict[str, dict[str, float | None]]
    expert_win_rates: dict[str, dict[str, float | None]]
    n_pairs: int
    reason: str | None = None
    chart: dict[str, Any] = field(default_factory=dict)


def checkpoint_ratings(session: Session, run: JudgeRun) -> RatingsComparison | None:
    """Bradley-Terry and Elo from the judge and from the experts (an inconsistent verdict counts
    as a tie here); None for rubric runs."""
    version = session.get(RubricVersion, run.rubric_version_id)
    if version is None or label_service.definition_of(version).mode != "preference":
        return None
    items = pairs.pair_items(session, run, version)
    players = pairs.pair_players(session, [str(item.key) for item in items])
    judge_games: list[tuple[str, str, float]] = []
    expert_games: list[tuple[str, str, float]] = []
    for item in items:
        names = players.get(str(item.key))
        if names is None:
            continue
        if item.outcome is not None:
            judge_games.append((*names, _POINTS[item.outcome]))
        expert_games.extend((*names, _POINTS[e]) for e in item.experts)
    if len({p for a, b, _ in expert_games for p in (a, b)}) < 2:
        return RatingsComparison(
            [],
            [],
            None,
            {},
            {},
            0,
            "not defined: the labelled pairs do not say which model or checkpoint wrote each "
            "answer (both rollouts of a pair need a model or checkpoint, and there must be at "
            "least two of them), so there is nothing to rate; the studio does not guess names",
        )
    judge_ratings = ratings(judge_games)
    expert_ratings = ratings(expert_games)
    return RatingsComparison(
        judge=judge_ratings,
        experts=expert_ratings,
        kendall_tau=rank_agreement(
            {r.player: r.bradley_terry for r in judge_ratings},
            {r.player: r.bradley_terry for r in expert_ratings},
        ),
        judge_win_rates=win_rates(judge_games),
        expert_win_rates=win_rates(expert_games),
        n_pairs=len({str(i.key) for i in items if str(i.key) in players}),
        chart=interval_chart(
            [f"judge · {r.player}" for r in judge_ratings]
            + [f"experts · {r.player}" for r in expert_ratings],
            [r.bradley_terry for r in (*judge_ratings, *expert_ratings)],
            [r.bt_low for r in (*judge_ratings, *expert_ratings)],
            [r.bt_high for r in (*judge_ratings, *expert_ratings)],
            "Bradley-Terry",
            x_range=None,
        ),
    )
