"""Chart.js configurations for the training-run dashboard, each with the table of its numbers.

Built from the series (already aggregated); x is the middle step of each bucket on a linear
axis, so two runs with different bucket widths share one chart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.drift.service import RunSeries

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class ChartSpec:
    id: str
    title: str
    label: str  # for screen readers: what the chart shows
    config: dict[str, Any]
    columns: list[str]
    rows: list[list[Any]]
    percent: bool


def _mid(bucket: dict[str, Any]) -> float:
    return (bucket["step_start"] + bucket["step_end"]) / 2


def _line(label: str, data: RunSeries, value: Any, color: str, dashed: bool = False) -> dict:
    points = []
    for bucket in data.buckets:
        y = value(bucket)
        points.append({"x": _mid(bucket), "y": None if y is None else round(float(y), 6)})
    dataset: dict[str, Any] = {
        "label": label,
        "data": points,
        "borderColor": color,
        "backgroundColor": color,
        "pointRadius": 2,
        "spanGaps": True,
        "tension": 0,
    }
    if dashed:
        dataset["borderDash"] = [6, 4]
    return dataset


def _config(datasets: list[dict], y_title: str, percent: bool, y_max: float | None = None) -> dict:
    y: dict[str, Any] = {"title": {"display": True, "text": y_title}}
    if percent:
        y["min"], y["max"] = 0, 1
    elif y_max is not None:
        y["max"] = y_max
    return {
        "type": "line",
        "data": {"datasets": datasets},
        "options": {
            "parsing": True,
            "scales": {
                "x": {"type": "linear", "title": {"display": True, "text": "training step"}},
                "y": y,
            },
            "plugins": {"legend": {"position": "bottom"}},
        },
    }


def _spec(
    chart_id: str,
    title: str,
    data: RunSeries,
    series: list[tuple[str, Any]],
    y_title: str,
    percent: bool = False,
    compare: RunSeries | None = None,
    compare_series: list[tuple[str, Any]] | None = None,
) -> ChartSpec:
    datasets = [
        _line(label, data, value, PALETTE[i % len(PALETTE)])
        for i, (label, value) in enumerate(series)
    ]
    if compare is not None:
        for i, (label, value) in enumerate(compare_series or series[:1]):
            datasets.append(
                _line(f"{compare.run.name}: {label}", compare, value, PALETTE[(i + 1) % 8], True)
            )
    rows = [
        [b["step_start"], b["step_end"], b["n"], *[value(b) for _, value in series]]
        for b in data.buckets
    ]
    return ChartSpec(
        id=chart_id,
        title=title,
        label=f"{title} per step bucket for {data.run.name}",
        config=_config(datasets, y_title, percent),
        columns=["first step", "last step", "samples", *[label for label, _ in series]],
        rows=rows,
        percent=percent,
    )


def _get(key: str) -> Any:
    return lambda b: b.get(key)


def dashboard_charts(data: RunSeries, compare: RunSeries | None = None) -> list[ChartSpec]:
    if not data.buckets:
        return []
    criteria = [
        (name, (lambda n: lambda b: (b["criteria"].get(n) or {}).get("mean"))(name))
        for name in data.criteria
    ]
    components = [
        (
            f"{name} pass",
            (lambda n: lambda b: (b["components"].get(n) or {}).get("pass_rate"))(name),
        )
        for name in data.components
    ]
    return [
        _spec(
            "reward",
            "Reward",
            data,
            [
                ("mean", _get("reward_mean")),
                ("p10", _get("reward_p10")),
                ("median", _get("reward_p50")),
                ("p90", _get("reward_p90")),
            ],
            "recorded reward",
            compare=compare,
            compare_series=[("mean", _get("reward_mean"))],
        ),
        _spec(
            "criteria",
            "Judge criteria (mean; pass rate for pass/fail criteria)",
            data,
            criteria,
            "criterion mean",
            compare=compare,
            compare_series=criteria,
        ),
        _spec(
            "components",
            "Reward components and gating",
            data,
            [*components, ("gated", _get("gate_rate"))],
            "share of samples",
            percent=True,
        ),
        _spec(
            "length",
            "Response length",
            data,
            [("mean", _get("length_mean")), ("p90", _get("length_p90"))],
            "characters",
            compare=compare,
            compare_series=[("mean length", _get("length_mean"))],
        ),
        _spec(
            "gaming",
            "Reward–length correlation, grounding and text addressed to the judge",
            data,
            [
                ("Spearman rho (reward, length)", _get("reward_length_spearman")),
                ("quotes not in the document", _get("ungrounded_share")),
                ("addressed to the judge", _get("judge_addressed_rate")),
            ],
            "share / correlation",
            compare=compare,
            compare_series=[("addressed to the judge", _get("judge_addressed_rate"))],
        ),
        _spec(
            "judge",
            "Judge health and learning signal",
            data,
            [
                ("judge errors", _get("judge_error_rate")),
                ("neutral rewards", _get("neutral_rate")),
                ("zero-spread groups", _get("zero_spread_share")),
            ],
            "share",
            percent=True,
        ),
        _spec(
            "latency",
            "Judge latency",
            data,
            [("mean latency (ms)", _get("latency_mean_ms"))],
            "milliseconds",
        ),
    ]
