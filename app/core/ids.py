"""Integer types for numbers that arrive from outside (paths, query strings, forms, JSON).

Bounded once, here, to what the database column holds, so a number beyond the column's range is
refused with a 422 instead of reaching the database (PostgreSQL: "integer out of range"; SQLite:
"Python int too large"). Use `Id` for ids of INTEGER tables, `BigId` for ids of BIGINT tables
(rollouts, labels, queue items, verdicts, audit events) and `Int32` / `NonNegInt32` for any other
integer that is compared with or stored in an INTEGER column (revisions, steps, offsets).
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le

from app.core.errors import InvalidInput

MAX_INT32 = 2**31 - 1
MIN_INT32 = -(2**31)
MAX_INT64 = 2**63 - 1

Id = Annotated[int, Ge(1), Le(MAX_INT32)]
BigId = Annotated[int, Ge(1), Le(MAX_INT64)]
Int32 = Annotated[int, Ge(MIN_INT32), Le(MAX_INT32)]
NonNegInt32 = Annotated[int, Ge(0), Le(MAX_INT32)]
NonNegInt64 = Annotated[int, Ge(0), Le(MAX_INT64)]


def bounded(number: int, what: str, *, big: bool = False) -> int:
    """A number parsed by hand (from a form) within what its column holds, or InvalidInput."""
    low, high = (-MAX_INT64 - 1, MAX_INT64) if big else (MIN_INT32, MAX_INT32)
    if not low <= number <= high:
        raise InvalidInput(f"{what} is out of range (at most {high:,}).")
    return number
