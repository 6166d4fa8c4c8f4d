"""The Nova RFT reward output format, as nova-forge-sdk's reward verifier validates it
(INTERFACES.md §1.3), and helpers to build judge answers and Nova samples for tests."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from app.rubrics.scoring import response_item_count


class RewardMetric(BaseModel):
    name: str
    value: int | float
    type: Literal["Metric", "Reward"]


class RewardFunctionOutput(BaseModel):
    id: Any
    aggregate_reward_score: int | float
    metrics_list: list[RewardMetric] | None = None


NOVA_OUTPUT = TypeAdapter(list[RewardFunctionOutput])


def legal_answer(keys: list[str], score: int = 4, items: int = 1) -> dict[str, Any]:
    """A schema-valid answer of the contract-review judge: every criterion at `score`."""
    return {
        "comments": [
            {
                "item_index": i,
                "excerpt": "quote",
                "criteria": {
                    k: {"evidence": "e", "justification": "j", "score": score} for k in keys
                },
                "item_score": score,
            }
            for i in range(items)
        ],
        "aggregate_score": score,
    }


def items_in(record: dict[str, Any]) -> int:
    """How many comments a demo record's response has: the judge must score each once."""
    return response_item_count(record["response"], "comments")


def good_answer(keys: list[str], record: dict[str, Any], score: int = 4) -> str:
    """A covering answer for one demo record: every comment scored `score` on every criterion."""
    return json.dumps(legal_answer(keys, score=score, items=items_in(record)))


def converse_response(text: str) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
        "metrics": {"latencyMs": 12},
    }


def nova_sample(record: dict[str, Any]) -> dict[str, Any]:
    """A demo rollout as the Nova RFT platform sends it (shape A: custom fields at top level)."""
    return {
        "id": record["id"],
        "messages": [*record["input"], {"role": "assistant", "content": record["response"]}],
        "target_document": record["target_document"],
        "references": record["references"],
        "metadata": record["metadata"],
    }
