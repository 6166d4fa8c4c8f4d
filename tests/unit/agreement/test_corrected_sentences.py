"""The corrected figures in words: the headline "the judge says 84%; corrected for its error rate
72% (66–78%)", one sentence on what it means, the refusal in plain words, and where a judge's
score passes for a selection counted in SQL."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.agreement.corrected import (
    NO_INFORMATION,
    CorrectedRate,
    PPIMean,
    mean_meaning,
    rate_headline,
    rate_meaning,
)
from app.agreement.selection import judge_threshold, parse_selection, pass_level
from app.core.errors import InvalidInput
from app.labels.values import judge_label
from app.rubrics.definition import Criterion, Level


def test_headline_and_meaning() -> None:
    rate = CorrectedRate(0.84, 0.72, 0.66, 0.78, 0.9, 0.75, 1200, 80)
    assert rate_headline(rate) == "the judge says 84%; corrected for its error rate 72% (66–78%)"
    meaning = rate_meaning(rate)
    assert "passes 25% of the answers experts fail" in meaning
    assert "fails 10% of those they pass" in meaning
    assert "all 1200 selected items, about 72% would pass" in meaning
    refused = CorrectedRate(0.5, None, None, None, 0.4, 0.5, 10, 20, NO_INFORMATION)
    assert rate_headline(refused) == f"the judge says 50%; {NO_INFORMATION}"
    assert "no better than chance" in rate_meaning(refused)
    mean = PPIMean(0.7, 0.6, 0.62, 0.58, 0.66, 0.8, 40, 900)
    assert "0.620, 95% interval 0.580–0.660" in mean_meaning(mean)


def _scale(low: int, high: int) -> Criterion:
    levels = [Level(value=v, description=f"level {v}") for v in range(low, high + 1)]
    return Criterion(key="k", name="K", type="scale", levels=levels)


@given(
    st.sampled_from([(1, 5), (1, 4), (0, 3), (1, 10)]),
    st.floats(min_value=0, max_value=1, allow_nan=False),
)
def test_the_sql_threshold_agrees_with_the_judges_label(bounds: tuple[int, int], u: float) -> None:
    """A raw score passes in SQL exactly when its level (rounded half up) passes, on the raw and
    the normalised scale."""
    low, high = bounds
    criterion = _scale(low, high)
    raw = low + u * (high - low)
    level = judge_label(criterion, raw)
    assert isinstance(level, int)
    passes = level >= pass_level(criterion)
    assert (raw >= judge_threshold(criterion, normalized=False)) == passes
    if abs(u - judge_threshold(criterion, normalized=True)) > 1e-9:
        assert (u >= judge_threshold(criterion, normalized=True)) == passes


def test_parse_selection_plain_words() -> None:
    run, chosen = parse_selection({"run": "3", "checkpoint": " ckpt-9 ", "step_min": "0"})
    assert run == 3 and chosen.rollouts.checkpoint == "ckpt-9" and chosen.rollouts.step_min == 0
    run, chosen = parse_selection({"run": "3", "source": "training_run", "training_run": "4"})
    assert chosen.training_run_id == 4
    for params, said in [
        ({}, "Choose the judge run"),
        ({"run": "x"}, "whole number"),
        ({"run": "1", "source": "nope"}, "must be"),
        ({"run": "1", "source": "training_run"}, "Choose the training run"),
        ({"run": "1", "step_min": "5", "step_max": "2"}, "must not come after"),
        ({"run": "1", "import_id": "99999999999"}, "between 0 and"),
    ]:
        with pytest.raises(InvalidInput, match=said):
            parse_selection(params)
