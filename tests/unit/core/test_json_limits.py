"""Depth of JSON values and of JSON text (without parsing) agree; limits refuse with a message."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.errors import InvalidInput
from app.core.json_limits import check_json, depth, text_depth
from app.web.input_guard import text_problem

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab'),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\ab', max_size=3), children, max_size=3)
    ),
    max_leaves=30,
)


@given(json_values)
def test_text_depth_matches_the_parsed_depth(value) -> None:
    assert text_depth(json.dumps(value).encode()) == depth(value)


def test_check_json_refuses_deep_and_large_values() -> None:
    deep: dict = {}
    for _ in range(40):
        deep = {"x": deep}
    with pytest.raises(InvalidInput, match="nested deeper than 32 levels"):
        check_json(deep, "The schema")
    with pytest.raises(InvalidInput, match="larger than 1 kB"):
        check_json({"x": "y" * 2000}, "The schema", max_bytes=1000)
    assert check_json({"ok": [1, 2]}, "The schema") == {"ok": [1, 2]}


def test_text_problems() -> None:
    assert text_problem("fine, even ünïcode 🎉") is None
    assert "NUL" in (text_problem("a\x00b") or "")
    assert "surrogate" in (text_problem("a\ud800b") or "")
