"""Stored JSON values as a person reads them: key/value pairs in words instead of braces and
quotes. Pure; the templates escape what these return."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.core.problems import field_label


def value_text(value: Any) -> str:
    """A JSON value as text: strings as they are, lists joined, flat objects as "k: v; …"."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(value_text(v) for v in value) if value else "none"
    if isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
        return "; ".join(f"{k}: {value_text(v)}" for k, v in value.items())
    return json.dumps(value, ensure_ascii=False)


def readable_pairs(value: Any) -> list[tuple[str, str]]:
    """Settings such as a run's selection as (label, text) pairs; empty values are left out."""
    if not isinstance(value, Mapping):
        return []
    return [
        (field_label(str(k)) or str(k), _identifier(v) if _is_identifier(str(k)) else value_text(v))
        for k, v in value.items()
        if v not in (None, "", [], {})
    ]


def _is_identifier(key: str) -> bool:
    return key == "seed" or key.endswith(("_seed", "_id", "_ids"))


def _identifier(value: Any) -> str:
    """Seeds and ids are names, not quantities: no thousands separators."""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
