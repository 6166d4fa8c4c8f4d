"""The file formats: each documented example validates against the schema the API serves, and a
bad file is refused naming its line and field (docs/formats/)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from app.formats.cli import check_text
from app.formats.registry import FORMATS, Shape, check_value
from app.labels import transfer

DOCS = Path(__file__).resolve().parents[3] / "docs"
# The heading under which each page's example sits (first code block after it).
EXAMPLE_HEADING = {"rollouts": "## Studio JSONL"}


def example(name: str) -> tuple[str, str]:
    page = (DOCS / FORMATS[name].doc).read_text(encoding="utf-8")
    heading = EXAMPLE_HEADING.get(name, "## Example")
    after = page[page.index(heading) :]
    match = re.search(r"```(\w+)\n(.*?)\n```", after, re.S)
    assert match, f"{FORMATS[name].doc}: no example under {heading!r}"
    return match.group(1), match.group(2)


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_documented_example_validates(name: str) -> None:
    lang, text = example(name)
    fmt = FORMATS[name]
    if fmt.shape == Shape.lines:
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines
        for line in lines:
            assert check_value(name, json.loads(line)) == [], line
    else:
        value = json.loads(text) if lang == "json" else yaml.safe_load(text)
        assert check_value(name, value) == []


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_schema_is_a_valid_json_schema_with_a_title(name: str) -> None:
    from jsonschema import Draft202012Validator

    schema = FORMATS[name].schema()
    Draft202012Validator.check_schema(schema)
    assert schema["title"]


def test_a_bad_labels_file_is_refused_naming_line_and_field() -> None:
    text = (
        '{"rollout": "r-1", "annotator": "Ann", "values": {"clear": true}}\n'
        '{"rollout": "r-2", "values": {"clear": true}}\n'
        '{"rollout": "r-3", "annotator": "Ann", "values": {"clear": [1, 2]}}\n'
    )
    problems = check_text("labels", text, ".jsonl")
    assert "line 2: annotator: is required" in problems
    assert any(p.startswith("line 3: values.clear: must be of type") for p in problems)
    # The import itself checks each line against the same schema file.
    records, found = transfer.parse_jsonl(text)
    assert [r.line for r in records] == [1]
    assert {(p.line, p.field) for p in found} == {(2, "annotator"), (3, "values.clear")}


def test_a_bad_reward_configuration_names_the_field() -> None:
    problems = check_text("reward-config", json.dumps({"length": {"weight": "heavy"}}), ".json")
    assert any(p.startswith("length.weight:") for p in problems), problems


def test_a_bad_yaml_rubric_file_names_its_line() -> None:
    problems = check_text("rubric", "name: x\nmode: [unclosed\n", ".yaml")
    assert problems and problems[0].startswith("line ")


def test_a_verdict_line_that_names_no_rollout_is_refused() -> None:
    problems = check_text("verdicts", '{"judge": "j", "scores": {"a": 1}}\n', ".jsonl")
    assert problems == ["line 1: line: needs rollout_id or pair or rollout_a and rollout_b"]
