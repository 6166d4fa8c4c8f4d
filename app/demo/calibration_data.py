"""The calibration demo's files, built from LLMBar's processed MT-Bench set (pure).

200 pairs of answers to MT-Bench questions with the experts' choice, and GPT-4's recorded
verdicts under two prompting strategies, each asked in both presentation orders
(Zeng et al., ICLR 2024; MIT). These functions turn LLMBar's files into the studio's own
import formats: rollouts (preference pairs), expert labels, and external judge verdicts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

SOURCE = "LLMBar Processed/MT-Bench (MIT, Princeton NLP)"
ATTRIBUTION = (
    "Pairs, expert labels and GPT-4 verdicts: LLMBar's processed MT-Bench set (Zeng et al., "
    "ICLR 2024, © 2023 Princeton Natural Language Processing, MIT licence), from MT-Bench "
    "human judgments (Zheng et al., 2023)."
)
EXPERTS = "MT-Bench experts (LLMBar gold)"
STRATEGIES = ("Vanilla_NoRules", "Metrics_Reference")
_SIDE = {"1": "A", "2": "B"}


def pair_id(index: int) -> str:
    return f"mtbench-{index:03d}"


def judge_name(strategy: str) -> str:
    return f"GPT-4 · {strategy}"


def rollout_records(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One studio preference record per item: output_1 is A, output_2 is B."""
    return [
        {
            "id": pair_id(index),
            "input": [{"role": "user", "content": item["input"]}],
            "responses": [item["output_1"], item["output_2"]],
            "metadata": {
                "source": SOURCE,
                "llmbar_index": index,
                # which answer is longer (characters): a slice that shows length bias
                "longer_response": "A" if len(item["output_1"]) > len(item["output_2"]) else "B",
            },
        }
        for index, item in enumerate(items)
    ]


def label_lines(items: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The experts' choice per pair, as a label import line."""
    for index, item in enumerate(items):
        yield {
            "rollout": f"{pair_id(index)}:a",
            "rollout_b": f"{pair_id(index)}:b",
            "annotator": EXPERTS,
            "preference": _SIDE[str(item["label"])],
        }


def verdict_lines(results: Sequence[dict[str, Any]], strategy: str) -> Iterator[dict[str, Any]]:
    """GPT-4's two verdicts per pair as external verdict lines, winner in the pair's terms.

    LLMBar's ``"swap = False"`` showed output_1 first (order AB) and ``"swap = True"`` showed it
    second (order BA); both winners name the original output ("1" or "2"). A missing winner
    (the judge's answer could not be read) is left out: that order has no verdict.
    """
    for index, item in enumerate(results):
        last = item["results"][-1]
        for key, order in (("swap = False", "AB"), ("swap = True", "BA")):
            winner = last[key]["winner"]
            if winner is None:
                continue
            yield {
                "pair": [f"{pair_id(index)}:a", f"{pair_id(index)}:b"],
                "judge": judge_name(strategy),
                "winner": _SIDE[str(winner)],
                "order_shown": order,
                "justification": " ".join(str(p) for p in last[key].get("completion") or [])[:2000],
            }
