"""Chart.js configurations for the agreement pages (pure: figures in, JSON-able dicts out).

Each chart's numbers are also shown as a table on its page; the chart is a picture of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CalibrationBin:
    """Labels whose judge score fell in [low, high): mean judge score and expert pass rate."""

    low: float
    high: float
    n: int
    judge_mean: float
    expert_pass_rate: float


def calibration_bins(
    scores: Sequence[float], expert_pass: Sequence[bool], bins: int = 10
) -> list[CalibrationBin]:
    """Judge score (0-1) against the share of experts passing, in equal-width bins."""
    grouped: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for score, passed in zip(scores, expert_pass, strict=True):
        index = min(int(score * bins), bins - 1) if score >= 0 else 0
        grouped[index].append((score, passed))
    return [
        CalibrationBin(
            low=i / bins,
            high=(i + 1) / bins,
            n=len(group),
            judge_mean=sum(s for s, _ in group) / len(group),
            expert_pass_rate=sum(p for _, p in group) / len(group),
        )
        for i, group in enumerate(grouped)
        if group
    ]


def calibration_chart(bins: Sequence[CalibrationBin]) -> dict[str, Any]:
    return {
        "type": "scatter",
        "data": {
            "datasets": [
                {
                    "label": "expert pass rate by judge score",
                    "data": [{"x": b.judge_mean, "y": b.expert_pass_rate} for b in bins],
                    "showLine": True,
                },
                {
                    "label": "perfect calibration",
                    "data": [{"x": 0, "y": 0}, {"x": 1, "y": 1}],
                    "showLine": True,
                    "pointRadius": 0,
                    "borderDash": [4, 4],
                },
            ]
        },
        "options": {
            "scales": {
                "x": {"min": 0, "max": 1, "title": {"display": True, "text": "judge score"}},
                "y": {"min": 0, "max": 1, "title": {"display": True, "text": "experts pass"}},
            }
        },
    }


def interval_chart(
    names: Sequence[str],
    values: Sequence[float | None],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    label: str,
    *,
    x_range: tuple[float, float] | None = (-0.2, 1.0),
) -> dict[str, Any]:
    """Values as points with their intervals as floating bars (whiskers), one row per name."""
    return {
        "type": "bar",
        "data": {
            "labels": list(names),
            "datasets": [
                {
                    "type": "scatter",
                    "label": label,
                    "data": [
                        {"x": v, "y": n}
                        for n, v in zip(names, values, strict=True)
                        if v is not None
                    ],
                    "pointRadius": 5,
                },
                {
                    "label": "95% interval",
                    "data": [
                        [lo, hi] if lo is not None and hi is not None else None
                        for lo, hi in zip(lows, highs, strict=True)
                    ],
                    "barThickness": 4,
                },
            ],
        },
        "options": {
            "indexAxis": "y",
            "scales": {
                "x": {"min": x_range[0], "max": x_range[1]} if x_range else {},
                "y": {"type": "category"},
            },
        },
    }
