"""Counts in page text agree with their nouns: "1 label compared", "2 labels compared"."""

from __future__ import annotations

from pathlib import Path

from app.web.templating import TEMPLATE_DIR, build_templates


def test_plural_filter() -> None:
    env = build_templates().env
    render = env.from_string("{{ n|plural('label') }} compared; {{ n|plural('query', 'queries') }}")
    assert render.render(n=1) == "1 label compared; 1 query"
    assert render.render(n=0) == "0 labels compared; 0 queries"
    assert render.render(n=12345) == "12,345 labels compared; 12,345 queries"


def test_review_head_says_one_label_not_one_labels() -> None:
    source = (Path(TEMPLATE_DIR) / "labels" / "_review_head.html").read_text()
    assert "}} labels compared" not in source and 'plural("label") }} compared' in source
