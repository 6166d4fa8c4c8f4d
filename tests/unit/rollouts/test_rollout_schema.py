"""The Studio JSON Schema, the fast path that skips it, and the examples in the format docs."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from app.rollouts.formats import studio
from app.rollouts.parsing import ParsedLine, ParseOptions, Problem, iter_parse

DOCS = Path(__file__).resolve().parents[3] / "docs" / "formats" / "rollouts.md"


def test_schema_is_a_valid_draft_2020_12_schema():
    schema = studio.schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_fast_path_knows_the_same_fields_as_the_schema():
    assert set(studio.schema()["properties"]) == studio._FIELDS


# Values chosen to sit on both sides of every rule the fast path checks.
_text = st.sampled_from(["", "x", "user", "bot", "y" * 199, "z" * 201])
_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2, 3), st.floats(-1, 2), _text)
_message = st.dictionaries(
    st.sampled_from(["role", "content", "name", "extra"]),
    st.one_of(st.sampled_from(["system", "user", "assistant", "tool", "bot"]), _json_scalar),
    max_size=4,
)
_reference = st.one_of(
    _text,
    st.integers(),
    st.dictionaries(st.sampled_from(["title", "text", "url"]), _json_scalar, max_size=3),
)
_values: dict[str, Any] = {
    "id": _json_scalar,
    "input": st.one_of(_json_scalar, st.lists(st.one_of(_message, _text), max_size=3)),
    "target_document": _json_scalar,
    "references": st.one_of(_json_scalar, st.lists(_reference, max_size=3)),
    "reference_answer": _json_scalar,
    "response": st.one_of(_json_scalar, st.lists(_text, max_size=2)),
    "responses": st.one_of(_json_scalar, st.lists(st.one_of(_text, st.none()), max_size=3)),
    "model": _json_scalar,
    "checkpoint": _json_scalar,
    "step": _json_scalar,
    "group": _json_scalar,
    "metadata": st.one_of(_json_scalar, st.dictionaries(_text, _json_scalar, max_size=2)),
    "respone": _json_scalar,
}
_rows = st.fixed_dictionaries({}, optional=_values)


@settings(max_examples=400, deadline=None)
@given(_rows)
def test_fast_path_never_accepts_what_the_schema_rejects(row):
    if studio.plainly_valid(row):
        assert list(Draft202012Validator(studio.schema()).iter_errors(row)) == []


@pytest.mark.parametrize(
    "row",
    [
        {"input": [{"role": "user", "content": "q"}], "response": "a"},
        {"input": [{"role": "user", "content": "q"}], "responses": ["a", "b"], "id": 3},
        {
            "input": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
            "response": "a",
            "references": ["r", {"title": None, "text": "t"}],
            "metadata": {"k": [1]},
            "step": 0,
            "model": "m",
        },
    ],
)
def test_fast_path_accepts_ordinary_rows(row):
    assert studio.plainly_valid(row)


def doc_examples() -> list[tuple[str, str]]:
    """(format, file text) for each block marked <!-- example: FORMAT --> in the docs."""
    text = DOCS.read_text(encoding="utf-8")
    found = re.findall(r"<!-- example: (\w+) -->\n```\w+\n(.*?)```", text, flags=re.S)
    return [(fmt, body) for fmt, body in found]


def test_the_docs_have_an_example_of_each_format():
    assert sorted(fmt for fmt, _ in doc_examples()) == ["csv", "nova", "openai", "studio"]


@pytest.mark.parametrize(("fmt", "body"), doc_examples())
def test_doc_examples_parse_without_problems(fmt, body):
    mapping = {"input": "Question", "response": "Answer"} if fmt == "csv" else {}
    options = ParseOptions(format=fmt, csv_mapping=mapping)
    items = list(iter_parse(io.BytesIO(body.encode()), options))
    assert [str(item) for item in items if isinstance(item, Problem)] == []
    assert items and all(isinstance(item, ParsedLine) for item in items)
    # Auto-detection picks the same format from the content (and the name, for CSV).
    auto = list(
        iter_parse(
            io.BytesIO(body.encode()),
            ParseOptions(csv_mapping=mapping),
            filename=f"example.{'csv' if fmt == 'csv' else 'jsonl'}",
        )
    )
    assert [_records(item) for item in auto] == [_records(item) for item in items]


def _records(item: ParsedLine | Problem) -> object:
    return item.records if isinstance(item, ParsedLine) else str(item)
