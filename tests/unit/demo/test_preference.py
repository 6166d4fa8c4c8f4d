"""Tests for the LLMBar preference-pair demo (app.demo.preference)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.demo.preference import LLMBAR_FILE, build_preference_demo, load_llmbar_sample

SHARED_NATURAL = Path("/work/shared/data/llmbar/Dataset/LLMBar/Natural/dataset.json")
STUDIO_KEYS = {
    "id",
    "input",
    "target_document",
    "references",
    "reference_answer",
    "response",
    "responses",
    "model",
    "checkpoint",
    "step",
    "group",
    "metadata",
}


def test_builds_twelve_studio_preference_pairs() -> None:
    records = build_preference_demo()
    assert len(records) == 12
    assert len({record["id"] for record in records}) == 12
    for record in records:
        assert set(record) <= STUDIO_KEYS
        assert "response" not in record
        assert len(record["responses"]) == 2
        assert all(isinstance(text, str) and text for text in record["responses"])
        assert record["input"][0]["role"] == "user"
        assert json.loads(json.dumps(record)) == record
    assert build_preference_demo() == records


def test_gold_label_follows_llmbar_label() -> None:
    records = build_preference_demo()
    for record, item in zip(records, load_llmbar_sample(), strict=True):
        assert record["responses"] == [item["output_1"], item["output_2"]]
        assert record["input"] == [{"role": "user", "content": item["input"]}]
        assert record["metadata"]["gold_label"] == {1: "A", 2: "B"}[item["label"]]
        assert record["metadata"]["llmbar_index"] == item["index"]
    # Both positions win equally often, so a position-biased judge cannot look good.
    labels = [record["metadata"]["gold_label"] for record in records]
    assert labels.count("A") == labels.count("B") == 6


def test_bad_label_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [{"index": 0, "input": "q", "output_1": "a", "output_2": "b", "label": 3}]
    monkeypatch.setattr("app.demo.preference.load_llmbar_sample", lambda: items)
    with pytest.raises(ValueError, match="label 3"):
        build_preference_demo()


def test_sample_carries_its_licence() -> None:
    sample = json.loads(LLMBAR_FILE.read_text(encoding="utf-8"))
    assert "MIT" in sample["license"]
    attribution = (LLMBAR_FILE.parent / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "Copyright (c) 2023 Princeton Natural Language Processing" in attribution


@pytest.mark.skipif(not SHARED_NATURAL.is_file(), reason="shared LLMBar data not available")
def test_sample_items_are_verbatim_copies_of_the_source() -> None:
    source = json.loads(SHARED_NATURAL.read_text(encoding="utf-8"))
    for item in load_llmbar_sample():
        original = source[item["index"]]
        assert {key: item[key] for key in original} == original
