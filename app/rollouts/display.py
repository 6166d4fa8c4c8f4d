"""How rollout text is cut up for display: pages of long texts and a structured view of JSON
responses. Pure: the templates escape everything these return."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from app.core.readable import value_text

# Characters of one text shown at once; "show more" fetches the next page.
PAGE_CHARS = 20_000
# Larger responses are only shown as paged text: formatting them would cost the page.
MAX_JSON_VIEW_CHARS = 500_000
PREVIEW_CHARS = 160
# Input messages shown at once; "show more" fetches the next ones (a rollout may hold 100,000).
MESSAGE_PAGE = 50
# A field value longer than this is shown folded in the key/value view.
FIELD_VALUE_CHARS = 2_000


@dataclass(frozen=True)
class TextPage:
    text: str
    page: int
    pages: int
    remaining: int  # characters after this page

    @property
    def has_more(self) -> bool:
        return self.remaining > 0


def text_page(text: str | None, page: int = 0, size: int = PAGE_CHARS) -> TextPage:
    text = text or ""
    pages = max(1, -(-len(text) // size))
    page = min(max(page, 0), pages - 1)
    start = page * size
    chunk = text[start : start + size]
    return TextPage(chunk, page, pages, max(0, len(text) - start - len(chunk)))


@dataclass(frozen=True)
class MessagePage:
    """Some of a rollout's input messages, with their positions, and where the next page starts."""

    items: list[tuple[int, dict[str, Any]]]
    start: int
    total: int
    next_start: int | None

    @property
    def remaining(self) -> int:
        return self.total - (self.next_start or self.total)


def message_page(
    messages: list[Any] | None, start: int = 0, size: int = MESSAGE_PAGE
) -> MessagePage:
    messages = messages or []
    start = min(max(start, 0), len(messages))
    chunk = messages[start : start + size]
    items = [
        (start + i, m if isinstance(m, dict) else {"content": str(m)}) for i, m in enumerate(chunk)
    ]
    end = start + len(chunk)
    return MessagePage(items, start, len(messages), end if end < len(messages) else None)


@dataclass(frozen=True)
class JsonItem:
    title: str
    pretty: str
    # (key, value as text) for an object whose values read as text; empty: show `pretty`.
    fields: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class JsonView:
    """A response that is JSON: its items (one for an object), or why it does not parse."""

    kind: str  # "list", "object" or "invalid"
    items: list[JsonItem]
    error: str | None = None


def json_view(text: str | None) -> JsonView | None:
    """A structured view when the response is (or tries to be) a JSON list or object."""
    stripped = (text or "").strip()
    if not stripped or stripped[0] not in "[{" or len(stripped) > MAX_JSON_VIEW_CHARS:
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError) as error:
        where = ""
        if isinstance(error, json.JSONDecodeError):
            where = f" at line {error.lineno}, column {error.colno}: {error.msg}"
        return JsonView("invalid", [], f"not valid JSON{where}")
    if isinstance(value, list):
        items = [
            JsonItem(_title(item, index), pretty_json(item), key_values(item))
            for index, item in enumerate(value)
        ]
        return JsonView("list", items)
    return JsonView("object", [JsonItem("object", pretty_json(value), key_values(value))])


def key_values(value: Any) -> list[tuple[str, str]]:
    """An object's fields as (key, text) pairs; [] when it is not an object."""
    if not isinstance(value, dict):
        return []
    return [(str(k), value_text(v)) for k, v in value.items()]


# "key": value pairs in JSON text that may be cut short (a preview): the last string may be open.
_PAIR = re.compile(
    r'"([^"\\]{1,80})"\s*:\s*("(?:[^"\\]|\\.)*"|"(?:[^"\\]|\\.)*$|-?\d[\d.eE+-]*|true|false|null)'
)


def readable_preview(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    """One line for a list of rollouts: a JSON response (perhaps cut short) as "key: value · …"
    instead of braces and quotes; any other text as it is."""
    flat = (text or "").lstrip()
    if not flat or flat[0] not in "[{":
        return short(text, limit)
    pairs = []
    for key, raw in _PAIR.findall(flat):
        try:
            value = json.loads(raw)
        except ValueError:
            try:  # the preview cut this string short
                value = json.loads(raw + '"') + "…"
            except ValueError:
                value = raw.strip('"')
        pairs.append(f"{key}: {value_text(value)}")
    if not pairs:
        return "(empty list)" if flat.replace(" ", "") in ("[]", "{}") else short(text, limit)
    return short(" · ".join(pairs), limit)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _title(item: Any, index: int) -> str:
    """ "#2 · the first text in the item", to tell the items apart when they are collapsed."""
    preview = ""
    if isinstance(item, dict):
        preview = next((v for v in item.values() if isinstance(v, str) and v.strip()), "")
    elif isinstance(item, str):
        preview = item
    preview = " ".join(preview.split())
    if len(preview) > PREVIEW_CHARS:
        preview = preview[:PREVIEW_CHARS] + "…"
    return f"#{index + 1}" + (f" · {preview}" if preview else "")


def short(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    """One line of at most `limit` characters."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[:limit] + "…"
