"""How rollout text is cut up for display: pages of long texts and a structured view of JSON
responses. Pure: the templates escape everything these return."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Characters of one text shown at once; "show more" fetches the next page.
PAGE_CHARS = 20_000
# Larger responses are only shown as paged text: formatting them would cost the page.
MAX_JSON_VIEW_CHARS = 500_000
PREVIEW_CHARS = 160


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
class JsonItem:
    title: str
    pretty: str


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
            JsonItem(_title(item, index), pretty_json(item)) for index, item in enumerate(value)
        ]
        return JsonView("list", items)
    return JsonView("object", [JsonItem("object", pretty_json(value))])


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
