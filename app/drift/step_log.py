"""A training job's step/time log (CSV of step and timestamp), read into the StepMap that gives
a record without a step (Nova) the step that was running at its time. Pure: no database, no web.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from app.drift.records import StepMap, parse_time
from app.rollouts.formats.common import check_step


def read_step_map(text: str) -> StepMap:
    """A step/time CSV (header with `step` and one of `timestamp`, `time`, `recorded_at`,
    `wall_time`): raises ValueError with the line and column in plain words."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    time_column = next(
        (name for name in ("timestamp", "time", "recorded_at", "wall_time") if name in header),
        None,
    )
    if "step" not in header or time_column is None:
        raise ValueError(
            "the step/time CSV needs a header with the columns 'step' and 'timestamp' (or "
            f"'time', 'recorded_at', 'wall_time'); found: {', '.join(header) or 'none'}"
        )
    pairs: list[tuple[datetime, int]] = []
    for number, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("step") and not row.get(time_column):
            continue
        step, problem = check_step(_int_text(row.get("step", "")))
        if problem or step is None:
            raise ValueError(f"line {number}, column 'step': {problem or 'missing'}")
        try:
            moment = parse_time(row.get(time_column, ""))
        except ValueError as error:
            raise ValueError(f"line {number}, column '{time_column}': {error}") from None
        pairs.append((moment, step))
    if not pairs:
        raise ValueError("the step/time CSV has no rows")
    pairs.sort()
    return StepMap(tuple(t for t, _ in pairs), tuple(s for _, s in pairs))


def _int_text(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value
