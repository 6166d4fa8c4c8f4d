"""Limits on JSON values taken from users before they are stored.

A value nested hundreds of levels deep can be stored, but then every page and API answer that
reads it fails (serialisers and validators recurse). Depth and size are checked on write, once,
with a message that says what is allowed. Pure: no web or database imports.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from app.core.errors import InvalidInput

MAX_DEPTH = 32
MAX_BYTES = 1_000_000
# Request bodies: generous, since they wrap the values above.
MAX_BODY_DEPTH = MAX_DEPTH + 8

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\x02\x02")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[{]}")


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, `{}` is 1), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def text_depth(body: bytes) -> int:
    """Nesting depth of JSON text without parsing it (strings are skipped), at C speed."""
    if b"[" not in body and b"{" not in body:
        return 0
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS).translate(_BRACKETS)
    if not brackets:
        return 0
    steps = (1 if b == 1 else -1 for b in brackets)
    return max(accumulate(steps))


def check_json(
    value: Any, what: str, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES
) -> Any:
    """Refuse a value too deep or too large to store and show again."""
    if depth(value) > max_depth:
        raise InvalidInput(
            f"{what} is nested deeper than {max_depth} levels.",
            details=[{"field": what, "message": f"is nested deeper than {max_depth} levels"}],
        )
    try:
        size = len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} is not a JSON value.") from None
    if size > max_bytes:
        raise InvalidInput(
            f"{what} is larger than {max_bytes // 1000} kB.",
            details=[{"field": what, "message": f"is larger than {max_bytes // 1000} kB"}],
        )
    return value
