"""Shared fixtures for the rubric unit tests: the reference contract-review case."""

from typing import Any

import pytest

from app.rubrics.builtin import get_builtin
from app.rubrics.definition import RubricDefinition


def legal_comment(index: int, grounding: int, consistency: int, action: int) -> dict[str, Any]:
    def entry(score: int) -> dict[str, Any]:
        return {"evidence": "governed by the laws of Texas", "justification": "...", "score": score}

    return {
        "item_index": index,
        "excerpt": "governed by the laws of Texas",
        "criteria": {
            "TargetDocument_Grounding": entry(grounding),
            "Reference_Consistency": entry(consistency),
            "Actionability": entry(action),
        },
        "item_score": (grounding + consistency + action) / 3,
    }


@pytest.fixture
def legal() -> RubricDefinition:
    return get_builtin("legal_contract_review")


@pytest.fixture
def legal_answer() -> dict[str, Any]:
    """A judge answer in the reference case's shape: two comments, scores per dimension."""
    comments = [legal_comment(0, 5, 4, 4), legal_comment(1, 3, 3, 3)]
    return {"comments": comments, "aggregate_score": (13 / 3 + 3) / 2}
