"""Our Krippendorff's alpha equals the ``krippendorff`` package (a GPL test-only dependency) at
every level of measurement and Krippendorff's published example; Gwet's AC1 equals its
two-rater closed form and a hand computation."""

from __future__ import annotations

from typing import Any

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from app.agreement.chance import gwet_ac1, krippendorff_alpha, value_counts


@settings(deadline=None, max_examples=200)
@given(
    units=st.lists(st.lists(st.integers(1, 5), min_size=0, max_size=6), min_size=1, max_size=15),
    level=st.sampled_from(["nominal", "ordinal", "interval", "ratio"]),
)
def test_alpha_equals_the_krippendorff_package(units: list[list[int]], level: Any) -> None:
    domain = [1, 2, 3, 4, 5]
    counts = value_counts(units, domain)
    ours = krippendorff_alpha(counts, domain, level)
    pairable = counts[counts.sum(axis=1) >= 2]
    present = np.count_nonzero(pairable.sum(axis=0))
    if pairable.size == 0 or present < 2:
        assert ours is None
        return
    expected = float(
        krippendorff.alpha(value_counts=counts, value_domain=domain, level_of_measurement=level)
    )
    if np.isnan(expected):
        assert ours is None
    else:
        assert ours == pytest.approx(expected, abs=1e-9)


def test_alpha_on_krippendorffs_published_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 coders,
    # 12 units, values 1-5, with missing values; published nominal alpha 0.743.
    rows = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = [[row[u] for row in rows if row[u] is not None] for u in range(12)]
    counts = value_counts(units, [1, 2, 3, 4, 5])
    assert krippendorff_alpha(counts, [1, 2, 3, 4, 5], "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(counts, [1, 2, 3, 4, 5], "interval") == pytest.approx(0.849, abs=5e-4)


@settings(deadline=None, max_examples=200)
@given(
    pairs=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40),
)
def test_ac1_equals_the_two_rater_formula(pairs: list[tuple[bool, bool]]) -> None:
    counts = value_counts([list(p) for p in pairs], [False, True])
    n = len(pairs)
    agree = sum(a == b for a, b in pairs) / n
    share = (sum(a for a, _ in pairs) + sum(b for _, b in pairs)) / (2 * n)
    chance = 2 * share * (1 - share)
    ours = gwet_ac1(counts)
    if chance >= 1:
        assert ours is None
    else:
        assert ours == pytest.approx((agree - chance) / (1 - chance), abs=1e-12)


def test_ac1_stays_high_where_kappa_collapses() -> None:
    # Feinstein & Cicchetti's (1990) high-agreement paradox table: yes/yes 118, yes/no 5,
    # no/yes 2, no/no 0. By hand: p_a = 118/125 = 0.944; pi_yes = 243/250 = 0.972;
    # p_e = 2 * 0.972 * 0.028 = 0.054432; AC1 = (0.944 - 0.054432) / 0.945568 = 0.94078.
    table = {(True, True): 118, (True, False): 5, (False, True): 2, (False, False): 0}
    units = [[a, b] for (a, b), count in table.items() for _ in range(count)]
    assert gwet_ac1(value_counts(units, [False, True])) == pytest.approx(0.94078, abs=1e-5)
    kappa = cohen_kappa_score([a for a, _ in units], [b for _, b in units])
    assert kappa < 0
