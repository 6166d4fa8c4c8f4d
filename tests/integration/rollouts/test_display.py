"""The pure display helpers behind the detail page: text pages and the JSON view."""

from __future__ import annotations

import json

from app.rollouts import display


def test_text_pages_cover_the_text_exactly_once() -> None:
    text = "".join(chr(0x41 + n % 26) for n in range(25))
    pages = [display.text_page(text, n, size=10) for n in range(3)]
    assert "".join(page.text for page in pages) == text
    assert [page.remaining for page in pages] == [15, 5, 0]
    assert [page.has_more for page in pages] == [True, True, False]
    assert display.text_page(text, 99, size=10).page == 2  # past the end: the last page
    assert display.text_page(None).text == "" and not display.text_page("").has_more


def test_json_view_of_a_list_titles_each_item_by_its_first_text() -> None:
    view = display.json_view(json.dumps([{"n": 1, "excerpt": "  a\n quote "}, 7, "plain"]))
    assert view is not None and view.kind == "list"
    assert [item.title for item in view.items] == ["#1 · a quote", "#2", "#3 · plain"]
    assert json.loads(view.items[0].pretty) == {"n": 1, "excerpt": "  a\n quote "}


def test_json_view_reports_broken_json_and_ignores_prose() -> None:
    broken = display.json_view('[{"a": ')
    assert broken is not None and broken.kind == "invalid"
    assert broken.error == "not valid JSON at line 1, column 7: Expecting value"
    assert display.json_view("The contract is fine.") is None
    assert display.json_view("") is None
    obj = display.json_view('{"verdict": "ok"}')
    assert obj is not None and obj.kind == "object"
    huge = "[" + "1," * display.MAX_JSON_VIEW_CHARS + "1]"
    assert display.json_view(huge) is None  # too big to format: shown as paged text


def test_short_flattens_and_cuts() -> None:
    assert display.short("a\n\n b", 10) == "a b"
    assert display.short("x" * 20, 5) == "xxxxx…"


def test_readable_preview_of_json_cut_short() -> None:
    cut = (
        '[ { "text_excerpt": "a \\"quoted\\" term", "rule": "R10", "score": 3, "ok": true, '
        '"concern": "The clause se'
    )
    assert display.readable_preview(cut) == (
        'text_excerpt: a "quoted" term · rule: R10 · score: 3 · ok: yes · concern: The clause se…'
    )
    assert display.readable_preview("[]") == "(empty list)"
    assert display.readable_preview("Plain prose answer.") == "Plain prose answer."


def test_key_values_read_as_words() -> None:
    from app.core.readable import readable_pairs

    assert display.key_values({"a": None, "b": [1, 2], "c": {"x": 1}}) == [
        ("a", "—"),
        ("b", "1, 2"),
        ("c", "x: 1"),
    ]
    selection = {"source": "gold", "gold_split": "test", "steps": [0, 100], "sample": None}
    assert readable_pairs({**selection, "seed": 971567892, "count": 12000}) == [
        ("Source", "gold"),
        ("Gold split", "test"),
        ("Steps", "0, 100"),
        ("Seed", "971567892"),
        ("Count", "12,000"),
    ]
