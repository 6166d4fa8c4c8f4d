"""Agreement figures of a run's labelled subjects against the experts: per criterion, overall,
preference votes, calibration, and the labelled inputs of the corrected estimates.

Pure: the subjects come from `app.labels.run_subjects` (labels joined to verdicts in SQL); this
module only turns them into (judge, expert) pairs and hands those to `stats`, `preference`,
`reliability` and `bootstrap`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from app.agreement.bootstrap import METHOD as BOOTSTRAP_METHOD
from app.agreement.bootstrap import Interval, agreement_intervals
from app.agreement.charts import CalibrationBin, calibration_bins
from app.agreement.preference import (
    PairVote,
    PreferenceFigures,
    human_human_agreement,
    preference_agreement,
)
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
    ordinal_agreement,
    proportion,
)
from app.agreement.subjects import RunSubject, label_aggregate
from app.labels import values as label_values
from app.rubrics.definition import Criterion, RubricDefinition

OVERALL = "_overall"
PREFERENCE_LABELS = ["A", "B", "tie"]


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
        method=intervals.agreement.method,
    )


def pairs_for(
    subjects: list[RunSubject], criterion: Criterion, items: list[int] | None = None
) -> tuple[list[Any], list[Any], dict[str, list[Any]]]:
    judge: list[Any] = []
    human: list[Any] = []
    by_item: dict[str, list[Any]] = defaultdict(list)
    key = criterion.key
    judge_label = label_values.judge_label
    # Readings are shared between subjects with equal scores: convert each once.
    converted: dict[int, Any] = {}
    for index, subject in enumerate(subjects):
        reading = subject.reading
        value = converted.get(id(reading), converted)
        if value is converted:
            verdict = reading.criteria.get(key) if reading.ok else None
            value = converted[id(reading)] = judge_label(
                criterion, verdict.value if verdict else None
            )
        for label in subject.labels:
            expert = (label.values or {}).get(key)
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
    judge, human, by_item = pairs_for(subjects, criterion, items)
    return criterion_figures(criterion, judge, human, by_item, items, resamples=resamples)


def criterion_figures(
    criterion: Criterion,
    judge: list[Any],
    human: list[Any],
    by_item: dict[str, list[Any]],
    items: list[int],
    *,
    resamples: int = 1000,
) -> CriterionAgreement:
    """``criterion_agreement`` from the pairs ``pairs_for`` gave (for a caller that needs the
    pairs too, so the subjects are walked once)."""
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


def overall_expert(definition: RubricDefinition, label: Any) -> Any:
    """The expert's overall verdict by the same rule (None while criteria are missing)."""
    aggregate = label_aggregate(definition, label)
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


def labelled_rewards(
    definition: RubricDefinition, subjects: list[RunSubject]
) -> tuple[list[float], list[float]]:
    """(judge's normalised score, expert's normalised aggregate) per usable (verdict, label):
    the labelled half of the PPI++ mean reward."""
    judge: list[float] = []
    expert: list[float] = []
    for subject in subjects:
        if not subject.reading.ok or subject.reading.normalized is None:
            continue
        for label in subject.labels:
            aggregate = label_aggregate(definition, label)
            if aggregate is not None:
                judge.append(float(subject.reading.normalized))
                expert.append(aggregate.normalized)
    return judge, expert
