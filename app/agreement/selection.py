"""Judge-corrected estimates for any unlabelled selection the user picks.

The judge's error rates are measured on one rubric run's expert-labelled items (the calibration
run); the correction is applied to a selection of items the experts did not label: the verdicts
of that run or of another run of the same judge and rubric version, narrowed by a rollout
filter (model, checkpoint, group, steps, import, search), or the samples recorded during a
training run. The selection is only counted and averaged in SQL (passes per criterion, count,
mean and mean square of the normalised score): it is never loaded into Python. The labelled
side (the calibration run's labelled items) is read item by item, as the agreement figures are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, case, exists, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.agreement.corrected import (
    CorrectedRate,
    PPIMean,
    corrected_pass_rate,
    mean_meaning,
    ppi_mean,
    rate_meaning,
)
from app.agreement.subjects import chosen_labels
from app.core.errors import InvalidInput, NotFound
from app.drift.models import DriftSample, TrainingRun
from app.exports.models import ExportBundle
from app.judging.models import JudgeRun, Verdict
from app.labels import review
from app.labels import service as label_service
from app.labels import values as label_values
from app.labels.models import Label
from app.rollouts import search
from app.rollouts.models import Rollout
from app.rollouts.search import RolloutFilter
from app.rubrics.definition import Criterion, RubricDefinition
from app.rubrics.models import RubricVersion

_CHUNK = 500
JUDGE_OK = "ok"  # app.drift.kinds.JudgeStatus.ok


class SelectionSource(StrEnum):
    """Where the selection's judge verdicts come from."""

    RUN = "run"  # a judge run's verdicts, optionally narrowed by a rollout filter
    TRAINING_RUN = "training_run"  # the samples recorded during a training run


@dataclass(frozen=True)
class Selection:
    """What to correct. ``run_id`` None: the calibration run's own unlabelled verdicts."""

    source: SelectionSource = SelectionSource.RUN
    run_id: int | None = None
    rollouts: RolloutFilter = field(default_factory=RolloutFilter)
    training_run_id: int | None = None


@dataclass
class SelectionCriterion:
    key: str
    name: str
    kind: str  # boolean | scale (a scale passes at its pass level)
    rate: CorrectedRate
    meaning: str  # one sentence on what the corrected figure says


@dataclass
class SelectionEstimates:
    """The selection's judge-corrected pass rates and mean reward."""

    calibration_run_id: int
    rubric_version_id: int
    version_label: str
    judge: str
    described: str  # the selection in words
    n_selected: int  # judged, unlabelled items in the selection
    n_labelled_items: int  # labelled items of the calibration run the error rates come from
    criteria: list[SelectionCriterion]
    mean_reward: PPIMean | None
    mean_reward_reason: str | None
    mean_meaning: str | None
    caveat: str | None = None  # e.g. a training run whose judge may not be the calibrated one


def pass_level(criterion: Criterion) -> int:
    """The lowest passing level of a scale (the judge engine's rule: at least the midpoint)."""
    return -(-(criterion.min_value + criterion.max_value) // 2)


def judge_threshold(criterion: Criterion, *, normalized: bool) -> float:
    """A judge score passes at or above this: 0.5 for pass/fail (stored 0/1, or a rate over
    items); a scale's level rounds half up, so a raw score passes half a point below the pass
    level (``normalized``: the same point on the 0..1 scale the engine stores)."""
    if criterion.type == "boolean":
        return 0.5
    raw = pass_level(criterion) - 0.5
    if not normalized:
        return raw
    return (raw - criterion.min_value) / (criterion.max_value - criterion.min_value)


def _expert_passes(criterion: Criterion, value: Any) -> bool | None:
    if value is None:
        return None
    if criterion.type == "boolean":
        return bool(value)
    return float(value) >= pass_level(criterion)


def _describe_filter(flt: RolloutFilter) -> str:
    parts = []
    names = {
        "model": "model",
        "checkpoint": "checkpoint",
        "group": "group",
        "import_id": "import",
        "q": "matching",
    }
    for key, value in flt.params().items():
        if key in names:
            parts.append(f"{names[key]} {value!s}" if key != "q" else f'matching "{value}"')
    if flt.step_min is not None or flt.step_max is not None:
        low = "" if flt.step_min is None else str(flt.step_min)
        high = "" if flt.step_max is None else str(flt.step_max)
        parts.append(f"steps {low}–{high}")
    return ", ".join(parts)


# ---- the labelled side ---------------------------------------------------------------------


@dataclass
class _Labelled:
    criteria: dict[str, list[tuple[bool, bool]]]  # key -> (judge passes, expert passes)
    f: list[float]  # the judge's normalised score, once per label with an overall
    y: list[float]  # the expert's normalised overall score
    items: int


def _labelled_exists(version_ids: list[int], rollout_id: Any) -> ColumnElement[bool]:
    return (
        exists()
        .where(
            col(Label.rollout_id) == rollout_id,
            col(Label.pair_id).is_(None),
            col(Label.status) == "submitted",
            col(Label.rubric_version_id).in_(version_ids),
        )
        .correlate_except(Label)
    )


def _labelled_side(
    session: Session, run: JudgeRun, version: RubricVersion, definition: RubricDefinition
) -> _Labelled:
    """(judge, expert) pass/fail per criterion and (judge, expert) normalised scores over the
    calibration run's labelled items: its first usable verdict per rollout against each
    expert's label (labels on any version of the rubric count, as in the agreement figures)."""
    siblings = label_service.sibling_version_ids(session, version)
    verdicts = session.exec(
        select(Verdict)
        .where(
            Verdict.run_id == run.id,
            col(Verdict.pair_id).is_(None),
            col(Verdict.parse_status).in_(label_values.OK_PARSE_STATUSES),
            _labelled_exists(siblings, Verdict.rollout_id),
        )
        .order_by(col(Verdict.rollout_id), col(Verdict.repeat))
    ).all()
    first: dict[int, Verdict] = {}
    for verdict in verdicts:
        first.setdefault(verdict.rollout_id, verdict)
    out = _Labelled({c.key: [] for c in definition.criteria}, [], [], len(first))
    ids = list(first)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        labels = session.exec(
            select(Label).where(
                col(Label.rollout_id).in_(chunk),
                col(Label.pair_id).is_(None),
                col(Label.status) == "submitted",
                col(Label.rubric_version_id).in_(siblings),
            )
        ).all()
        grouped = chosen_labels(list(labels), version.id or 0)
        for rollout_id in chunk:
            verdict = first[rollout_id]
            reading = label_values.read_verdict(
                definition,
                scores=verdict.scores,
                answer=verdict.answer,
                aggregate=verdict.aggregate,
                normalized=verdict.normalized,
                parse_status=verdict.parse_status,
            )
            for label in grouped.get(label_service.rollout_subject(rollout_id), []):
                values = label.values or {}
                for criterion in definition.criteria:
                    judged = reading.criteria.get(criterion.key)
                    judge = label_values.judge_label(criterion, judged.value if judged else None)
                    expert = _expert_passes(criterion, values.get(criterion.key))
                    if judge is not None and expert is not None:
                        out.criteria[criterion.key].append(
                            (bool(_expert_passes(criterion, judge)), expert)
                        )
                aggregate = label_values.label_aggregate(definition, values)
                if aggregate is not None and reading.normalized is not None:
                    out.f.append(float(reading.normalized))
                    out.y.append(aggregate.normalized)
    return out


# ---- the selection, aggregated in SQL ------------------------------------------------------


@dataclass
class _Counts:
    n: int
    per_criterion: dict[str, tuple[int, int]]  # key -> (items with a score, passes)
    mean: float | None
    mean_square: float | None
    n_scored: int


def _aggregate(
    session: Session,
    definition: RubricDefinition,
    score_of: Any,
    overall: Any,
    where: list[ColumnElement[bool]],
    source: Any,
    *,
    normalized: bool,
) -> _Counts:
    columns: list[Any] = [
        func.count(),
        func.count(overall),
        func.avg(overall),
        func.avg(overall * overall),
    ]
    for criterion in definition.criteria:
        score = score_of(criterion.key)
        columns.append(func.count(score))
        columns.append(
            func.sum(case((score >= judge_threshold(criterion, normalized=normalized), 1), else_=0))
        )
    row = session.execute(sa_select(*columns).select_from(source).where(*where)).one()
    per: dict[str, tuple[int, int]] = {}
    for index, criterion in enumerate(definition.criteria):
        per[criterion.key] = (int(row[4 + 2 * index] or 0), int(row[5 + 2 * index] or 0))
    return _Counts(
        n=int(row[0] or 0),
        per_criterion=per,
        mean=None if row[2] is None else float(row[2]),
        mean_square=None if row[3] is None else float(row[3]),
        n_scored=int(row[1] or 0),
    )


def _run_counts(
    session: Session,
    target: JudgeRun,
    definition: RubricDefinition,
    siblings: list[int],
    flt: RolloutFilter,
) -> _Counts:
    where: list[ColumnElement[bool]] = [
        col(Verdict.run_id) == target.id,
        col(Verdict.pair_id).is_(None),
        col(Verdict.repeat) == 0,
        col(Verdict.parse_status).in_(label_values.OK_PARSE_STATUSES),
        ~_labelled_exists(siblings, Verdict.rollout_id),
    ]
    if flt.active:
        dialect = session.get_bind().dialect.name
        matching = sa_select(col(Rollout.id)).where(
            *search.conditions(dialect, target.project_id, flt)
        )
        where.append(col(Verdict.rollout_id).in_(matching))
    # The engine's normalised per-criterion scores (0..1): always numbers, whatever the judge
    # wrote (its raw pass/fail may be a JSON boolean, which PostgreSQL will not cast).
    criteria = col(Verdict.scores)["criteria"]
    return _aggregate(
        session,
        definition,
        lambda key: criteria[key].as_float(),
        col(Verdict.normalized),
        where,
        Verdict,
        normalized=True,
    )


def _training_counts(
    session: Session, training_run: TrainingRun, definition: RubricDefinition, siblings: list[int]
) -> _Counts:
    where: list[ColumnElement[bool]] = [
        col(DriftSample.training_run_id) == training_run.id,
        col(DriftSample.judge_status) == JUDGE_OK,
        ~(
            col(DriftSample.rollout_id).is_not(None)
            & _labelled_exists(siblings, DriftSample.rollout_id)
        ),
    ]
    criteria = col(DriftSample.judge_criteria)
    return _aggregate(
        session,
        definition,
        lambda key: criteria[key].as_float(),
        col(DriftSample.judge_aggregate),
        where,
        DriftSample,
        normalized=False,  # the records hold raw levels, pass/fail as 0/1
    )


# ---- the estimate --------------------------------------------------------------------------


def rubric_run(session: Session, project_id: int, run_id: int) -> tuple[JudgeRun, RubricVersion]:
    run = review.get_run(session, project_id, run_id)
    version = session.get(RubricVersion, run.rubric_version_id)
    if version is None:  # pragma: no cover - a foreign key keeps it
        raise NotFound("The run's rubric version no longer exists.")
    return run, version


def selection_estimates(
    session: Session, project_id: int, calibration_run_id: int, selection: Selection
) -> SelectionEstimates:
    """The selection's pass rate per criterion corrected for the calibration run's measured
    error rates (Rogan–Gladen with a bootstrap interval) and its PPI++ mean reward."""
    run, version = rubric_run(session, project_id, calibration_run_id)
    definition = label_service.definition_of(version)
    if definition.mode != "rubric":
        raise InvalidInput(
            f"Run {run.id} judges pairs (a preference rubric): corrected pass rates need a run "
            "of a rubric with pass/fail or scale criteria."
        )
    siblings = label_service.sibling_version_ids(session, version)
    judge = review.judge_name(run)
    caveat: str | None = None
    if selection.source == SelectionSource.TRAINING_RUN:
        if selection.training_run_id is None:
            raise InvalidInput("Choose the training run whose samples to correct.")
        training_run = session.get(TrainingRun, selection.training_run_id)
        if training_run is None or training_run.project_id != project_id:
            raise NotFound(f"No training run with id {selection.training_run_id} in this project.")
        counts = _training_counts(session, training_run, definition, siblings)
        described = f"the samples of training run “{training_run.name}” the judge scored"
        bundle = (
            session.get(ExportBundle, training_run.export_bundle_id)
            if training_run.export_bundle_id
            else None
        )
        if bundle is None:
            caveat = (
                "This training run names no export bundle: the correction holds only if its "
                f"reward used the calibrated judge ({judge}) and this rubric."
            )
        elif bundle.rubric_version_id not in siblings:
            caveat = (
                "This training run's bundle uses another rubric: its judge scores are read by "
                "criterion key, and the correction holds only where the criteria mean the same."
            )
    else:
        target = run
        if selection.run_id is not None and selection.run_id != run.id:
            target = review.get_run(session, project_id, selection.run_id)
            if target.rubric_version_id != run.rubric_version_id:
                raise InvalidInput(
                    f"Run {target.id} used another rubric version than run {run.id}: the "
                    "error rates measured on one do not carry over to the other."
                )
            if review.judge_name(target) != judge:
                raise InvalidInput(
                    f"Run {target.id} used another judge ({review.judge_name(target)}) than "
                    f"run {run.id} ({judge}): the error rates measured on one do not carry over."
                )
        counts = _run_counts(session, target, definition, siblings, selection.rollouts)
        where = _describe_filter(selection.rollouts)
        described = f"the unlabelled items of run {target.id}" + (f" ({where})" if where else "")
    labelled = _labelled_side(session, run, version, definition)
    criteria: list[SelectionCriterion] = []
    for index, criterion in enumerate(definition.criteria):
        n, passes = counts.per_criterion[criterion.key]
        rate = corrected_pass_rate(passes, n, labelled.criteria[criterion.key], seed=index)
        criteria.append(
            SelectionCriterion(
                criterion.key, criterion.name, criterion.type, rate, rate_meaning(rate)
            )
        )
    mean_reward: PPIMean | None = None
    reason: str | None = None
    if counts.n_scored < 2 or counts.mean is None or counts.mean_square is None:
        reason = "not defined: the selection needs two or more items with a judge score"
    elif len(labelled.y) < 2:
        reason = "not defined: needs two or more expert labels with every criterion filled in"
    else:
        n = counts.n_scored
        variance = max(0.0, counts.mean_square - counts.mean**2) * n / (n - 1)
        mean_reward = ppi_mean(labelled.y, labelled.f, counts.mean, variance, n)
    return SelectionEstimates(
        calibration_run_id=run.id or 0,
        rubric_version_id=version.id or 0,
        version_label=f"v{version.number}",
        judge=judge,
        described=described,
        n_selected=counts.n,
        n_labelled_items=labelled.items,
        criteria=criteria,
        mean_reward=mean_reward,
        mean_reward_reason=reason,
        mean_meaning=mean_meaning(mean_reward) if mean_reward else None,
        caveat=caveat,
    )


@dataclass
class SelectionChoices:
    """What the form offers: rubric runs to calibrate on, and training runs."""

    runs: list[review.RunRow]
    training_runs: list[TrainingRun]


def selection_choices(session: Session, project_id: int) -> SelectionChoices:
    runs = [row for row in review.list_runs(session, project_id) if row.mode == "rubric"]
    training_runs = list(
        session.exec(
            select(TrainingRun)
            .where(TrainingRun.project_id == project_id)
            .order_by(col(TrainingRun.id).desc())
            .limit(200)
        ).all()
    )
    return SelectionChoices(runs, training_runs)


# ---- the form's fields -----------------------------------------------------------------------

FIELDS = (
    "run",
    "source",
    "target_run",
    "model",
    "checkpoint",
    "group",
    "step_min",
    "step_max",
    "import_id",
    "q",
    "training_run",
)
_MAX_ID = 2**31 - 1


def _whole(value: str, name: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, not “{value[:40]}”.") from None
    if not 0 <= number <= _MAX_ID:
        raise InvalidInput(f"{name} must be between 0 and {_MAX_ID}.")
    return number


def parse_selection(params: dict[str, str]) -> tuple[int, Selection]:
    """(calibration run id, selection) from the form's or the query's plain strings."""
    get = {name: str(params.get(name) or "")[:500] for name in FIELDS}
    run_id = _whole(get["run"], "The calibration run")
    if run_id is None:
        raise InvalidInput("Choose the judge run whose labelled items measure the judge's errors.")
    try:
        source = SelectionSource(get["source"].strip() or SelectionSource.RUN.value)
    except ValueError:
        raise InvalidInput("The selection must be “run” or “training_run”.") from None
    if source == SelectionSource.TRAINING_RUN:
        training_run = _whole(get["training_run"], "The training run")
        if training_run is None:
            raise InvalidInput("Choose the training run whose samples to correct.")
        return run_id, Selection(source, training_run_id=training_run)
    step_min = _whole(get["step_min"], "The first step")
    step_max = _whole(get["step_max"], "The last step")
    if step_min is not None and step_max is not None and step_min > step_max:
        raise InvalidInput("The first step must not come after the last step.")

    def text(name: str, limit: int = 200) -> str | None:
        return get[name].strip()[:limit] or None

    flt = RolloutFilter(
        model=text("model"),
        checkpoint=text("checkpoint"),
        group=text("group"),
        step_min=step_min,
        step_max=step_max,
        import_id=_whole(get["import_id"], "The import"),
        q=text("q", search.MAX_QUERY_CHARS),
    )
    return run_id, Selection(source, run_id=_whole(get["target_run"], "The run"), rollouts=flt)
