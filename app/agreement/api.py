"""JSON routes for agreement figures: a judge run against the experts, and two runs compared."""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.agreement import leaderboard, selection, slices
from app.agreement import service as agreement_service
from app.agreement.corrected import rate_headline
from app.agreement.pairwise import DEFINITIONS, PairwiseFigures
from app.agreement.stats import figure_values
from app.auth.dependencies import ProjectReader, SessionDep
from app.core.ids import BigId, Id
from app.labels import review

router = APIRouter(prefix="/api/v1/projects/{project_id}", tags=["agreement"])


def jsonable(value: Any) -> Any:
    """Figures dataclasses as JSON: nested objects, string keys, None for undefined numbers."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class CriterionFigures(BaseModel):
    key: str = Field(description="criterion key, or _overall")
    name: str
    kind: str = Field(description="boolean | scale")
    n: int = Field(description="(label, verdict) pairs: each expert label counts once")
    figures: dict[str, Any] = Field(
        description="raw agreement, Cohen's kappa, true-positive / true-negative rates (fail is "
        "the positive class), confusion (rows: expert, columns: judge); for scales also exact "
        "and within-one agreement, Spearman, mean absolute error, quadratic weighted kappa and "
        "the pass/fail figures at the pass level. Undefined figures are null with a reason."
    )
    kappa: dict[str, Any] | None = Field(description="unweighted Cohen's kappa (scales)")
    inter_annotator: dict[str, Any] | None = Field(
        description="agreement between experts on items with two or more labels: "
        "Krippendorff's alpha and Gwet's AC1, each with a bootstrap interval over items"
    )
    uncertainty: dict[str, Any] | None = Field(
        default=None,
        description="95% percentile bootstrap intervals over items (all labels of an item "
        "resampled together) for raw agreement and Cohen's kappa, and the base rates kappa "
        "depends on: the share of expert labels and of judge verdicts that fail",
    )


class EstimatePublic(BaseModel):
    value: float | None = Field(description="a fraction (0-1) or a kappa; null when undefined")
    n: int = Field(description="the denominator: expert labels, or pairs for pair-level figures")
    ci_low: float | None = Field(description="lower bound of the 95% bootstrap interval")
    ci_high: float | None = Field(description="upper bound of the 95% bootstrap interval")
    method: str = Field(description="how the interval was computed")
    reason: str | None = Field(default=None, description="why the value is undefined")


def _described(name: str) -> Any:
    return Field(description=DEFINITIONS[name])


class PairwiseFiguresPublic(BaseModel):
    """Pairwise figures by the standard definitions (LLMBar / MT-Bench), verdicts asked in both
    presentation orders, against the expert labels. Real ties and inconsistent verdicts apart."""

    n_pairs: int = Field(description="labelled pairs")
    n_labels: int = Field(description="expert labels on them (each counts once)")
    n_both_orders: int = Field(description="pairs the judge answered in both orders")
    accuracy_ab: EstimatePublic = _described("accuracy_ab")
    accuracy_ba: EstimatePublic = _described("accuracy_ba")
    accuracy: EstimatePublic = _described("accuracy")
    both_correct: EstimatePublic = _described("both_correct")
    positional_agreement: EstimatePublic = _described("positional_agreement")
    kappa_ab: EstimatePublic = _described("kappa_ab")
    kappa_ba: EstimatePublic = _described("kappa_ba")
    kappa: EstimatePublic = _described("kappa")
    kappa_between_orders: EstimatePublic = _described("kappa_between_orders")
    tie_rate: EstimatePublic = _described("tie_rate")
    inconsistent_rate: EstimatePublic = _described("inconsistent_rate")
    position_bias: EstimatePublic = _described("position_bias")
    judge_prefers_longer: dict[str, Any] = _described("length_bias")
    experts_prefer_longer: dict[str, Any] = _described("length_bias")
    confusion_ab: dict[str, dict[str, int]] = Field(
        description="expert label (rows) by the judge's verdict in order AB (columns)"
    )
    confusion_ba: dict[str, dict[str, int]] = Field(
        description="expert label (rows) by the judge's verdict in order BA (columns)"
    )


def pairwise_public(figures: PairwiseFigures) -> PairwiseFiguresPublic:
    values: dict[str, Any] = {
        name: EstimatePublic(**jsonable(estimate)) for name, estimate in figures.figures.items()
    }
    return PairwiseFiguresPublic(
        n_pairs=figures.n_pairs,
        n_labels=figures.n_labels,
        n_both_orders=figures.n_both_orders,
        position_bias=EstimatePublic(**jsonable(figures.first_wins_when_inconsistent)),
        judge_prefers_longer=jsonable(figures.judge_length),
        experts_prefer_longer=jsonable(figures.expert_length),
        confusion_ab=figures.confusion_ab,
        confusion_ba=figures.confusion_ba,
        **values,
    )


class RunAgreementPublic(BaseModel):
    run_id: Id
    rubric_version_id: Id = Field(description="the id queues, runs, exports and imports take")
    rubric_version: str
    positive_class: str = "fail"
    items_judged: int
    judge_errors: int
    items_labelled: int
    labels: int
    overall_rule: str
    overall: CriterionFigures | None
    criteria: list[CriterionFigures]
    preference: dict[str, Any] | None = Field(
        description="preference runs: MT-Bench agreement with and without ties, judge-expert "
        "and expert-expert, with counts (k of n)"
    )
    pairwise: PairwiseFiguresPublic | None = Field(
        default=None,
        description="preference runs: the standard pairwise figures, each with a bootstrap "
        "interval over pairs",
    )


def _criterion(c: agreement_service.CriterionAgreement) -> CriterionFigures:
    return CriterionFigures(
        key=c.key,
        name=c.name,
        kind=c.kind,
        n=c.n,
        figures=jsonable(c.figures),
        kappa=jsonable(c.kappa) if c.kappa is not None else None,
        inter_annotator=jsonable(c.inter_annotator) if c.inter_annotator is not None else None,
        uncertainty=jsonable(c.uncertainty) if c.uncertainty is not None else None,
    )


@router.get("/runs/{run_id}/agreement", response_model=RunAgreementPublic)
def run_agreement(run_id: Id, session: SessionDep, ctx: ProjectReader) -> RunAgreementPublic:
    """Agreement of a judge run with the experts' submitted labels, per criterion and overall."""
    run = review.get_run(session, ctx.project_id, run_id)
    result = agreement_service.run_agreement(session, run)
    return RunAgreementPublic(
        run_id=run.id or 0,
        rubric_version_id=run.rubric_version_id,
        rubric_version=result.summary.version_label,
        items_judged=result.summary.items_judged,
        judge_errors=result.summary.judge_errors,
        items_labelled=result.items_labelled,
        labels=result.n_labels,
        overall_rule=result.overall_rule,
        overall=_criterion(result.overall) if result.overall else None,
        criteria=[_criterion(c) for c in result.criteria],
        preference=jsonable(result.preference) if result.preference else None,
        pairwise=pairwise_public(result.pairwise) if result.pairwise else None,
    )


class FigureChangePublic(BaseModel):
    old: float | None
    new: float | None
    delta: float | None


class FlipPublic(BaseModel):
    rollout_id: BigId
    external_id: str
    old: str
    new: str
    experts: list[dict[str, str]]


class CriterionComparisonPublic(BaseModel):
    key: str
    name: str
    n_compared: int
    changes: dict[str, FigureChangePublic]
    flips: list[FlipPublic]


class RunComparisonPublic(BaseModel):
    old_run_id: Id
    new_run_id: Id
    scope: str
    items: int
    skipped_criteria: list[str]
    hidden: int
    criteria: list[CriterionComparisonPublic]


@router.get("/agreement/compare", response_model=RunComparisonPublic)
def compare_runs(
    session: SessionDep,
    ctx: ProjectReader,
    old_run_id: Id,
    new_run_id: Id,
    scope: Annotated[str, Query(pattern="^(all|gold|gold_test|gold_development)$")] = "gold",
) -> RunComparisonPublic:
    """The change in each agreement figure from one run to another on the items both judged
    (gold items by default), and every item whose verdict flipped."""
    project_id = ctx.project_id
    old_run = review.get_run(session, project_id, old_run_id)
    new_run = review.get_run(session, project_id, new_run_id)
    comparison = agreement_service.compare_runs(
        session, old_run, new_run, scope=scope, viewer=ctx.user
    )
    return RunComparisonPublic(
        old_run_id=old_run_id,
        new_run_id=new_run_id,
        scope=scope,
        items=comparison.n_items,
        skipped_criteria=comparison.skipped,
        hidden=comparison.hidden,
        criteria=[
            CriterionComparisonPublic(
                key=c.key,
                name=c.name,
                n_compared=c.comparison.n_compared,
                changes={
                    path: FigureChangePublic(old=ch.old, new=ch.new, delta=ch.delta)
                    for path, ch in c.comparison.changes.items()
                    if path in figure_values(c.comparison.old)
                },
                flips=[
                    FlipPublic(
                        rollout_id=f.rollout_id,
                        external_id=f.external_id,
                        old=f.old,
                        new=f.new,
                        experts=[
                            {"annotator": name, "value": value, "change": change}
                            for name, value, change in f.experts
                        ],
                    )
                    for f in c.flips
                ],
            )
            for c in comparison.criteria
        ],
    )


class SlicePublic(BaseModel):
    value: str = Field(description='the slice\'s value ("all" for the pooled row)')
    n: int = Field(description="expert labels in the slice")
    figures: dict[str, float | None] = Field(
        description="the figures computed on the slice alone (fractions; kappas as numbers); "
        "pairwise runs: accuracy_ab ... inconsistent_rate; rubric runs: <criterion>.agreement, "
        ".kappa, .true_positive_rate, .true_negative_rate"
    )


class SliceBreakdownPublic(BaseModel):
    run_id: int
    rubric_version_id: int
    slice: str = Field(description="what the items are broken down by")
    annotators: list[str] | None = Field(
        description="the labellers whose labels count (null: every labeller)"
    )
    pooled: SlicePublic = Field(description="every labelled item together")
    slices: list[SlicePublic]
    slice_mean: dict[str, float | None] = Field(
        description="per figure, the unweighted mean over the slices where it is defined: "
        "each slice counts once whatever its size (compare with the pooled figure)"
    )
    definitions: dict[str, str] = Field(description="what each pairwise figure means")


@router.get("/runs/{run_id}/agreement/slices", response_model=SliceBreakdownPublic)
def run_agreement_slices(
    run_id: int,
    session: SessionDep,
    ctx: ProjectReader,
    slice: Annotated[
        str,
        Query(
            max_length=120,
            description="metadata.<key>, group, model, checkpoint, step[:width], gold_split "
            "or annotator",
        ),
    ] = "group",
    annotator: Annotated[
        list[str] | None, Query(description="count only these labellers' labels (keys)")
    ] = None,
    annotator_role: Annotated[
        str | None,
        Query(pattern="^(admin|engineer|expert|reviewer)$", description="only members with it"),
    ] = None,
) -> SliceBreakdownPublic:
    """The run's agreement figures per slice of the labelled items, with the unweighted mean
    over slices beside the pooled figure."""
    project_id = ctx.project_id
    run = review.get_run(session, project_id, run_id)
    spec = slices.parse_slice(slice)
    keys = slices.annotator_keys(session, project_id, annotator_role)
    if annotator:
        keys = [k for k in annotator if keys is None or k in keys]
    breakdown = slices.run_slices(session, run, spec, annotators=keys)
    return SliceBreakdownPublic(
        run_id=run.id or 0,
        rubric_version_id=run.rubric_version_id,
        slice=breakdown.slice,
        annotators=breakdown.annotators,
        pooled=SlicePublic(**dataclasses.asdict(breakdown.pooled)),
        slices=[SlicePublic(**dataclasses.asdict(row)) for row in breakdown.rows],
        slice_mean=breakdown.slice_mean,
        definitions=DEFINITIONS,
    )


class LeaderboardRowPublic(BaseModel):
    run_id: int
    judge: str
    rubric: str
    rubric_version_id: int = Field(description="the id queues, runs, exports and imports take")
    rubric_version: int = Field(description="the version number")
    mode: str = Field(description="rubric | preference")
    kind: str
    status: str
    n_labels: int = Field(description="expert labels the figures are computed on")
    headline: str = Field(
        description="accuracy (pairwise: mean of the two orders) or agreement (rubric: the "
        "overall verdict)"
    )
    value: float | None = Field(description="the headline figure, a fraction")
    ci_low: float | None = Field(description="95% bootstrap interval over items")
    ci_high: float | None
    kappa: float | None = Field(description="Cohen's kappa (pairwise: mean of the two orders)")
    kappa_ci_low: float | None
    kappa_ci_high: float | None
    base_rate: float | None = Field(
        description="what kappa depends on: the experts' share of fail (rubric) or of A (pairs)"
    )
    true_positive_rate: float | None = Field(description="failures caught (rubric runs)")
    true_negative_rate: float | None = Field(description="passes kept (rubric runs)")
    positional_agreement: float | None = Field(description="pairwise runs, both orders")
    self_consistency: float | None = Field(
        description="share of items whose repeated verdicts all agree (runs with repeats)"
    )
    input_tokens: int
    output_tokens: int
    cost: float
    mean_latency_ms: float | None = Field(description="null for imported (external) runs")
    extras: dict[str, Any]


@router.get("/agreement/leaderboard", response_model=list[LeaderboardRowPublic])
def runs_leaderboard(
    session: SessionDep,
    ctx: ProjectReader,
    sort: Annotated[str, Query(max_length=40)] = "value",
    dir: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    q: Annotated[str, Query(max_length=200, description="filter on judge and rubric")] = "",
    scope: Annotated[
        leaderboard.Scope, Query(description="all labelled items, or the gold test split")
    ] = leaderboard.Scope.ALL,
) -> list[LeaderboardRowPublic]:
    """Every judge run of the project with its headline figures (sortable, filterable)."""
    rows = leaderboard.leaderboard(session, ctx.project_id, scope)
    shown = leaderboard.sort_rows(leaderboard.filter_rows(rows, q), sort, dir == "desc")
    return [LeaderboardRowPublic(**dataclasses.asdict(row)) for row in shown]


class CorrectedRatePublic(BaseModel):
    key: str
    name: str
    kind: str = Field(description="boolean | scale (a scale passes at its pass level)")
    judge_rate: float | None = Field(description="the judge's pass rate on the selection")
    corrected: float | None = Field(
        description="Rogan–Gladen: (judge rate + failures caught - 1) / (passes kept + failures "
        "caught - 1), clipped to 0-1; null when refused (the two add up to 1 or less, or a class "
        "is missing among the labels)"
    )
    ci_low: float | None = Field(
        description="95% percentile bootstrap interval: labelled items resampled, the "
        "selection's pass count redrawn"
    )
    ci_high: float | None
    passes_kept: float | None = Field(
        description="the share of expert passes the judge passed (the true-positive rate with "
        "pass as the positive class; elsewhere the studio counts fail as positive)"
    )
    failures_caught: float | None = Field(
        description="the share of expert failures the judge failed"
    )
    n_selected: int = Field(description="selected items with a judge score for the criterion")
    n_labelled: int = Field(description="labelled verdicts the rates are measured on")
    reason: str | None = Field(description="why no corrected figure is given")
    headline: str = Field(description='"the judge says 84%; corrected for its error rate 72% …"')
    meaning: str = Field(description="one sentence on what the figure says")


class CorrectedMeanPublic(BaseModel):
    judge_mean: float = Field(description="the judge's mean normalised score on the selection")
    estimate: float = Field(description="PPI++ estimate of the experts' mean normalised score")
    ci_low: float = Field(description="95% normal interval (PPI++ variance)")
    ci_high: float
    lam: float = Field(description="the power-tuning weight given to the judge's scores")
    classical: float = Field(description="the experts' mean on the labelled items alone")
    n_labelled: int
    n_unlabelled: int


class SelectionEstimatesPublic(BaseModel):
    calibration_run_id: int
    rubric_version_id: int = Field(description="the id queues, runs, exports and imports take")
    rubric_version: str
    judge: str
    selection: str = Field(description="the selection in words")
    n_selected: int = Field(description="judged items in the selection nobody labelled")
    n_labelled_items: int = Field(description="labelled items of the calibration run")
    criteria: list[CorrectedRatePublic]
    mean_reward: CorrectedMeanPublic | None
    mean_reward_reason: str | None
    mean_reward_meaning: str | None
    caveat: str | None


@router.get("/agreement/corrected", response_model=SelectionEstimatesPublic)
def corrected_estimates(
    session: SessionDep,
    ctx: ProjectReader,
    run: Annotated[
        Id, Query(description="the rubric run whose labelled items give the error rates")
    ],
    source: Annotated[
        selection.SelectionSource, Query(description="run: a judge run's verdicts; training_run")
    ] = selection.SelectionSource.RUN,
    target_run: Annotated[
        Id | None, Query(description="the run whose verdicts to correct (default: `run`)")
    ] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    checkpoint: Annotated[str | None, Query(max_length=200)] = None,
    group: Annotated[str | None, Query(max_length=200)] = None,
    step_min: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    step_max: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    import_id: Annotated[Id | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=500, description="full-text search")] = None,
    training_run: Annotated[Id | None, Query(description="source=training_run: its samples")] = (
        None
    ),
) -> SelectionEstimatesPublic:
    """Judge-corrected pass rates per criterion (Rogan–Gladen, bootstrap CI) and the PPI++
    mean reward over an unlabelled selection, counted in the database."""
    fields = {
        "run": run,
        "source": source.value,
        "target_run": target_run,
        "model": model,
        "checkpoint": checkpoint,
        "group": group,
        "step_min": step_min,
        "step_max": step_max,
        "import_id": import_id,
        "q": q,
        "training_run": training_run,
    }
    run_id, chosen = selection.parse_selection(
        {k: "" if v is None else str(v) for k, v in fields.items()}
    )
    found = selection.selection_estimates(session, ctx.project_id, run_id, chosen)
    return SelectionEstimatesPublic(
        calibration_run_id=found.calibration_run_id,
        rubric_version_id=found.rubric_version_id,
        rubric_version=found.version_label,
        judge=found.judge,
        selection=found.described,
        n_selected=found.n_selected,
        n_labelled_items=found.n_labelled_items,
        criteria=[
            CorrectedRatePublic(
                key=c.key,
                name=c.name,
                kind=c.kind,
                judge_rate=c.rate.judge_rate,
                corrected=c.rate.corrected,
                ci_low=c.rate.ci_low,
                ci_high=c.rate.ci_high,
                passes_kept=c.rate.sensitivity,
                failures_caught=c.rate.specificity,
                n_selected=c.rate.n_unlabelled,
                n_labelled=c.rate.n_labelled,
                reason=c.rate.reason,
                headline=rate_headline(c.rate),
                meaning=c.meaning,
            )
            for c in found.criteria
        ],
        mean_reward=CorrectedMeanPublic(**dataclasses.asdict(found.mean_reward))
        if found.mean_reward
        else None,
        mean_reward_reason=found.mean_reward_reason,
        mean_reward_meaning=found.mean_meaning,
        caveat=found.caveat,
    )
