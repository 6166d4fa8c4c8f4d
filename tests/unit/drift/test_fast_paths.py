"""The import's fast paths give what the plain ones give: orjson reading against json, the
grounding shortcut against the full excerpt matching, the storable flag against the check."""

from __future__ import annotations

import io
import json
import random

import pytest

from app.drift.bulk import storage_problem
from app.drift.measures import grounding_counts, quoted_excerpts
from app.drift.records import DriftLine, DriftOptions, iter_records
from app.rewards.components import excerpt_occurs, normalize_text
from app.rollouts.formats.lines import _DECODER, fast_decode

LINES = [
    '{"a": 1, "b": [1.5e-7, 0.1, -0.0, 1E5, 18446744073709551615], "c": "x\\u00e9\\n"}',
    '{"big": 123456789012345678901234567890}',  # beyond 64 bits: json keeps it exact
    '{"small": -9223372036854775808, "id": "1234567890123456789"}',
    '{"a": 1, "a": 2}',
    '{"emoji": "\\ud83d\\ude00", "nul": "a\\u0000b"}',
    '{"deep": [[[[[[[[1]]]]]]]]}',
]


@pytest.mark.parametrize("text", LINES)
def test_fast_decode_equals_json_or_declines(text: str) -> None:
    value = fast_decode(text)
    expected = _DECODER.decode(text)
    assert value is None or (value == expected and json.dumps(value) == json.dumps(expected))
    if "123456789012345678901234567890" in text:
        assert value is None


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": 1e400}', '{"a": "\\ud800"}', "[1,"])
def test_fast_decode_leaves_what_orjson_refuses_to_json(text: str) -> None:
    assert fast_decode(text) is None


DOCUMENT = "This Agreement is made between Acme Corp and Beta LLC.\n  The Supplier shall “deliver” "
DOCUMENT += "the goods within thirty days. Liability is limited to the fees paid."
EXCERPTS = [
    "The Supplier shall",
    "  The Supplier shall  ",
    "Acme Corp ... Beta LLC",
    "Acme Corp [...] thirty days",
    "Beta LLC … Acme Corp",
    "...",
    " [ … ] ",
    " ",
    "",
    '"deliver"',
    "“deliver”",
    "shall\u00a0“deliver”",
    "not in the contract at all",
    "the fees paid.",
    "LLC. The",
]


def _slow(response: str, document: str) -> tuple[int, int]:
    excerpts = quoted_excerpts(response)
    if not excerpts:
        return 0, 0
    normal = normalize_text(document)
    return len(excerpts), sum(1 for e in excerpts if not excerpt_occurs(e, normal))


@pytest.mark.parametrize("seed", range(20))
def test_grounding_shortcut_equals_the_full_matching(seed: int) -> None:
    rng = random.Random(seed)
    picked = rng.sample(EXCERPTS, 5)
    response = json.dumps([{"text_excerpt": e, "comment": "c"} for e in picked])
    assert grounding_counts(response, DOCUMENT) == _slow(response, DOCUMENT)


def test_lines_read_by_orjson_without_nul_skip_the_storage_check() -> None:
    rows = [
        {
            "id": f"r{i}",
            "training_run": "run",
            "recorded_at": "2026-12-01T10:00:00Z",
            "rollout": {"response": text},
            "reward": 0.5,
        }
        for i, text in enumerate(["plain", "with \u0000 nul", "big 1"])
    ]
    rows[2]["metadata_big"] = 10**30
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    lines = [
        item
        for item in iter_records(io.BytesIO(body), DriftOptions(training_run="run"))
        if isinstance(item, DriftLine)
    ]
    assert [line.storable for line in lines] == [True, False, False]
    assert storage_problem(lines[0]) is None
    problem = storage_problem(lines[1])
    assert problem is not None and "NUL" in problem.message
    assert storage_problem(lines[2]) is None
    assert lines[2].record.metadata["metadata_big"] == 10**30
