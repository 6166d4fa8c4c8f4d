"""External verdict lines, parsed and checked (pure): one JSONL line of a verdicts file becomes a
judge answer for a rollout or a pair, or a problem with its line and field."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.agreement.pairwise import Outcome
from app.core import json_limits
from app.core.schema_check import schema_problems
from app.judging.verdicts import (
    Interpretation,
    pair_interpretation,
)
from app.rubrics.definition import RubricDefinition, RubricMode

MAX_PROBLEMS = 100
PROGRESS_EVERY = 5000  # lines between progress reports
CHECK_EVERY = 500  # lines checked between progress reports
MAX_LINE_CHARS = 1_000_000
VERDICT_SCHEMA = Path(__file__).resolve().parent / "verdict.schema.json"
_WINNERS = {
    "a": "A",
    "model_a": "A",
    "response_a": "A",
    "b": "B",
    "model_b": "B",
    "response_b": "B",
    "tie": "tie",
    "draw": "tie",
}
# Combined over both orders only: the two orders named different winners.
INCONSISTENT = Outcome.INCONSISTENT.value
_COMBINED_WINNERS = {**_WINNERS, "tie (inconsistent)": INCONSISTENT, INCONSISTENT: INCONSISTENT}
BOTH_ORDERS = "both"
_FLIP = {"A": "B", "B": "A", "tie": "tie"}
_FLIP_ORDER = {"AB": "BA", "BA": "AB"}


@dataclass
class VerdictLine:
    number: int
    judge: str
    repeat: int
    kind: str  # answer (a full judge answer) | scores | pair
    subject: tuple[str, ...]  # (rollout external id,) or (id of A, id of B)
    order: str  # pairs: the order the judge saw, in the line's own A/B terms
    answer: dict[str, Any]  # answer/scores: the judge answer; pair: {"winner", "criteria"}
    raw: str


class Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.total = 0

    def add(self, line: int, where: str, message: str) -> None:
        self.total += 1
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(
                {
                    "line": line,
                    "field": f"line {line}" + (f": {where}" if where else ""),
                    "message": message,
                }
            )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _criterion_entry(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {
            "evidence": _text(value.get("evidence")),
            "justification": _text(value.get("justification")),
            "score": value.get("score"),
        }
    return {"evidence": "", "justification": "", "score": value}


def _answer_from_scores(
    defn: RubricDefinition, record: dict[str, Any], number: int, problems: Problems
) -> dict[str, Any] | None:
    keys = {c.key for c in defn.criteria}
    justification = _text(record.get("justification"))

    def criteria_of(scores: Any, where: str) -> dict[str, Any] | None:
        if not isinstance(scores, dict):
            problems.add(number, where, "must be an object of criterion key to score")
            return None
        unknown = sorted(set(scores) - keys)
        if unknown:
            problems.add(
                number,
                where,
                f"unknown criterion {', '.join(unknown)} (known: {', '.join(sorted(keys))})",
            )
            return None
        missing = sorted(keys - set(scores))
        if missing:
            problems.add(number, where, f"missing criterion {', '.join(missing)}")
            return None
        return {k: _criterion_entry(v) for k, v in scores.items()}

    if defn.aggregation == "per_item_mean":
        items = record.get("items")
        if not isinstance(items, list):
            problems.add(
                number, "items", "this rubric scores each item: give a list of score objects"
            )
            return None
        built = []
        for index, scores in enumerate(items):
            criteria = criteria_of(scores, f"items[{index}]")
            if criteria is None:
                return None
            built.append(
                {"item_index": index, "excerpt": "", "criteria": criteria, "item_score": 0}
            )
        return {str(defn.item_field): built, "aggregate_score": 0}
    criteria = criteria_of(record.get("scores"), "scores")
    if criteria is None:
        return None
    answer: dict[str, Any] = {"criteria": criteria, "aggregate_score": 0}
    if justification:
        answer["justification"] = justification
    return answer


def parse_line(
    defn: RubricDefinition,
    number: int,
    raw: str,
    default_judge: str | None,
    problems: Problems,
) -> VerdictLine | None:
    if len(raw) > MAX_LINE_CHARS:
        problems.add(number, "", f"longer than {MAX_LINE_CHARS:,} characters")
        return None
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        problems.add(number, "", f"not valid JSON ({exc.msg}, column {exc.colno})")
        return None
    except RecursionError:
        problems.add(number, "", f"nested deeper than {json_limits.MAX_DEPTH} levels")
        return None
    if not isinstance(record, dict):
        problems.add(number, "", "must be a JSON object")
        return None
    if json_limits.depth(record) > json_limits.MAX_DEPTH:
        problems.add(number, "", f"nested deeper than {json_limits.MAX_DEPTH} levels")
        return None
    judge = record.get("judge", default_judge)
    line = _parse_record(defn, number, raw, record, judge, problems)
    if line is not None:  # the same schema the API serves (GET /api/v1/formats/verdicts)
        checked = record if "judge" in record else {**record, "judge": judge}
        found = schema_problems(VERDICT_SCHEMA, checked)
        for name, message in found:
            problems.add(number, name, message)
        if found:
            return None
    return line


def _parse_record(
    defn: RubricDefinition,
    number: int,
    raw: str,
    record: dict[str, Any],
    judge: Any,
    problems: Problems,
) -> VerdictLine | None:
    if not isinstance(judge, str) or not judge.strip():
        problems.add(number, "judge", "missing: name the judge on each line or for the file")
        return None
    repeat = record.get("repeat", 0)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 0 <= repeat < 1000:
        problems.add(number, "repeat", "must be a whole number from 0")
        return None
    justification = _text(record.get("justification"))
    if defn.mode == RubricMode.preference:
        pair = record.get("pair")
        if pair is None and "rollout_a" in record:
            pair = [record.get("rollout_a"), record.get("rollout_b")]
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        ):
            problems.add(
                number, "pair", 'a preference verdict needs "pair": [rollout A id, rollout B id]'
            )
            return None
        spelled = str(record.get("winner", "")).strip().lower()
        order = record.get(
            "order_shown",
            BOTH_ORDERS
            if spelled in _COMBINED_WINNERS and _COMBINED_WINNERS[spelled] == INCONSISTENT
            else "AB",
        )
        if order not in ("AB", "BA", BOTH_ORDERS):
            problems.add(number, "order_shown", "must be AB, BA or both")
            return None
        winner = (_COMBINED_WINNERS if order == BOTH_ORDERS else _WINNERS).get(spelled)
        if winner is None:
            allowed = "A, B, tie or tie (inconsistent)" if order == BOTH_ORDERS else "A, B or tie"
            problems.add(number, "winner", f"must be {allowed}, got {record.get('winner')!r}")
            return None
        criteria = record.get("criteria") or {}
        keys = {c.key for c in defn.criteria}
        if not isinstance(criteria, dict) or any(
            k not in keys or _WINNERS.get(str(v).lower()) is None for k, v in criteria.items()
        ):
            problems.add(
                number, "criteria", "must map criterion keys of this rubric to A, B or tie"
            )
            return None
        answer: dict[str, Any] = {
            "winner": winner,
            "justification": justification,
            "criteria": {k: _WINNERS[str(v).lower()] for k, v in criteria.items()},
        }
        return VerdictLine(number, judge.strip(), repeat, "pair", tuple(pair), order, answer, raw)
    rollout = record.get("rollout_id")
    if not isinstance(rollout, str) or not rollout:
        problems.add(number, "rollout_id", "missing: the rollout's external id (text)")
        return None
    if "answer" in record:
        if not isinstance(record["answer"], dict):
            problems.add(number, "answer", "must be a judge answer object")
            return None
        return VerdictLine(
            number, judge.strip(), repeat, "answer", (rollout,), "", record["answer"], raw
        )
    built = _answer_from_scores(defn, record, number, problems)
    if built is None:
        return None
    return VerdictLine(number, judge.strip(), repeat, "scores", (rollout,), "", built, raw)


def pair_result(
    line: VerdictLine, pairs: dict[tuple[int, int], int], a: int, b: int
) -> tuple[dict[str, Any], Interpretation] | None:
    """The verdict in the stored pair's terms: the line may list the pair the other way round."""
    given = line.answer
    if (a, b) in pairs:
        pair_id, flipped, rollout_a = pairs[(a, b)], False, a
    elif (b, a) in pairs:
        pair_id, flipped, rollout_a = pairs[(b, a)], True, b
    else:
        return None
    if line.order == BOTH_ORDERS:
        return _combined_result(given, flipped, pair_id, rollout_a)
    order = _FLIP_ORDER[line.order] if flipped else line.order

    def positional(value: str) -> str:
        canonical = _FLIP[value] if flipped else value
        return canonical if order == "AB" else _FLIP[canonical]

    answer = {
        "justification": given["justification"],
        "winner": positional(given["winner"]),
        "criteria": {
            key: {"justification": "", "winner": positional(v)}
            for key, v in given["criteria"].items()
        },
    }
    return (
        {"rollout_id": rollout_a, "pair_id": pair_id, "order": order},
        pair_interpretation(answer, order),
    )


def _combined_result(
    given: dict[str, Any], flipped: bool, pair_id: int, rollout_a: int
) -> tuple[dict[str, Any], Interpretation]:
    """A verdict combined over both orders: no order shown (stored as ""), winner in the pair's
    terms, an inconsistent verdict kept as "inconsistent" (scored as a tie: 0.5)."""
    winner = given["winner"]
    if flipped and winner != INCONSISTENT:
        winner = _FLIP[winner]
    score = {"A": 1.0, "B": 0.0}.get(winner, 0.5)
    answer = {"justification": given["justification"], "winner": winner, "orders": BOTH_ORDERS}
    return (
        {"rollout_id": rollout_a, "pair_id": pair_id, "order": ""},
        Interpretation(
            answer=answer,
            scores={"criteria": {}, "combined": True},
            aggregate=score,
            normalized=score,
            winner=winner,
        ),
    )


def numbered_lines(stream: Iterable[bytes | str]) -> Iterable[tuple[int, str]]:
    for number, raw in enumerate(stream, start=1):
        text = (
            raw.decode("utf-8-sig" if number == 1 else "utf-8") if isinstance(raw, bytes) else raw
        )
        text = text.strip()
        if text:
            yield number, text
