"""Schema instances are valid for the schema subset judge answers use, and deterministic."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from app.llm.schema_instance import DEFAULT_ANSWER_SCHEMA, instance_for_schema, seed_for

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
    {"type": "integer", "minimum": 1, "maximum": 5},
    {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
    {"type": "integer", "minimum": 0, "maximum": 100, "multipleOf": 25},
    {"type": "number", "minimum": 0, "maximum": 1},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.01},
    {"type": "number", "minimum": 2.5},
    {"type": "string", "minLength": 40, "maxLength": 50},
    {"type": "string", "maxLength": 5},
    {"enum": ["A", "B", "tie"]},
    {"const": "fixed"},
    {"type": ["integer", "null"], "minimum": 3, "maximum": 3},
    {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4},
    {"type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 2, "uniqueItems": True},
    {"type": "array", "prefixItems": [{"const": "x"}, {"type": "boolean"}], "minItems": 2},
    {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 7, "maximum": 9}]},
    {"oneOf": [{"type": "string", "maxLength": 3}, {"type": "boolean"}]},
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"b": {"const": 1}}, "required": ["b"]},
        ]
    },
    {"properties": {"score": {"minimum": 1, "maximum": 2}}, "required": ["score"]},
    {
        "type": "object",
        "required": ["extra_key"],
        "additionalProperties": {"type": "integer", "minimum": 10, "maximum": 10},
    },
    {
        "$defs": {
            "criterion": {
                "type": "object",
                "properties": {
                    "score": {"type": "integer", "minimum": 0, "maximum": 4},
                    "evidence": {"type": "string"},
                },
                "required": ["score", "evidence"],
                "additionalProperties": False,
            }
        },
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/criterion"}, "minItems": 1},
            "best": {"anyOf": [{"$ref": "#/$defs/criterion"}, {"type": "null"}]},
        },
        "required": ["items", "best"],
        "additionalProperties": False,
    },
    DEFAULT_ANSWER_SCHEMA,
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=[str(i) for i in range(len(SCHEMAS))])
def test_instances_validate_for_many_seeds(schema: dict[str, Any]) -> None:
    for seed in range(60):
        jsonschema.validate(instance_for_schema(schema, seed), schema)


def test_rubric_like_schema(grade_schema: dict[str, Any]) -> None:
    for seed in range(60):
        jsonschema.validate(instance_for_schema(grade_schema, seed), grade_schema)


def test_same_seed_same_instance_and_seeds_vary(grade_schema: dict[str, Any]) -> None:
    first = instance_for_schema(grade_schema, 42)
    assert instance_for_schema(grade_schema, 42) == first
    assert len({repr(instance_for_schema(grade_schema, s)) for s in range(20)}) > 10


def test_no_schema_gives_the_default_score_answer() -> None:
    answer = instance_for_schema(None, 3)
    jsonschema.validate(answer, DEFAULT_ANSWER_SCHEMA)
    assert 1 <= answer["score"] <= 5


def test_seed_for_is_stable_across_processes() -> None:
    # A fixed value: Python's own hash() would change from run to run.
    assert seed_for("hello") == 0x2CF24DBA5FB0A30E
    assert seed_for("hello") != seed_for("hello ")


def test_unsupported_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="local"):
        instance_for_schema({"$ref": "https://example.com/schema.json"}, 1)
    with pytest.raises(ValueError, match="false"):
        instance_for_schema({"type": "object", "properties": {"x": False}}, 1)
