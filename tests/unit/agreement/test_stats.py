"""Binary, ordinal and categorical agreement figures checked against sklearn and scipy."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, spearmanr
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    mean_absolute_error,
    recall_score,
)

from app.agreement.stats import (
    CONSTANT,
    NO_ITEMS,
    ONE_CLASS,
    ONE_LEVEL,
    TOO_FEW,
    Figure,
    Proportion,
    binary_agreement,
    binomial_p_value,
    categorical_agreement,
    figure_values,
    ordinal_agreement,
    proportion,
)

LEVELS = [1, 2, 3, 4, 5]


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def assert_no_nan(obj: Any) -> None:
    """Walk a figures dataclass: no float anywhere may be NaN (undefined must be None)."""
    if dataclasses.is_dataclass(obj):
        for field in dataclasses.fields(obj):
            assert_no_nan(getattr(obj, field.name))
    elif isinstance(obj, dict):
        for value in obj.values():
            assert_no_nan(value)
    elif isinstance(obj, float):
        assert not math.isnan(obj)


def assert_matches(figure: Figure, expected: float, reason: str) -> None:
    if math.isnan(expected):
        assert figure == Figure(None, reason)
    else:
        assert figure.value == pytest.approx(expected, abs=1e-12)
        assert figure.reason is None


def assert_wilson(p: Proportion, k: int, n: int) -> None:
    assert (p.k, p.n) == (k, n)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert p.value == pytest.approx(k / n)
    assert p.ci_low == pytest.approx(ci.low)
    assert p.ci_high == pytest.approx(ci.high)
    assert p.reason is None


def as_label(passed: bool) -> str:
    return "pass" if passed else "fail"


bool_pairs = st.lists(st.tuples(st.booleans(), st.booleans()), max_size=40)


@settings(deadline=None)  # shared CI cores: no wall-clock limits
@given(pairs=bool_pairs, positive=st.sampled_from(["fail", "pass"]))
def test_binary_figures_equal_sklearn_and_scipy(pairs: list[tuple[bool, bool]], positive: Any):
    judge = [j for j, _ in pairs]
    human = [h for _, h in pairs]
    figures = binary_agreement(judge, human, positive=positive)
    judge_l = [as_label(v) for v in judge]
    human_l = [as_label(v) for v in human]
    negative = "pass" if positive == "fail" else "fail"

    assert figures.n == len(pairs)
    assert figures.positive == positive
    assert_no_nan(figures)
    if not pairs:
        assert figures.agreement.value is None and figures.agreement.reason == NO_ITEMS
        assert figures.kappa == Figure(None, NO_ITEMS)
        return
    matrix = confusion_matrix(human_l, judge_l, labels=["fail", "pass"])
    assert figures.confusion == {
        "fail": {"fail": matrix[0, 0], "pass": matrix[0, 1]},
        "pass": {"fail": matrix[1, 0], "pass": matrix[1, 1]},
    }
    assert_wilson(
        figures.agreement, int(accuracy_score(human_l, judge_l, normalize=False)), len(pairs)
    )
    kappa = _quiet(cohen_kappa_score, human_l, judge_l, labels=["fail", "pass"])
    assert_matches(figures.kappa, kappa, ONE_CLASS)
    for got, label in (
        (figures.true_positive_rate, positive),
        (figures.true_negative_rate, negative),
    ):
        n_label = human_l.count(label)
        if n_label == 0:
            assert got.value is None
            assert got.reason == f"not defined: no items the human marked {label}"
        else:
            recall = recall_score(human_l, judge_l, pos_label=label, labels=["fail", "pass"])
            assert got.value == pytest.approx(recall)
            assert_wilson(got, round(recall * n_label), n_label)


def test_binary_single_class_gives_kappa_none_with_reason():
    figures = binary_agreement([True, True, True], [True, True, True])
    assert figures.agreement.value == 1.0
    assert figures.kappa == Figure(None, "not defined: only one class present")
    assert figures.true_positive_rate.value is None
    assert figures.true_positive_rate.reason == "not defined: no items the human marked fail"
    assert figures.true_negative_rate.value == 1.0


def test_binary_all_agree_on_both_classes_gives_kappa_one():
    figures = binary_agreement([True, False, False], [True, False, False])
    assert figures.kappa == Figure(1.0)
    assert figures.true_positive_rate.value == 1.0
    assert figures.true_negative_rate.value == 1.0


def test_binary_empty_gives_none_everywhere():
    figures = binary_agreement([], [])
    assert figures.n == 0
    for figure in (figures.agreement, figures.true_positive_rate, figures.true_negative_rate):
        assert figure.value is None and figure.ci_low is None and figure.ci_high is None
        assert figure.reason is not None and figure.reason.startswith("not defined:")
    assert figures.kappa == Figure(None, NO_ITEMS)
    assert figures.confusion == {"fail": {"fail": 0, "pass": 0}, "pass": {"fail": 0, "pass": 0}}


def test_binary_fail_is_the_positive_class_by_default():
    # human: fail, fail, pass; judge catches one of two failures and passes the pass.
    figures = binary_agreement([False, True, True], [False, False, True])
    assert (figures.true_positive_rate.k, figures.true_positive_rate.n) == (1, 2)
    assert (figures.true_negative_rate.k, figures.true_negative_rate.n) == (1, 1)
    assert figures.confusion["fail"] == {"fail": 1, "pass": 1}


def test_binary_rejects_bad_input():
    with pytest.raises(ValueError, match="judge has 1 values but human has 2"):
        binary_agreement([True], [True, False])
    with pytest.raises(ValueError, match="booleans"):
        binary_agreement(["pass"], [True])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="positive"):
        binary_agreement([True], [True], positive="yes")  # type: ignore[arg-type]


ordinal_pairs = st.lists(st.tuples(st.sampled_from(LEVELS), st.sampled_from(LEVELS)), max_size=40)


@settings(deadline=None)  # shared CI cores: no wall-clock limits
@given(pairs=ordinal_pairs, pass_level=st.sampled_from([None, *LEVELS]))
def test_ordinal_figures_equal_sklearn_and_scipy(
    pairs: list[tuple[int, int]], pass_level: int | None
):
    judge = [j for j, _ in pairs]
    human = [h for _, h in pairs]
    figures = ordinal_agreement(judge, human, LEVELS, pass_level=pass_level)
    assert_no_nan(figures)
    assert figures.n == len(pairs)
    matrix = confusion_matrix(human, judge, labels=LEVELS) if pairs else np.zeros((5, 5))
    assert figures.confusion == {
        h: {j: int(matrix[hi, ji]) for ji, j in enumerate(LEVELS)} for hi, h in enumerate(LEVELS)
    }
    if pass_level is None:
        assert figures.binary is None
    else:
        expected = binary_agreement(
            [j >= pass_level for j in judge], [h >= pass_level for h in human]
        )
        assert figures.binary == expected
    if not pairs:
        assert figures.exact.reason == NO_ITEMS and figures.within_one.reason == NO_ITEMS
        assert figures.spearman == Figure(None, NO_ITEMS)
        assert figures.mean_absolute_error == Figure(None, NO_ITEMS)
        assert figures.quadratic_kappa == Figure(None, NO_ITEMS)
        return
    assert_wilson(figures.exact, int(accuracy_score(human, judge, normalize=False)), len(pairs))
    assert_wilson(figures.within_one, sum(abs(j - h) <= 1 for j, h in pairs), len(pairs))
    assert figures.mean_absolute_error.value == pytest.approx(mean_absolute_error(human, judge))
    qwk = _quiet(cohen_kappa_score, human, judge, weights="quadratic", labels=LEVELS)
    assert_matches(figures.quadratic_kappa, qwk, ONE_LEVEL)
    if len(pairs) < 2:
        assert figures.spearman == Figure(None, TOO_FEW)
    else:
        assert_matches(figures.spearman, _quiet(spearmanr, judge, human).statistic, CONSTANT)


def test_ordinal_within_one_counts_steps_on_the_levels():
    # On a 0/5/10 scale, 5 vs 10 is one step apart; 0 vs 10 is two.
    figures = ordinal_agreement([5, 0, 10], [10, 10, 10], [0, 5, 10])
    assert (figures.exact.k, figures.within_one.k) == (1, 2)
    assert figures.mean_absolute_error.value == pytest.approx(5.0)


def test_ordinal_constant_scores_give_none_with_reasons():
    figures = ordinal_agreement([3, 3, 3], [3, 3, 3], LEVELS)
    assert figures.exact.value == 1.0
    assert figures.spearman == Figure(None, "not defined: constant scores")
    assert figures.quadratic_kappa == Figure(None, "not defined: only one level present")
    assert figures.mean_absolute_error == Figure(0.0)


def test_ordinal_rejects_scores_outside_levels_and_bad_levels():
    with pytest.raises(ValueError, match=r"judge scores \[7\] are not among the levels"):
        ordinal_agreement([7], [1], LEVELS)
    with pytest.raises(ValueError, match="distinct"):
        ordinal_agreement([1], [1], [1, 1, 2])
    with pytest.raises(ValueError, match="distinct"):
        ordinal_agreement([], [], [])


@settings(deadline=None)  # shared CI cores: no wall-clock limits
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from(["a", "b", "tie"]), st.sampled_from(["a", "b", "tie"])),
        max_size=40,
    )
)
def test_categorical_figures_equal_sklearn(pairs: list[tuple[str, str]]):
    judge = [j for j, _ in pairs]
    reference = [r for _, r in pairs]
    figures = categorical_agreement(judge, reference)
    assert_no_nan(figures)
    assert figures.labels == sorted(set(judge) | set(reference))
    if not pairs:
        assert figures.kappa == Figure(None, NO_ITEMS)
        return
    labels = figures.labels
    matrix = _quiet(confusion_matrix, reference, judge, labels=labels)
    assert figures.confusion == {
        r: {j: int(matrix[ri, ji]) for ji, j in enumerate(labels)} for ri, r in enumerate(labels)
    }
    assert_wilson(figures.agreement, sum(j == r for j, r in pairs), len(pairs))
    assert_matches(figures.kappa, _quiet(cohen_kappa_score, reference, judge), ONE_CLASS)


def test_categorical_accepts_mixed_label_types_and_fixed_labels():
    figures = categorical_agreement([1, "x", None], [1, "x", "x"])
    assert figures.agreement.k == 2
    assert set(figures.labels) == {1, "x", None}
    fixed = categorical_agreement(["b"], ["b"], labels=["a", "b", "c"])
    assert fixed.labels == ["a", "b", "c"]
    assert fixed.confusion["a"] == {"a": 0, "b": 0, "c": 0}
    with pytest.raises(ValueError, match="not among the labels"):
        categorical_agreement(["z"], ["a"], labels=["a"])


def test_proportion_and_p_value_edge_cases():
    assert proportion(0, 0) == Proportion(0, 0, None, None, None, NO_ITEMS)
    assert proportion(0, 0, "not defined: why").reason == "not defined: why"
    assert proportion(3, 4).percent == pytest.approx(75.0)
    assert proportion(0, 0).percent is None
    assert binomial_p_value(0, 0) == Figure(None, NO_ITEMS)
    assert binomial_p_value(9, 10).value == pytest.approx(binomtest(9, 10).pvalue)


def test_figure_of_turns_nan_and_inf_into_none():
    assert Figure.of(float("nan"), "not defined: x") == Figure(None, "not defined: x")
    assert Figure.of(np.inf, "not defined: y") == Figure(None, "not defined: y")
    assert Figure.of(np.float64(0.25), "unused") == Figure(0.25)
    assert Figure.of(0.25, "unused").defined and not Figure.undefined("r").defined


def test_figure_values_flattens_nested_figures():
    figures = ordinal_agreement([1, 5], [2, 5], LEVELS, pass_level=4)
    values = figure_values(figures)
    assert set(values) == {
        "exact",
        "within_one",
        "spearman",
        "mean_absolute_error",
        "quadratic_kappa",
        "binary.agreement",
        "binary.kappa",
        "binary.true_positive_rate",
        "binary.true_negative_rate",
    }
    assert values["exact"] == 0.5
    assert values["binary.kappa"] == 1.0
    assert figure_values(binary_agreement([], []))["kappa"] is None
