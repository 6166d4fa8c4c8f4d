"""extract_json finds the judge's JSON answer in the shapes real replies take; repair wording."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from app.llm import json_extract
from app.llm.json_extract import extract_json, repair_instructions

ANSWER = {"score": 4, "justification": "Cites clause 7.2", "evidence": ["7.2"]}
ANSWER_TEXT = json.dumps(ANSWER)


@pytest.mark.parametrize(
    "reply",
    [
        ANSWER_TEXT,
        f"  \n{ANSWER_TEXT}\n  ",
        "\ufeff" + ANSWER_TEXT,
        f"```json\n{ANSWER_TEXT}\n```",
        f"```JSON\n{json.dumps(ANSWER, indent=2)}\n```",
        f"```\n{ANSWER_TEXT}\n```",
        f"Here is my evaluation:\n```json\n{ANSWER_TEXT}\n```\nLet me know if you need more.",
        f"Here is my evaluation: {ANSWER_TEXT} Hope this helps!",
        f"The response is good.\n\n{json.dumps(ANSWER, indent=2)}\n\nOverall: solid.",
        f'<think>Maybe {{"score": 1}}? No, it cites the clause.</think>\n{ANSWER_TEXT}',
        f'<thinking>draft {{"score": 2}}</thinking>```json\n{ANSWER_TEXT}\n```',
        f'reasoning without an opening tag {{"score": 2}}</think>{ANSWER_TEXT}',
        (
            '<|begin_of_thought|>\nThe answer cites {"score": 3} maybe.\n<|end_of_thought|>\n'
            f"<|begin_of_solution|>\n{ANSWER_TEXT}\n<|end_of_solution|>"
        ),
        f"<|begin_of_solution|>\n```json\n{ANSWER_TEXT}\n```\n<|end_of_solution|>",
        f"<|begin_of_solution|>Final: {ANSWER_TEXT}",  # cut before the end tag
        f'First I thought {{"score": 2}} but on reflection: {ANSWER_TEXT}',
        f"See [1] for details. {ANSWER_TEXT}",
        f"{ANSWER_TEXT} (see [1])",
        f'Draft:\n```json\n{{"score": 1}}\n```\nFinal:\n```json\n{ANSWER_TEXT}\n```',
        f"```json\nHere you go: {ANSWER_TEXT}\n```",
        f"```json\n{ANSWER_TEXT}",  # unclosed fence
        f"Braces in prose {{like this}} do not confuse it: {ANSWER_TEXT}",
    ],
)
def test_finds_the_answer_object(reply: str) -> None:
    assert extract_json(reply) == ANSWER


def test_returns_a_top_level_array() -> None:
    assert extract_json('Rankings:\n```json\n[{"id": "a"}, {"id": "b"}]\n```') == [
        {"id": "a"},
        {"id": "b"},
    ]
    assert extract_json("[1, 2, 3]") == [1, 2, 3]


def test_nested_values_come_back_whole() -> None:
    nested = {"criteria": {"a": {"score": 1, "tags": ["x", {"y": None}]}}, "ok": True}
    assert extract_json(f"Result: {json.dumps(nested)}.") == nested


def test_unicode_and_escapes_survive() -> None:
    answer = {"justification": 'Says "très bien" — \\ and }{ inside a string'}
    assert extract_json(f"Answer: {json.dumps(answer, ensure_ascii=False)}") == answer


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty reply"),
        ("   \n ", "empty reply"),
        ('<think>only thoughts {"score": 3}</think>', "empty reply"),
        ("The response deserves a 4.", "no JSON object or array found"),
        ("4", "no JSON object or array found"),
        ('"just a string"', "no JSON object or array found"),
        ('{"score": 4, "justification": "The answer cites', "cut off"),
        ('{"score": 4,', "cut off"),
        ("{score: 4, justification: 'good'}", "invalid JSON"),
        ('{"score": NaN}', "non-finite"),
        ('{"score": 4} trailing {"score": Infinity}', "non-finite"),
    ],
)
def test_reports_why_there_is_no_answer(reply: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        extract_json(reply)
    assert reason in str(caught.value)
    assert len(str(caught.value)) <= 160


def test_rejects_non_text() -> None:
    with pytest.raises(ValueError, match="not text"):
        extract_json(None)  # type: ignore[arg-type]


def test_repair_instructions_name_the_error_and_schema() -> None:
    schema: dict[str, Any] = {"type": "object", "required": ["score"]}
    message = repair_instructions(
        "invalid JSON: Expecting ',' delimiter at line 1 column 9", schema
    )
    assert "Expecting ',' delimiter" in message
    assert "only the corrected JSON" in message
    assert json.loads(message.splitlines()[-1]) == schema


def test_repair_instructions_without_schema_and_with_noisy_error() -> None:
    message = repair_instructions("line one\n\n  line two " + "x" * 500, None)
    assert "Schema" not in message
    first = message.splitlines()[0]
    assert "line one line two" in first
    assert len(first) < 250


def test_module_imports_only_the_standard_library() -> None:
    # The file is copied into exported reward functions, which have only the standard library.
    tree = ast.parse(Path(json_extract.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "json", "re", "typing"}
