"""Property tests: for any set of verdicts and labels, the figures the agreement service builds
from (label, verdict) pairs equal scikit-learn / SciPy computed on the same pairs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score, mean_absolute_error

from app.agreement.service import criterion_agreement
from app.labels.models import Label
from app.labels.review import RunSubject
from app.labels.values import CriterionVerdict, JudgeReading
from app.rubrics.builtin import BUILTIN_TEMPLATES

# Undefined figures are the point of some examples: the libraries warn about them, we compare.
pytestmark = pytest.mark.filterwarnings(
    "ignore::scipy.stats.ConstantInputWarning", "ignore::sklearn.exceptions.UndefinedMetricWarning"
)

SAFE = BUILTIN_TEMPLATES["generic_pass_fail"].criterion("Safe")
GROUNDING = BUILTIN_TEMPLATES["legal_contract_review"].criterion("TargetDocument_Grounding")

items = st.lists(
    st.tuples(
        st.one_of(st.none(), st.booleans()),  # None: the judge failed on this item
        st.lists(st.booleans(), max_size=3),  # the experts' labels
    ),
    max_size=25,
)
scale_items = st.lists(
    st.tuples(
        st.one_of(st.none(), st.floats(1, 5)),  # a per-comment mean
        st.lists(st.integers(1, 5), max_size=3),
    ),
    max_size=25,
)


def _subjects(key: str, rows: list[tuple[object, list[object]]]) -> list[RunSubject]:
    subjects = []
    for index, (judge, labels) in enumerate(rows):
        reading = (
            JudgeReading(False, {}, None, None)
            if judge is None
            else JudgeReading(True, {key: CriterionVerdict(judge)}, None, None)
        )
        subject = RunSubject(f"r:{index}", index, None, None, reading)
        subject.labels = [
            Label(
                project_id=1,
                rollout_id=index,
                subject_key=f"r:{index}",
                rubric_version_id=1,
                annotator_key=f"name:{n}",
                values={key: value},
            )
            for n, value in enumerate(labels)
        ]
        subjects.append(subject)
    return subjects


def _same(actual: float | None, expected: float) -> bool:
    if math.isnan(expected):
        return actual is None
    return actual is not None and math.isclose(actual, expected, abs_tol=1e-9)


@settings(max_examples=150, deadline=None)
@given(items)
def test_pass_fail_pairs_match_sklearn(rows) -> None:
    result = criterion_agreement(_subjects("Safe", rows), SAFE)
    pairs = [(j, h) for j, labels in rows if j is not None for h in labels]
    judge = [j for j, _ in pairs]
    human = [h for _, h in pairs]
    figures = result.figures
    assert figures.n == len(pairs)
    if not pairs:
        assert figures.agreement.value is None and figures.kappa.value is None
        return
    assert math.isclose(figures.agreement.value, sum(j == h for j, h in pairs) / len(pairs))
    kappa = (
        cohen_kappa_score(human, judge, labels=[False, True])
        if len(set(judge) | set(human)) > 1
        else float("nan")
    )
    assert _same(figures.kappa.value, kappa)
    failed = [j for j, h in pairs if not h]
    assert figures.true_positive_rate.n == len(failed)
    if failed:
        assert math.isclose(figures.true_positive_rate.value, failed.count(False) / len(failed))
    # Expert-expert agreement only counts items with two or more labels.
    assert result.inter_annotator.n_items == sum(len(labels) >= 2 for _, labels in rows)


@settings(max_examples=150, deadline=None)
@given(scale_items)
def test_scale_pairs_match_sklearn_and_scipy(rows) -> None:
    result = criterion_agreement(_subjects(GROUNDING.key, rows), GROUNDING)
    pairs = [(math.floor(j + 0.5), h) for j, labels in rows if j is not None for h in labels]
    figures = result.figures
    assert figures.n == len(pairs)
    if len(pairs) < 2:
        assert figures.spearman.value is None
        return
    judge = [j for j, _ in pairs]
    human = [h for _, h in pairs]
    assert math.isclose(figures.mean_absolute_error.value, mean_absolute_error(human, judge))
    assert _same(figures.spearman.value, spearmanr(judge, human).statistic)
    qwk = cohen_kappa_score(human, judge, labels=[1, 2, 3, 4, 5], weights="quadratic")
    assert _same(figures.quadratic_kappa.value, qwk)
