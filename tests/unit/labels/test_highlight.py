"""Locating a response's excerpts in the document: whitespace-insensitive spans, marked
omissions, flags for excerpts that are not there, and segments for <mark> elements."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from app.labels.highlight import (
    MAX_OCCURRENCES,
    Segment,
    locate_excerpts,
    segments,
    squash,
    structured_items,
)

DOC = "1. Term.\nThis Agreement  shall continue\tfor two (2) years.\n2. Liability. Neither party..."


def test_whitespace_differences_are_forgiven_and_spans_point_at_the_original() -> None:
    (match,) = locate_excerpts(DOC, ["This Agreement shall continue for two (2) years."])
    assert match.status == "found" and match.found
    (span,) = match.spans
    assert DOC[span.start : span.end] == "This Agreement  shall continue\tfor two (2) years."


def test_absent_and_empty_excerpts_are_flagged() -> None:
    absent, paraphrase, empty = locate_excerpts(
        DOC, ["Nothing like this", "This contract will continue", "   "]
    )
    assert (absent.status, absent.spans) == ("not_found", ())
    assert paraphrase.status == "not_found" and not paraphrase.found
    assert empty.status == "empty"


def test_marked_omissions_are_found_piece_by_piece() -> None:
    (match,) = locate_excerpts(DOC, ["This Agreement shall continue ... (2) years."])
    assert match.status == "found_with_omissions"
    assert [DOC[s.start : s.end] for s in match.spans] == [
        "This Agreement  shall continue",
        "(2) years.",
    ]
    (wrong_order,) = locate_excerpts(DOC, ["(2) years. ... This Agreement"])
    assert wrong_order.status == "not_found"


def test_every_occurrence_is_marked_up_to_a_limit() -> None:
    (match,) = locate_excerpts("ab ab ab", ["ab"])
    assert len(match.spans) == 3
    (many,) = locate_excerpts("a" * 500, ["a"])
    assert len(many.spans) == MAX_OCCURRENCES


def test_segments_cover_the_document_and_share_overlaps() -> None:
    document = "alpha beta gamma delta"
    matches = locate_excerpts(document, ["alpha beta", "beta gamma", "zeta"])
    parts = segments(document, matches)
    assert "".join(p.text for p in parts) == document
    assert parts == [
        Segment("alpha ", (0,)),
        Segment("beta", (0, 1)),
        Segment(" gamma", (1,)),
        Segment(" delta", ()),
    ]


@given(
    st.lists(
        st.sampled_from(["lorem", "ipsum", "dolor", "sit", "amet", "\n", "  ", "\t"]), min_size=1
    ),
    st.data(),
)
def test_found_spans_hold_the_excerpt_up_to_whitespace(
    words: list[str], data: st.DataObject
) -> None:
    document = " ".join(words)
    start = data.draw(st.integers(0, len(document) - 1))
    end = data.draw(st.integers(start + 1, len(document)))
    excerpt = document[start:end]
    (match,) = locate_excerpts(document, [excerpt])
    if not squash(excerpt):
        assert match.status == "empty"
        return
    assert match.status == "found"
    for span in match.spans:
        assert squash(document[span.start : span.end]) == squash(excerpt)
    assert "".join(s.text for s in segments(document, [match])) == document


def test_structured_items_from_lists_and_wrapped_lists() -> None:
    comments = [{"text_excerpt": "Term", "concern": "x"}, {"quote": "y"}, {"concern": "none"}]
    items = structured_items(json.dumps(comments))
    assert items is not None
    assert [i.excerpt for i in items] == ["Term", "y", None]
    wrapped = structured_items(json.dumps({"comments": comments, "n": 3}), "comments")
    assert wrapped is not None and len(wrapped) == 3
    assert structured_items("The contract looks fine.") is None
    assert structured_items('[{"text_excerpt": "cut') is None
    assert structured_items("[1, 2]") is None
    assert structured_items("[]") == []
