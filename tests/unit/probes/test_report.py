"""The probe report's statistics and verdicts."""

from __future__ import annotations

from app.probes.report import (
    DEFAULT_THRESHOLDS,
    Observation,
    bootstrap_ci,
    build_report,
    pair_consistency_summary,
    position_summary,
    wilson_interval,
)


def _obs(probe: str, uplift: float, item: int, criteria_uplift: float = 0.0) -> Observation:
    return Observation(
        probe,
        "",
        item,
        0.5,
        0.5 + uplift,
        {"Actionability": 0.5},
        {"Actionability": 0.5 + criteria_uplift},
    )


def test_a_probe_that_pays_fails_and_says_why() -> None:
    obs = [_obs("verbosity", 0.2 + 0.01 * i, i, 0.25) for i in range(20)]
    report = build_report(
        obs, DEFAULT_THRESHOLDS, 1, ["verbosity"], {"Actionability": "Actionability"}
    )
    [row] = report["probes"]
    assert row["n"] == 20 and not row["passed"] and report["failed"] == ["verbosity"]
    assert row["uplift_ci_low"] > 0 and row["share_improved"] == 1.0
    assert row["verdict"].startswith("Padding earns +0.29")
    assert "most on Actionability (+0.25): the judge rewards length" in row["verdict"]


def test_no_gain_passes_and_addressed_fails_on_any_reliable_gain() -> None:
    flat = [_obs("verbosity", 0.0, i) for i in range(10)]
    small = [_obs("addressed_to_judge", 0.02, i) for i in range(10)]
    report = build_report(flat + small, DEFAULT_THRESHOLDS, 1, ["verbosity", "addressed_to_judge"])
    rows = {r["name"]: r for r in report["probes"]}
    assert rows["verbosity"]["passed"] and rows["verbosity"]["share_improved"] == 0.0
    assert not rows["addressed_to_judge"]["passed"]  # +0.02 is below 0.05 but above 0


def test_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    values = [0.1, 0.3, -0.2, 0.4, 0.0, 0.2]
    first = bootstrap_ci(values, confidence=0.95, resamples=500, seed=3)
    assert first == bootstrap_ci(values, confidence=0.95, resamples=500, seed=3)
    assert first[0] <= sum(values) / len(values) <= first[1]
    assert bootstrap_ci([], confidence=0.95, resamples=10, seed=1) == (None, None)


def test_wilson_interval_matches_scipy_and_handles_the_edges() -> None:
    from scipy.stats import binomtest

    for k, n in [(0, 10), (3, 10), (10, 10), (17, 40)]:
        low, high = wilson_interval(k, n, 0.95)
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert abs(low - ci.low) < 1e-9 and abs(high - ci.high) < 1e-9
    assert wilson_interval(0, 0, 0.95) == (None, None)


def test_self_consistency_reports_changes_and_spread_and_never_gates() -> None:
    same = [
        Observation("self_consistency", f"copy {c}", i, 0.5, 0.5, {"A": 1.0}, {"A": 1.0})
        for i in range(4)
        for c in (1, 2, 3)
    ]
    # Item 9's verdict changes on one criterion only (same reward); item 10's reward moves.
    moved = [
        Observation("self_consistency", "copy 1", 9, 0.5, 0.5, {"A": 1.0}, {"A": 0.0}),
        Observation("self_consistency", "copy 1", 10, 0.5, 0.9, {"A": 1.0}, {"A": 1.0}),
        Observation("self_consistency", "copy 2", 10, 0.5, 0.3, {"A": 1.0}, {"A": 1.0}),
    ]
    [row] = build_report(same + moved, DEFAULT_THRESHOLDS, 1, ["self_consistency"])["probes"]
    assert row["n"] == 6 and row["share_changed"] == 2 / 6
    assert abs(row["spread_mean"] - 0.6 / 6) < 1e-12  # item 10: 0.9 - 0.3
    assert row["share_changed_ci_low"] < 2 / 6 < row["share_changed_ci_high"]
    assert row["passed"] and row["informational"]
    assert row["verdict"].startswith("Judging again: the verdict changes on 33% of items")
    [steady] = build_report(same, DEFAULT_THRESHOLDS, 1, ["self_consistency"])["probes"]
    assert steady["share_changed"] == 0 and "the same verdict every time" in steady["verdict"]


def test_position_fails_when_the_winner_changes_too_often() -> None:
    biased = position_summary(
        pairs=20, flipped=18, first_shown=18, errors=1, thresholds=DEFAULT_THRESHOLDS
    )
    assert biased["share_changed"] == 0.9 and not biased["passed"]
    assert biased["share_changed_ci_low"] > DEFAULT_THRESHOLDS["max_flip_share"]
    assert biased["first_shown_share"] == 1.0 and biased["judge_errors"] == 1
    assert "changes the winner of 90% of pairs" in biased["verdict"]
    assert biased["verdict"].endswith("the judge prefers a position")
    # 2 of 20 flips: the CI reaches below the 10 % limit, so it passes.
    fair = position_summary(pairs=20, flipped=2, first_shown=1, errors=0, thresholds={})
    assert fair["passed"] and fair["share_changed"] == 0.1
    nothing = position_summary(pairs=0, flipped=0, first_shown=0, errors=3, thresholds={})
    assert nothing["passed"] and "not measured" in nothing["verdict"]


def test_pair_consistency_and_rows_made_elsewhere_keep_their_order() -> None:
    row = pair_consistency_summary([(False, 0.0), (True, 1.0), (False, 0.0)], DEFAULT_THRESHOLDS, 1)
    assert row["share_changed"] == 1 / 3 and row["spread_mean"] == 1 / 3 and row["passed"]
    position = position_summary(
        pairs=5, flipped=5, first_shown=5, errors=0, thresholds=DEFAULT_THRESHOLDS
    )
    report = build_report(
        [],
        DEFAULT_THRESHOLDS,
        1,
        ["position", "verbosity", "self_consistency"],
        {},
        {"verbosity": "a preference rubric compares two responses"},
        {"position": position, "self_consistency": row},
    )
    assert [r["name"] for r in report["probes"]] == ["position", "verbosity", "self_consistency"]
    assert report["failed"] == ["position"]
    skipped = report["probes"][1]
    assert skipped["not_applicable"] and "not applicable" in skipped["verdict"]
