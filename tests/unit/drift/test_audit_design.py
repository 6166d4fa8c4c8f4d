"""Pure parts of audits: equal allocation over strata, and agreement over steps."""

from __future__ import annotations

import pytest

from app.drift.buckets import BucketPlan
from app.drift.step_agreement import (
    AuditPair,
    DeservedAnswer,
    agreement_over_steps,
    signal_buckets,
)
from app.drift.stratify import ExtraStratum, Stratum, allocate


def test_equal_allocation_caps_small_strata_and_gives_the_rest_to_others() -> None:
    counts = {Stratum(0, 1): 100, Stratum(0, 2): 1, Stratum(1, 1): 100, Stratum(1, 2): 100}
    quota = allocate(counts, 40)
    assert sum(quota.values()) == 40
    assert quota[Stratum(0, 2)] == 1
    assert sorted(q for s, q in quota.items() if s != Stratum(0, 2)) == [13, 13, 13]
    assert allocate(counts, 1000) == counts  # asking for more than there is takes everything
    assert allocate(counts, 40) == quota  # deterministic


def test_stratum_names() -> None:
    assert Stratum(2, 3).name(ExtraStratum.none) == "b2-q3"
    assert Stratum(2, 3, 1).name(ExtraStratum.length) == "b2-q3-short"
    assert Stratum(2, 3, 0).name(ExtraStratum.criterion) == "b2-q3-fail"
    assert Stratum(2, 3, -1).name(ExtraStratum.criterion) == "b2-q3-unjudged"


def _pairs(step: int, sample: int, agree: int, total: int = 3) -> list[AuditPair]:
    return [
        AuditPair(sample, step, f"c{i}", judge_pass=True, human_pass=i < agree)
        for i in range(total)
    ]


def test_agreement_per_bucket_with_intervals_and_early_late_test() -> None:
    plan = BucketPlan(start=0, width=100, count=6)
    pairs = []
    for sample in range(10):
        pairs += _pairs(step=10 + sample, sample=sample, agree=3)  # bucket 0: all agree
        pairs += _pairs(step=250, sample=100 + sample, agree=2)  # bucket 2: 2 of 3
        pairs += _pairs(step=550, sample=200 + sample, agree=0)  # bucket 5: none
    answers = [DeservedAnswer(200 + i, 550, "no" if i < 8 else "yes") for i in range(10)]
    result = agreement_over_steps(plan, pairs, answers)
    by_start = {b.step_start: b for b in result.buckets}
    assert set(by_start) == {0, 200, 500}
    assert by_start[0].agreement == 1.0 and by_start[500].agreement == 0.0
    assert by_start[200].agreement == pytest.approx(2 / 3)
    ci = by_start[200].figures.agreement
    assert ci.ci_low < 2 / 3 < ci.ci_high
    assert by_start[500].deserved.value == pytest.approx(0.2)
    el = result.early_late
    assert el is not None and el.early_steps == (0, 99) and el.late_steps == (500, 599)
    assert el.difference == -1.0 and el.p_value.value < 1e-10
    signal = {b.step_start: b for b in signal_buckets(result)}
    assert (signal[0].n, signal[0].agreements) == (10, 10)
    assert signal[200].agreements == 10  # 2 of 3 comparisons agree: the sample agrees
    assert (signal[500].agreements, signal[500].human_passes) == (0, 2)


def test_no_labels_no_figures() -> None:
    result = agreement_over_steps(BucketPlan(0, 10, 3), [])
    assert result.buckets == [] and result.early_late is None and result.pairs == 0
