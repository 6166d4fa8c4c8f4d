"""Step buckets for a training run's dashboard: equal widths of a round size (1, 2 or 5 x 10^k
steps), about `target` of them over the run's steps, starting at a multiple of the width.

Pure: no database, no web.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_TARGET = 20


@dataclass(frozen=True)
class BucketPlan:
    start: int  # first step of bucket 0
    width: int
    count: int

    def bounds(self, index: int) -> tuple[int, int]:
        """First and last step (inclusive) of a bucket."""
        first = self.start + index * self.width
        return first, first + self.width - 1

    def index_of(self, step: int) -> int:
        return (step - self.start) // self.width

    def key(self) -> str:
        return f"{self.start}:{self.width}:{self.count}"


def nice_width(span: int, target: int) -> int:
    """The smallest round width (1, 2, 5 x 10^k) giving at most `target` buckets over `span`."""
    raw = max(span / max(target, 1), 1.0)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)  # pragma: no cover - the loop always returns


def plan_buckets(
    step_min: int | None, step_max: int | None, target: int = DEFAULT_TARGET
) -> BucketPlan | None:
    """About `target` buckets covering [step_min, step_max]; None when no sample has a step."""
    if step_min is None or step_max is None:
        return None
    target = min(max(target, 1), 200)
    span = step_max - step_min + 1
    width = nice_width(span, target)
    start = (step_min // width) * width
    count = (step_max - start) // width + 1
    return BucketPlan(start, width, count)
