"""Deterministic instances of a JSON Schema, for the fake provider and the test judge server.

Covers the subset judge answer schemas use: object/properties/required/additionalProperties,
array items/minItems/maxItems, integer/number minimum/maximum (and exclusive bounds), boolean,
string (minLength/maxLength), enum, const, type lists, anyOf/oneOf/allOf and local $ref.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from typing import Any

from app.rubrics.scoring import response_item_count

_WORDS = (
    "clear",
    "accurate",
    "cites",
    "clause",
    "risk",
    "missing",
    "evidence",
    "complete",
    "concise",
    "relevant",
    "partial",
    "grounded",
    "vague",
    "correct",
    "issue",
    "severity",
    "liability",
    "notice",
    "term",
    "payment",
    "renewal",
)
DEFAULT_ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "justification": {"type": "string"},
    },
    "required": ["score", "justification"],
    "additionalProperties": False,
}


def seed_for(text: str) -> int:
    """A stable seed from text (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def instance_for_schema(schema: dict[str, Any] | None, seed: int) -> Any:
    """An instance of `schema` chosen by `seed`; the same inputs always give the same value."""
    root = schema if schema is not None else DEFAULT_ANSWER_SCHEMA
    return _gen(root, root, random.Random(seed), depth=0)


_RESPONSE_BLOCK = re.compile(r"<response>\n(.*)\n</response>", re.DOTALL)


def prompt_response(user_text: str) -> str | None:
    """The judged response inside a rendered judge prompt (its <response> block), if found."""
    found = _RESPONSE_BLOCK.search(user_text)
    return found.group(1) if found else None


def item_list_field(schema: dict[str, Any] | None) -> str | None:
    """The answer's per-item list (an array property whose items carry item_index), if any."""
    for name, sub in ((schema or {}).get("properties") or {}).items():
        items = sub.get("items") if isinstance(sub, dict) else None
        if isinstance(items, dict) and "item_index" in (items.get("properties") or {}):
            return str(name)
    return None


def prompt_item_count(schema: dict[str, Any] | None, user_text: str) -> int | None:
    """How many items the response inside a rendered judge prompt has (None: not per item)."""
    field = item_list_field(schema)
    if field is None:
        return None
    return response_item_count(prompt_response(user_text) or "", field)


def instance_for_prompt(schema: dict[str, Any] | None, user_text: str) -> Any:
    """instance_for_schema seeded by the prompt; a per-item answer scores each of the prompt's
    response items exactly once, as a coverage-checked judge answer must."""
    answer = instance_for_schema(schema, seed_for(user_text))
    count = prompt_item_count(schema, user_text)
    field = item_list_field(schema)
    if count is None or field is None or not isinstance(answer, dict) or schema is None:
        return answer
    rng = random.Random(seed_for(user_text) + 1)
    item_schema = schema["properties"][field]["items"]
    items = [_gen(item_schema, schema, rng, depth=1) for _ in range(count)]
    for index, item in enumerate(items):
        item["item_index"] = index
    answer[field] = items
    return answer


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for part in ref.lstrip("#").split("/"):
        if part:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _gen(schema: Any, root: dict[str, Any], rng: random.Random, depth: int) -> Any:
    if schema is True or schema is None or schema == {}:
        return rng.choice(_WORDS)
    if schema is False:
        raise ValueError("schema `false` has no instances")
    if depth > 12:
        return None
    if "$ref" in schema:
        return _gen(_resolve(schema["$ref"], root), root, rng, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(list(schema["enum"]))
    if "allOf" in schema:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = _resolve(part["$ref"], root) if "$ref" in part else part
            for key, value in part.items():
                if key == "properties":
                    merged.setdefault("properties", {}).update(value)
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return _gen(merged, root, rng, depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if not _is_null(o, root)] or schema[key]
            return _gen(options[rng.randrange(len(options))], root, rng, depth + 1)

    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"] or ["null"]
        kind = kinds[rng.randrange(len(kinds))]
    if kind is None:
        kind = _infer_type(schema)

    if kind == "object":
        return _gen_object(schema, root, rng, depth)
    if kind == "array":
        return _gen_array(schema, root, rng, depth)
    if kind == "integer":
        return _gen_integer(schema, rng)
    if kind == "number":
        return _gen_number(schema, rng)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _gen_string(schema, rng)


def _is_null(option: Any, root: dict[str, Any]) -> bool:
    if isinstance(option, dict) and "$ref" in option:
        option = _resolve(option["$ref"], root)
    return isinstance(option, dict) and option.get("type") == "null"


def _infer_type(schema: dict[str, Any]) -> str:
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "minItems" in schema:
        return "array"
    if "minimum" in schema or "maximum" in schema:
        return "number"
    return "string"


def _gen_object(
    schema: dict[str, Any], root: dict[str, Any], rng: random.Random, depth: int
) -> dict[str, Any]:
    props: dict[str, Any] = schema.get("properties", {})
    out: dict[str, Any] = {}
    for name, sub in props.items():
        out[name] = _gen(sub, root, rng, depth + 1)
    extra = schema.get("additionalProperties", True)
    # Required names without a property schema: fill from additionalProperties when allowed.
    for name in schema.get("required", []):
        if name not in out:
            out[name] = _gen(extra if isinstance(extra, dict) else {}, root, rng, depth + 1)
    return out


def _gen_array(
    schema: dict[str, Any], root: dict[str, Any], rng: random.Random, depth: int
) -> list[Any]:
    low = int(schema.get("minItems", 1))
    high = int(schema.get("maxItems", max(low, 3)))
    count = rng.randint(low, max(low, high))
    prefix = schema.get("prefixItems", [])
    items = schema.get("items", {})
    out = [_gen(p, root, rng, depth + 1) for p in prefix[:count]]
    unique = bool(schema.get("uniqueItems"))
    tries = 0
    while len(out) < count and tries < count * 20:
        tries += 1
        value = _gen(items, root, rng, depth + 1)
        if not unique or value not in out:
            out.append(value)
    return out


def _int_bounds(schema: dict[str, Any]) -> tuple[int, int]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
        low = math.floor(schema["exclusiveMinimum"]) + 1
    if "exclusiveMaximum" in schema and not isinstance(schema["exclusiveMaximum"], bool):
        high = math.ceil(schema["exclusiveMaximum"]) - 1
    low_i = math.ceil(low) if low is not None else None
    high_i = math.floor(high) if high is not None else None
    if low_i is None and high_i is None:
        return 0, 10
    if low_i is None:
        return (high_i or 0) - 10, high_i or 0
    if high_i is None:
        return low_i, low_i + 10
    return low_i, max(low_i, high_i)


def _gen_integer(schema: dict[str, Any], rng: random.Random) -> int:
    low, high = _int_bounds(schema)
    step = schema.get("multipleOf")
    if isinstance(step, int) and step > 0:
        first = math.ceil(low / step) * step
        choices = list(range(first, high + 1, step)) or [first]
        return choices[rng.randrange(len(choices))]
    return rng.randint(low, high)


def _number_bound(schema: dict[str, Any], inclusive: str, exclusive: str) -> float | None:
    for key in (inclusive, exclusive):
        value = schema.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _gen_number(schema: dict[str, Any], rng: random.Random) -> float:
    low = _number_bound(schema, "minimum", "exclusiveMinimum")
    high = _number_bound(schema, "maximum", "exclusiveMaximum")
    if low is None:
        low = 0.0 if high is None else high - 1.0
    if high is None:
        high = low + 1.0
    if high <= low:
        return low
    # Stay strictly inside so exclusive bounds hold; two decimals keeps answers readable.
    raw = low + (high - low) * (0.05 + 0.9 * rng.random())
    rounded = round(raw, 2)
    return rounded if low < rounded < high else raw


def _gen_string(schema: dict[str, Any], rng: random.Random) -> str:
    min_len = int(schema.get("minLength", 0))
    max_len = int(schema.get("maxLength", 200))
    words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 8))]
    text = " ".join(words).capitalize() + "."
    while len(text) < min_len:
        text += " " + rng.choice(_WORDS)
    return text[:max_len] if max_len >= min_len else text
