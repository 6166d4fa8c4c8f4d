"""Fixtures for the judge-provider tests: a recording sleeper and clean structured-mode caches."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from app.llm import bedrock, openai_compat

# A judge answer schema shaped like the ones rubrics produce (nested objects, bounds, enums).
GRADE_SCHEMA: dict[str, Any] = {
    "title": "grade",
    "type": "object",
    "properties": {
        "criteria": {
            "type": "object",
            "properties": {
                "grounding": {
                    "type": "object",
                    "properties": {
                        "score": {"type": "integer", "minimum": 1, "maximum": 5},
                        "evidence": {"type": "string"},
                        "justification": {"type": "string"},
                    },
                    "required": ["score", "evidence", "justification"],
                    "additionalProperties": False,
                },
                "safe": {"type": "boolean"},
            },
            "required": ["grounding", "safe"],
            "additionalProperties": False,
        },
        "verdict": {"enum": ["A", "B", "tie"]},
        "aggregate_score": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["criteria", "verdict", "aggregate_score"],
    "additionalProperties": False,
}


class RecordingSleeper:
    """Stands in for asyncio.sleep in RetryPolicy: records each requested delay, waits for none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeper() -> RecordingSleeper:
    return RecordingSleeper()


@pytest.fixture
def grade_schema() -> dict[str, Any]:
    return copy.deepcopy(GRADE_SCHEMA)


@pytest.fixture(autouse=True)
def _fresh_mode_caches() -> Iterator[None]:
    openai_compat.clear_mode_cache()
    bedrock.clear_mode_cache()
    yield
    openai_compat.clear_mode_cache()
    bedrock.clear_mode_cache()
