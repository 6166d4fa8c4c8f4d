"""Label files: JSONL and CSV parsing with line-and-field problems, and writing both formats."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from app.labels.transfer import guess_format, parse_csv, parse_jsonl, to_csv, to_jsonl


def test_jsonl_records_and_problems() -> None:
    text = "\n".join(
        [
            json.dumps(
                {
                    "rollout": "a",
                    "annotator": " Jane ",
                    "values": {"k": 1},
                    "submitted_at": "2024-01-02T03:04:05Z",
                }
            ),
            "",
            "[1, 2]",
            json.dumps({"rollout": "b", "annotator": "J", "values": [1]}),
            json.dumps({"annotator": "J"}),
            json.dumps({"rollout": "c", "annotator": "J", "colour": "red"}),
            json.dumps({"rollout": "d", "annotator": "J", "submitted_at": "yesterday"}),
        ]
    )
    records, problems = parse_jsonl(text)
    assert [(r.line, r.rollout, r.annotator) for r in records] == [(1, "a", "Jane")]
    assert records[0].submitted_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert [(p.line, p.field) for p in problems] == [
        (3, "line"),
        (4, "values"),
        (5, "rollout"),
        (6, "colour"),
        (7, "submitted_at"),
    ]
    assert parse_jsonl("\n\n")[1][0].field == "file"


def test_csv_records_and_problems() -> None:
    text = (
        "rollout,annotator,Safe,critique:Safe,overall_critique,rollout_id\n"
        "a,Jane,pass,looks safe,,\n"
        ",Jane,fail,,,\n"
        "b,Jane,fail,,,x\n"
        ",,,,,\n"
        "c,Jane,pass,,,,extra\n"
    )
    records, problems = parse_csv(text)
    assert len(records) == 1
    assert records[0].values == {"Safe": "pass"}
    assert records[0].critiques == {"Safe": "looks safe"}
    assert [(p.line, p.field) for p in problems] == [(3, "rollout"), (4, "rollout_id"), (6, "row")]
    assert parse_csv("just,a,header\n")[1][0].field == "header"


def test_round_trip_through_both_formats() -> None:
    row = {
        "rollout": "r-1",
        "rollout_id": 1,
        "annotator": "Jane, Esq.",
        "rubric": "R",
        "rubric_version": 2,
        "values": {"Safe": True, "Level": 4},
        "critiques": {"Level": 'quotes "the playbook"\nnot the contract'},
        "overall_critique": "",
        "submitted_at": datetime(2024, 1, 1, tzinfo=UTC),
    }
    records, problems = parse_jsonl(to_jsonl([row]))
    assert problems == [] and records[0].values == {"Safe": True, "Level": 4}
    csv_records, csv_problems = parse_csv(to_csv([row], ["Safe", "Level"]))
    assert csv_problems == []
    (record,) = csv_records
    assert record.annotator == "Jane, Esq."
    assert record.values == {"Safe": "pass", "Level": "4"}
    assert record.critiques == {"Level": 'quotes "the playbook"\nnot the contract'}
    assert record.rollout_id == 1


def test_format_guess() -> None:
    assert guess_format("x.CSV", "{}") == "csv"
    assert guess_format("x.jsonl", "a,b") == "jsonl"
    assert guess_format("upload", '\n{"rollout": 1}') == "jsonl"
    assert guess_format("upload", "rollout,annotator") == "csv"
