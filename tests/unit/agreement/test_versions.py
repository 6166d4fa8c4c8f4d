"""Comparing two judge versions against the same human labels."""

from __future__ import annotations

import pytest

from app.agreement.stats import BinaryFigures, OrdinalFigures, binary_agreement, figure_values
from app.agreement.versions import FigureChange, Flip, compare_versions


def test_compare_binary_versions_lists_flips_and_figure_changes():
    old = {"r1": True, "r2": True, "r3": False, "r4": True, "r5": False}
    new = {"r1": False, "r2": True, "r3": True, "r4": True, "r5": True}
    human = {"r1": False, "r2": True, "r3": False, "r4": True}  # r5 is not labelled
    result = compare_versions(old, new, human)

    assert result.n_compared == 4
    assert result.old == binary_agreement([True, True, False, True], [False, True, False, True])
    assert result.new == binary_agreement([False, True, True, True], [False, True, False, True])
    assert result.flips == [
        Flip("r1", True, False, False, "now agrees"),
        Flip("r3", False, True, False, "now disagrees"),
        Flip("r5", False, True, None, "no human label"),
    ]
    assert [f.item for f in result.flips_by_change("now agrees")] == ["r1"]
    assert set(result.changes) == set(figure_values(result.old))
    # Agreement stays 3/4 (one fixed, one broken); the true-positive rate on "fail" holds at 1/2.
    assert result.changes["agreement"] == FigureChange(0.75, 0.75, 0.0)
    assert result.changes["true_positive_rate"] == FigureChange(0.5, 0.5, 0.0)


def test_compare_versions_delta_is_none_when_a_figure_is_undefined():
    # Old verdicts are all "pass" like the humans: kappa undefined; new ones disagree once.
    result = compare_versions({1: True, 2: True}, {1: True, 2: False}, {1: True, 2: True})
    assert result.changes["kappa"].old is None
    assert result.changes["kappa"].delta is None
    assert result.changes["agreement"].delta == pytest.approx(-0.5)


def test_compare_ordinal_versions_can_still_disagree():
    old = {1: 2, 2: 5, 3: 3}
    new = {1: 4, 2: 4, 3: 3}
    human = {1: 3, 2: 4, 3: 3}
    result = compare_versions(old, new, human, levels=[1, 2, 3, 4, 5], pass_level=4)
    assert isinstance(result.new, OrdinalFigures)
    assert result.flips == [Flip(1, 2, 4, 3, "still disagrees"), Flip(2, 5, 4, 4, "now agrees")]
    exact = result.changes["exact"]
    assert (exact.old, exact.new) == (1 / 3, 2 / 3)
    assert exact.delta == pytest.approx(1 / 3)
    assert "binary.kappa" in result.changes


def test_compare_versions_with_nothing_in_common():
    result = compare_versions({1: True}, {2: False}, {3: True})
    assert result.n_compared == 0
    assert result.flips == []
    assert isinstance(result.old, BinaryFigures)
    assert all(change.delta is None for change in result.changes.values())
