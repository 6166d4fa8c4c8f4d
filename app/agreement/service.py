"""Agreement figures from the database: a judge run against the experts' labels, per criterion and
overall, agreement between experts, preference agreement (MT-Bench), and two runs compared.

The maths is in the pure modules `stats`, `preference`, `reliability` and `versions`; this module
only gathers the pairs of values to feed them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.agreement import pairs
from app.agreement.bootstrap import METHOD as BOOTSTRAP_METHOD
from app.agreement.bootstrap import Interval, agreement_intervals
from app.agreement.charts import (
    CalibrationBin,
    calibration_bins,
    calibration_chart,
    interval_chart,
)
from app.agreement.corrected import CorrectedRate, PPIMean, corrected_pass_rate, ppi_mean
from app.agreement.pairwise import Outcome, PairwiseFigures
from app.agreement.preference import (
    PairVote,
    PreferenceFigures,
    human_human_agreement,
    preference_agreement,
)
from app.agreement.ratings import Rating, rank_agreement, ratings, win_rates
from app.agreement.reliability import InterAnnotatorFigures, inter_annotator
from app.agreement.stats import (
    FAIL,
    BinaryFigures,
    CategoricalFigures,
    Figure,
    OrdinalFigures,
    Proportion,
    binary_agreement,
    categorical_agreement,
    figure_values,
    ordinal_agreement,
    proportion,
)
from app.agreement.versions import VersionComparison, compare_versions
from app.auth.models import User
from app.core.errors import InvalidInput
from app.judging.models import JudgeRun, Verdict
from app.labels import review
from app.labels import service as label_service
from app.labels import values as label_values
from app.labels.models import GoldItem, Label
from app.labels.review import RunData, RunSubject
from app.rollouts.models import Rollout
from app.rubrics.definition import Criterion, RubricDefinition
from app.rubrics.models import RubricVersion

OVERALL = "_overall"
PREFERENCE_LABELS = ["A", "B", "tie"]
Scope = Literal["all", "gold", "gold_development", "gold_test"]
SCOPES: dict[str, str] = {
    "all": "every labelled item both runs judged",
    "gold": "gold items (both splits)",
    "gold_test": "gold items of the test split",
    "gold_development": "gold items of the development split",
}


def pass_level(low: int, high: int) -> int:
    """The lowest passing level: the judge engine's rule is "at least the midpoint"."""
    return math.ceil((low + high) / 2)


@dataclass
class CriterionAgreement:
    """Figures for one criterion (or the overall verdict) over (label, verdict) pairs."""

    key: str
    name: str
    kind: Literal["boolean", "scale"]
    figures: BinaryFigures | OrdinalFigures
    kappa: Figure | None = None  # unweighted Cohen's kappa over the levels (scales)
    inter_annotator: InterAnnotatorFigures | None = None
    uncertainty: CriterionUncertainty | None = None

    @property
    def n(self) -> int:
        return self.figures.n

    @property
    def binary(self) -> BinaryFigures | None:
        if isinstance(self.figures, BinaryFigures):
            return self.figures
        return self.figures.binary


@dataclass
class PreferenceAgreement:
    judge_human: PreferenceFigures
    human_human: PreferenceFigures
    categorical: CategoricalFigures
    n_pairs: int
    n_votes: int


@dataclass
class RunAgreement:
    data: RunData
    criteria: list[CriterionAgreement]
    overall: CriterionAgreement | None
    overall_rule: str
    preference: PreferenceAgreement | None
    n_labels: int
    pairwise: PairwiseFigures | None = None
    calibration: list[CalibrationBin] = field(default_factory=list)

    @property
    def definition(self) -> RubricDefinition:
        return self.data.definition


@dataclass
class CriterionUncertainty:
    """Item bootstrap intervals for raw agreement and kappa, and the base rates kappa depends
    on: the share of expert labels that fail, and of judge verdicts that fail."""

    agreement_ci: Interval
    kappa_ci: Interval
    expert_fail_rate: Proportion
    judge_fail_rate: Proportion
    method: str = BOOTSTRAP_METHOD


def uncertainty(
    judge: list[Any], human: list[Any], items: list[int], categories: list[Any], passes: Any
) -> CriterionUncertainty:
    """``passes(value)`` says whether a value passes (for the base rates)."""
    code = {value: i for i, value in enumerate(categories)}
    intervals = agreement_intervals(
        [code[v] for v in judge], [code[v] for v in human], items, len(categories)
    )
    return CriterionUncertainty(
        agreement_ci=intervals.agreement,
        kappa_ci=intervals.kappa,
        expert_fail_rate=proportion(sum(not passes(v) for v in human), len(human)),
        judge_fail_rate=proportion(sum(not passes(v) for v in judge), len(judge)),
    )


def _pairs_for(
    subjects: list[RunSubject], criterion: Criterion, items: list[int] | None = None
) -> tuple[list[Any], list[Any], dict[str, list[Any]]]:
    judge: list[Any] = []
    human: list[Any] = []
    by_item: dict[str, list[Any]] = defaultdict(list)
    for index, subject in enumerate(subjects):
        verdict = subject.reading.criteria.get(criterion.key) if subject.reading.ok else None
        value = label_values.judge_label(criterion, verdict.value if verdict else None)
        for label in subject.labels:
            expert = (label.values or {}).get(criterion.key)
            if expert is None:
                continue
            by_item[subject.subject_key].append(expert)
            if value is not None:
                judge.append(value)
                human.append(expert)
                if items is not None:
                    items.append(index)
    return judge, human, by_item


def _inter(by_item: dict[str, list[Any]], levels: list[int] | None = None) -> InterAnnotatorFigures:
    """Experts among themselves on items with two or more labels: alpha and AC1 with CIs."""
    if levels is None:
        return inter_annotator(by_item, [False, True], "nominal")
    return inter_annotator(by_item, levels, "ordinal")


def criterion_agreement(
    subjects: list[RunSubject], criterion: Criterion, *, resamples: int = 1000
) -> CriterionAgreement:
    """Figures for one criterion; ``resamples`` 0 leaves the bootstrap intervals out."""
    items: list[int] = []
    judge, human, by_item = _pairs_for(subjects, criterion, items)
    if criterion.type == "boolean":
        return CriterionAgreement(
            key=criterion.key,
            name=criterion.name,
            kind="boolean",
            figures=binary_agreement(judge, human, positive=FAIL),
            inter_annotator=_inter(by_item),
            uncertainty=uncertainty(judge, human, items, [False, True], bool)
            if resamples
            else None,
        )
    levels = [level.value for level in criterion.levels]
    at = pass_level(levels[0], levels[-1])
    return CriterionAgreement(
        uncertainty=uncertainty(judge, human, items, levels, lambda v: v >= at)
        if resamples
        else None,
        key=criterion.key,
        name=criterion.name,
        kind="scale",
        figures=ordinal_agreement(
            judge, human, levels, pass_level=pass_level(levels[0], levels[-1])
        ),
        kappa=categorical_agreement(judge, human, labels=levels).kappa,
        inter_annotator=_inter(by_item, levels),
    )


def _overall_level(definition: RubricDefinition, value: float) -> int:
    levels = label_values.integer_scale(definition) or [0, 1]
    return min(max(label_values.round_half_up(value), levels[0]), levels[-1])


def overall_judge(definition: RubricDefinition, reading: label_values.JudgeReading) -> Any:
    """The judge's overall verdict: the level of its aggregate on an integer scale, else
    pass (normalised score 0.5 or more) or fail."""
    if not reading.ok:
        return None
    if label_values.integer_scale(definition) is not None:
        return None if reading.aggregate is None else _overall_level(definition, reading.aggregate)
    return None if reading.normalized is None else reading.normalized >= 0.5


def overall_expert(definition: RubricDefinition, label: Label) -> Any:
    """The expert's overall verdict by the same rule (None while criteria are missing)."""
    aggregate = label_values.label_aggregate(definition, label.values or {})
    if aggregate is None:
        return None
    if label_values.integer_scale(definition) is not None:
        return _overall_level(definition, aggregate.value)
    return aggregate.normalized >= 0.5


def overall_agreement(
    definition: RubricDefinition, subjects: list[RunSubject]
) -> tuple[CriterionAgreement, str]:
    levels = label_values.integer_scale(definition)
    judge: list[Any] = []
    human: list[Any] = []
    items: list[int] = []
    by_item: dict[str, list[Any]] = defaultdict(list)
    for index, subject in enumerate(subjects):
        judge_value = overall_judge(definition, subject.reading)
        for label in subject.labels:
            expert = overall_expert(definition, label)
            if expert is None:
                continue
            by_item[subject.subject_key].append(expert)
            if judge_value is not None:
                judge.append(judge_value)
                human.append(expert)
                items.append(index)
    if levels is not None:
        rule = (
            f"Overall: the score on the {levels[0]}–{levels[-1]} scale (the judge's aggregate "
            "and the expert's, computed by the rubric's own rules), rounded to the nearest level."
        )
        agreement = CriterionAgreement(
            key=OVERALL,
            name="Overall score",
            kind="scale",
            figures=ordinal_agreement(
                judge, human, levels, pass_level=pass_level(levels[0], levels[-1])
            ),
            kappa=categorical_agreement(judge, human, labels=levels).kappa,
            inter_annotator=_inter(by_item, levels),
            uncertainty=uncertainty(
                judge, human, items, levels, lambda v: v >= pass_level(levels[0], levels[-1])
            ),
        )
        return agreement, rule
    rule = (
        "Overall: a response passes when its normalised score (by the rubric's own rules) is "
        "0.5 or more."
    )
    return (
        CriterionAgreement(
            key=OVERALL,
            name="Overall verdict",
            kind="boolean",
            figures=binary_agreement(judge, human, positive=FAIL),
            inter_annotator=_inter(by_item),
            uncertainty=uncertainty(judge, human, items, [False, True], bool),
        ),
        rule,
    )


def _pair_votes(subjects: list[RunSubject]) -> tuple[list[PairVote], list[PairVote]]:
    judge: list[PairVote] = []
    human: list[PairVote] = []
    for subject in subjects:
        if subject.pair_id is None or subject.rollout_b_id is None:
            continue
        # The pair's two responses play the two "models" of MT-Bench's votes.
        models = (f"rollout {subject.rollout_id}", f"rollout {subject.rollout_b_id}")
        if subject.reading.ok and subject.reading.winner:
            judge.append(PairVote(subject.pair_id, *models, subject.reading.winner, voter="judge"))
        for label in subject.labels:
            if label.preference:
                human.append(
                    PairVote(subject.pair_id, *models, label.preference, voter=label.annotator_key)
                )
    return judge, human


def preference_figures(subjects: list[RunSubject]) -> PreferenceAgreement:
    judge_votes, human_votes = _pair_votes(subjects)
    judge_side: list[str] = []
    human_side: list[str] = []
    for subject in subjects:
        winner = subject.reading.winner if subject.reading.ok else None
        for label in subject.labels:
            if winner and label.preference:
                judge_side.append(winner)
                human_side.append(label.preference)
    return PreferenceAgreement(
        judge_human=preference_agreement(judge_votes, human_votes),
        human_human=human_human_agreement(human_votes),
        categorical=categorical_agreement(judge_side, human_side, labels=PREFERENCE_LABELS),
        n_pairs=len({vote.question_id for vote in human_votes}),
        n_votes=len(human_votes),
    )


def run_agreement(session: Session, run: JudgeRun) -> RunAgreement:
    """Agreement of a run's verdicts with the experts' submitted labels.

    Each expert label counts once: an item labelled by k experts gives k (label, verdict) pairs,
    as MT-Bench counts each expert vote separately.
    """
    data = review.run_data(session, run)
    subjects = data.labelled
    n_labels = sum(len(s.labels) for s in subjects)
    if data.definition.mode == "preference":
        return RunAgreement(
            data=data,
            criteria=[],
            overall=None,
            overall_rule="",
            preference=preference_figures(subjects),
            n_labels=n_labels,
            pairwise=pairs.run_pairwise(session, run),
        )
    criteria = [criterion_agreement(subjects, c) for c in data.definition.criteria]
    overall, rule = overall_agreement(data.definition, subjects)
    return RunAgreement(
        data=data,
        criteria=criteria,
        overall=overall,
        overall_rule=rule,
        preference=None,
        n_labels=n_labels,
        calibration=run_calibration(data.definition, subjects),
    )


def run_calibration(
    definition: RubricDefinition, subjects: list[RunSubject]
) -> list[CalibrationBin]:
    """The judge's normalised score against the share of expert labels that pass overall."""
    scale = label_values.integer_scale(definition)
    scores: list[float] = []
    passes: list[bool] = []
    for subject in subjects:
        if not subject.reading.ok or subject.reading.normalized is None:
            continue
        for label in subject.labels:
            expert = overall_expert(definition, label)
            if expert is None:
                continue
            scores.append(float(subject.reading.normalized))
            passes.append(
                bool(expert >= pass_level(scale[0], scale[-1])) if scale else bool(expert)
            )
    return calibration_bins(scores, passes)


# ---- two runs compared ------------------------------------------------------------------------

Item = tuple[str, str | None]  # (subject key, annotator key or None for an unlabelled item)


@dataclass
class FlipRow:
    """An item whose verdict changed on one criterion, with what each expert said."""

    rollout_id: int
    external_id: str
    criterion_key: str
    criterion_name: str
    old: str
    new: str
    experts: list[tuple[str, str, str]] = field(default_factory=list)  # name, value, change


@dataclass
class CriterionComparison:
    key: str
    name: str
    comparison: VersionComparison[Item]
    flips: list[FlipRow]


@dataclass
class RunComparison:
    old: RunData
    new: RunData
    scope: str
    n_items: int
    criteria: list[CriterionComparison]
    skipped: list[str]
    hidden: int


def _scope_ids(session: Session, project_id: int, scope: str) -> set[int] | None:
    if scope == "all":
        return None
    query = select(GoldItem.rollout_id).where(GoldItem.project_id == project_id)
    if scope in ("gold_test", "gold_development"):
        query = query.where(GoldItem.split == scope.removeprefix("gold_"))
    return {int(r) for r in session.exec(query).all()}


def _comparable(old: Criterion, new: Criterion) -> bool:
    return old.type == new.type and [lv.value for lv in old.levels] == [
        lv.value for lv in new.levels
    ]


def _criterion_maps(
    old: RunData, new: RunData, keys: list[str], criterion: Criterion | None, key: str
) -> tuple[dict[Item, Any], dict[Item, Any], dict[Item, Any], dict[str, str]]:
    old_map: dict[Item, Any] = {}
    new_map: dict[Item, Any] = {}
    human: dict[Item, Any] = {}
    names: dict[str, str] = {}

    def judged(data: RunData, subject_key: str) -> Any:
        subject = data.subjects[subject_key]
        if not subject.reading.ok:
            return None
        if key == review.WINNER:
            return subject.reading.winner
        if key == OVERALL:
            return overall_judge(data.definition, subject.reading)
        verdict = subject.reading.criteria.get(key)
        return label_values.judge_label(criterion, verdict.value) if criterion and verdict else None

    for subject_key in keys:
        # The same expert labels on both sides: the new run's choice, else the old run's.
        labels = {label.annotator_key: label for label in old.subjects[subject_key].labels}
        labels.update({label.annotator_key: label for label in new.subjects[subject_key].labels})
        before, after = judged(old, subject_key), judged(new, subject_key)
        annotators: list[str | None] = list(labels) or [None]
        for annotator in annotators:
            item: Item = (subject_key, annotator)
            old_map[item], new_map[item] = before, after
            if annotator is None:
                continue
            label = labels[annotator]
            names[annotator] = label.annotator_name or annotator
            if key == review.WINNER:
                human[item] = label.preference
            elif key == OVERALL:
                human[item] = overall_expert(new.definition, label)
            else:
                human[item] = (label.values or {}).get(key)
    return old_map, new_map, human, names


def compare_runs(
    session: Session, old_run: JudgeRun, new_run: JudgeRun, *, scope: str, viewer: User
) -> RunComparison:
    """The change in every figure from ``old_run`` to ``new_run`` on the items both judged
    (within ``scope``), and the items whose verdict flipped."""
    if scope not in SCOPES:
        raise InvalidInput(f"The scope must be one of {', '.join(SCOPES)}.")
    if old_run.id == new_run.id:
        raise InvalidInput("Choose two different runs to compare.")
    old, new = review.run_data(session, old_run), review.run_data(session, new_run)
    if old.definition.mode != new.definition.mode:
        raise InvalidInput("A preference run cannot be compared with a rubric run.")
    allowed = _scope_ids(session, old_run.project_id, scope)
    blind = label_service.blind_subjects(session, old_run.project_id, viewer)
    keys = [
        key
        for key, subject in old.subjects.items()
        if key in new.subjects and (allowed is None or subject.rollout_id in allowed)
    ]
    external = {
        int(rid or 0): ext
        for rid, ext in session.exec(
            select(Rollout.id, Rollout.external_id).where(
                col(Rollout.id).in_([old.subjects[k].rollout_id for k in keys] or [0])
            )
        ).all()
    }
    plan: list[tuple[str, str, Criterion | None]] = []
    skipped: list[str] = []
    if old.definition.mode == "preference":
        plan.append((review.WINNER, "Preferred response", None))
    else:
        new_criteria = {c.key: c for c in new.definition.criteria}
        for before in old.definition.criteria:
            after = new_criteria.get(before.key)
            if after is None or not _comparable(before, after):
                skipped.append(before.name)
            else:
                plan.append((before.key, before.name, after))
        for key in new_criteria:
            if key not in {c.key for c in old.definition.criteria}:
                skipped.append(new_criteria[key].name)
        if label_values.integer_scale(old.definition) == label_values.integer_scale(new.definition):
            plan.append((OVERALL, "Overall", None))
    results: list[CriterionComparison] = []
    hidden: set[str] = set()
    for key, name, criterion in plan:
        old_map, new_map, human, names = _criterion_maps(old, new, keys, criterion, key)
        levels = pass_at = None
        if criterion is not None and criterion.type == "scale":
            levels = [level.value for level in criterion.levels]
            pass_at = pass_level(levels[0], levels[-1])
        elif key == OVERALL and (scale := label_values.integer_scale(new.definition)):
            levels, pass_at = scale, pass_level(scale[0], scale[-1])
        comparison = compare_versions(
            old_map, new_map, human, levels=levels, pass_level=pass_at, positive=FAIL
        )
        grouped: dict[str, FlipRow] = {}
        for flip in comparison.flips:
            subject_key, annotator = flip.item
            if subject_key in blind:
                hidden.add(subject_key)
                continue
            subject = old.subjects[subject_key]
            row = grouped.setdefault(
                subject_key,
                FlipRow(
                    rollout_id=subject.rollout_id,
                    external_id=external.get(subject.rollout_id, str(subject.rollout_id)),
                    criterion_key=key,
                    criterion_name=name,
                    old=label_values.format_value(criterion, flip.old),
                    new=label_values.format_value(criterion, flip.new),
                ),
            )
            if annotator is not None:
                row.experts.append(
                    (
                        names.get(annotator, annotator),
                        label_values.format_value(criterion, flip.human),
                        flip.change,
                    )
                )
        results.append(CriterionComparison(key, name, comparison, list(grouped.values())))
    n_items = len({item for item in keys})
    return RunComparison(old, new, scope, n_items, results, skipped, len(hidden))


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


def _unlabelled(run: JudgeRun, labelled_ids: list[int]) -> Any:
    return (
        col(Verdict.run_id) == run.id,
        col(Verdict.pair_id).is_(None),
        col(Verdict.repeat) == 0,
        col(Verdict.parse_status).in_(label_values.OK_PARSE_STATUSES),
        col(Verdict.rollout_id).not_in(labelled_ids or [0]),
    )


def corrected_estimates(
    session: Session, run: JudgeRun, result: RunAgreement
) -> CorrectedEstimates | None:
    """Rogan–Gladen pass rate per pass/fail criterion and the PPI++ mean reward, over the
    run's verdicts on unlabelled rollouts (counted and averaged in SQL)."""
    if result.definition.mode != "rubric":
        return None
    subjects = result.data.labelled
    labelled_ids = [s.rollout_id for s in subjects]
    where = _unlabelled(run, labelled_ids)
    count, mean, mean_square = session.execute(
        sa_select(
            func.count(col(Verdict.id)),
            func.avg(col(Verdict.normalized)),
            func.avg(col(Verdict.normalized) * col(Verdict.normalized)),
        ).where(*where)
    ).one()
    n_unlabelled = int(count or 0)
    criteria: list[CorrectedCriterion] = []
    for criterion in result.definition.criteria:
        if criterion.type != "boolean":
            continue
        score = col(Verdict.scores)["criteria"][criterion.key].as_float()
        passes = session.execute(
            sa_select(func.count(col(Verdict.id))).where(*where, score >= 0.5)
        ).scalar_one()
        judge, human, _ = _pairs_for(subjects, criterion)
        criteria.append(
            CorrectedCriterion(
                criterion.key,
                criterion.name,
                corrected_pass_rate(
                    int(passes or 0),
                    n_unlabelled,
                    [(bool(j), bool(h)) for j, h in zip(judge, human, strict=True)],
                ),
            )
        )
    f_labelled: list[float] = []
    y: list[float] = []
    for subject in subjects:
        if not subject.reading.ok or subject.reading.normalized is None:
            continue
        for label in subject.labels:
            aggregate = label_values.label_aggregate(result.definition, label.values or {})
            if aggregate is not None:
                f_labelled.append(float(subject.reading.normalized))
                y.append(aggregate.normalized)
    mean_reward = None
    if n_unlabelled >= 2 and mean is not None:
        variance = (
            max(0.0, float(mean_square) - float(mean) ** 2) * n_unlabelled / (n_unlabelled - 1)
        )
        mean_reward = ppi_mean(y, f_labelled, float(mean), variance, n_unlabelled)
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
