"""The closed vocabularies of drift samples: where a record came from and what the judge did.

Pure: stored as plain strings (portable across PostgreSQL and SQLite), checked against these
enums on import and by a CHECK constraint in the database.
"""

from __future__ import annotations

from enum import StrEnum


class DriftSource(StrEnum):
    """Which exported reward function wrote the record (INTERFACES.md §8 `source`)."""

    nova_lambda = "nova-lambda"
    trl = "trl"
    verl = "verl"
    other = "other"


class JudgeStatus(StrEnum):
    """What the judge did for the sample.

    ok: it answered and was scored; error: the call failed or the answer was unusable (the
    reward function returned the neutral reward); skipped: a gate fixed the reward first;
    disabled: the reward has no judge; absent: the record says nothing about the judge.
    """

    ok = "ok"
    error = "error"
    skipped = "skipped"
    disabled = "disabled"
    absent = "absent"


def sql_in(values: type[StrEnum]) -> str:
    """`'a', 'b'` for a CHECK constraint listing an enum's values."""
    return ", ".join(f"'{member.value}'" for member in values)
