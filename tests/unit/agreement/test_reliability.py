"""Self-consistency over repeated verdicts and agreement between two judges."""

from __future__ import annotations

from typing import Any

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.agreement.reliability import (
    NOT_NUMERIC,
    ONE_VALUE,
    cross_judge_agreement,
    self_consistency,
)
from app.agreement.stats import (
    NO_ITEMS,
    BinaryFigures,
    CategoricalFigures,
    Figure,
    OrdinalFigures,
    binary_agreement,
    categorical_agreement,
    ordinal_agreement,
)


def test_self_consistency_on_a_scale():
    figures = self_consistency({"x": [1, 2, 3], "y": [4, 4, None], "z": [5], "w": [None, 2]})
    assert (figures.n_items, figures.n_skipped, figures.n_missing) == (2, 2, 2)
    assert (figures.all_agree.k, figures.all_agree.n) == (1, 2)
    # Sample standard deviations: x -> 1.0, y -> 0.0.
    assert figures.mean_std == Figure(0.5)
    assert figures.level_of_measurement == "interval"
    assert figures.alpha.value is not None


def test_self_consistency_of_labels_is_nominal_without_std():
    figures = self_consistency({1: ["a", "a"], 2: ["b", "b", "b"], 3: ["a", "b"]})
    assert figures.level_of_measurement == "nominal"
    assert (figures.all_agree.k, figures.all_agree.n) == (2, 3)
    assert figures.mean_std == Figure(None, NOT_NUMERIC)
    assert figures.alpha.value is not None and figures.alpha.value < 1


def test_self_consistency_of_booleans_is_nominal():
    figures = self_consistency({1: [True, True], 2: [False, False]})
    assert figures.level_of_measurement == "nominal"
    assert figures.all_agree.value == 1.0
    assert figures.alpha == Figure(1.0)


def test_self_consistency_edge_cases_give_reasons():
    empty = self_consistency({})
    assert empty.n_items == 0
    assert empty.all_agree.value is None and empty.all_agree.reason == NO_ITEMS
    assert empty.mean_std == Figure(None, NO_ITEMS)
    assert empty.alpha == Figure(None, NO_ITEMS)
    single = self_consistency({"only": [3]})
    assert (single.n_items, single.n_skipped) == (0, 1)
    constant = self_consistency({1: [4, 4], 2: [4, 4, 4]})
    assert constant.all_agree.value == 1.0
    assert constant.mean_std == Figure(0.0)
    assert constant.alpha == Figure(None, ONE_VALUE)


def test_self_consistency_rejects_a_numeric_level_for_labels():
    with pytest.raises(ValueError, match="needs numeric scores"):
        self_consistency({1: ["a", "b"]}, level_of_measurement="ordinal")


def _alpha_from_value_counts(usable: list[list[int]], level: Any) -> float:
    """Krippendorff's alpha through the package's other input form (counts per unit)."""
    domain = sorted({v for scores in usable for v in scores})
    counts = np.array([[scores.count(v) for v in domain] for scores in usable])
    return float(
        krippendorff.alpha(value_counts=counts, value_domain=domain, level_of_measurement=level)
    )


@settings(deadline=None)  # shared CI cores: no wall-clock limits
@given(
    repeats=st.dictionaries(
        st.integers(0, 30),
        st.lists(st.one_of(st.none(), st.integers(1, 5)), max_size=5),
        max_size=12,
    ),
    level=st.sampled_from(["nominal", "ordinal", "interval"]),
)
def test_self_consistency_equals_numpy_and_krippendorff(
    repeats: dict[int, list[int | None]], level: Any
):
    figures = self_consistency(repeats, level_of_measurement=level)
    usable = [[s for s in v if s is not None] for v in repeats.values()]
    usable = [v for v in usable if len(v) >= 2]
    assert figures.n_items == len(usable)
    assert figures.n_skipped == len(repeats) - len(usable)
    assert figures.n_missing == sum(v.count(None) for v in repeats.values())
    assert figures.all_agree.k == sum(len(set(v)) == 1 for v in usable)
    if not usable:
        assert figures.alpha == Figure(None, NO_ITEMS)
        return
    expected_std = np.mean([np.std(v, ddof=1) for v in usable])
    assert figures.mean_std.value == pytest.approx(expected_std)
    if len({s for v in usable for s in v}) < 2:
        assert figures.alpha == Figure(None, ONE_VALUE)
    else:
        expected = _alpha_from_value_counts(usable, level)
        if np.isnan(expected):
            assert figures.alpha.value is None
        else:
            assert figures.alpha.value == pytest.approx(expected)


def test_cross_judge_binary_on_common_items():
    a = {1: True, 2: False, 3: True, 4: None}
    b = {1: True, 2: True, 3: True, 5: False}
    cross = cross_judge_agreement(a, b)
    assert (cross.n_a, cross.n_b, cross.n_common) == (3, 4, 3)
    assert cross.figures == binary_agreement([True, False, True], [True, True, True])


def test_cross_judge_ordinal_and_categorical():
    ordinal = cross_judge_agreement(
        {1: 3, 2: 4}, {1: 3, 2: 5}, levels=[1, 2, 3, 4, 5], pass_level=4
    )
    assert isinstance(ordinal.figures, OrdinalFigures)
    assert ordinal.figures == ordinal_agreement([3, 4], [3, 5], [1, 2, 3, 4, 5], pass_level=4)
    labels = cross_judge_agreement({"p": "a", "q": "tie"}, {"p": "a", "q": "b"})
    assert isinstance(labels.figures, CategoricalFigures)
    assert labels.figures == categorical_agreement(["a", "tie"], ["a", "b"])


def test_cross_judge_without_overlap_keeps_the_kind_of_figures():
    cross = cross_judge_agreement({1: True}, {2: False})
    assert cross.n_common == 0
    assert isinstance(cross.figures, BinaryFigures)
    assert cross.figures.agreement.reason == NO_ITEMS
    assert cross.figures.kappa == Figure(None, NO_ITEMS)
    empty = cross_judge_agreement({}, {})
    assert isinstance(empty.figures, CategoricalFigures) and empty.figures.n == 0
