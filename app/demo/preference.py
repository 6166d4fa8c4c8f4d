"""Demo preference pairs (studio "responses": [a, b]) from a bundled sample of LLMBar Natural.

Each pair keeps LLMBar's expert gold label in metadata ("gold_label": "A" or "B").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LLMBAR_FILE = Path(__file__).parent / "data" / "llmbar_natural_sample.json"
PREFERENCE_SOURCE = "LLMBar Natural (MIT, Princeton NLP)"
PREFERENCE_ATTRIBUTION = (
    "Instruction-following pairs and gold labels: LLMBar (Zeng et al., ICLR 2024), "
    "© 2023 Princeton Natural Language Processing, MIT licence."
)


def load_llmbar_sample() -> list[dict[str, Any]]:
    """The bundled LLMBar items: {"index", "input", "output_1", "output_2", "label": 1 | 2}."""
    with LLMBAR_FILE.open(encoding="utf-8") as handle:
        items: list[dict[str, Any]] = json.load(handle)["items"]
    return items


def build_preference_demo() -> list[dict[str, Any]]:
    """One studio preference record per bundled LLMBar item, in file order."""
    records: list[dict[str, Any]] = []
    for item in load_llmbar_sample():
        label = item["label"]
        if label not in (1, 2):
            raise ValueError(f"LLMBar item {item['index']} has label {label!r}, expected 1 or 2")
        records.append(
            {
                "id": f"llmbar-natural-{item['index']:03d}",
                "input": [{"role": "user", "content": item["input"]}],
                "responses": [item["output_1"], item["output_2"]],
                "metadata": {
                    "source": PREFERENCE_SOURCE,
                    "llmbar_index": item["index"],
                    "gold_label": "A" if label == 1 else "B",
                },
            }
        )
    return records
