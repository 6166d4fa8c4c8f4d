"""The probe report's statistics and verdicts."""

from __future__ import annotations

from app.probes.report import DEFAULT_THRESHOLDS, Observation, bootstrap_ci, build_report


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
