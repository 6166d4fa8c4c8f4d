"""Importing verdicts produced elsewhere: scores recomputed, pairs resolved in either order,
one external run per judge, and every bad line reported with nothing stored."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlmodel import Session, col, select

from app.core.errors import InvalidInput
from app.judging import external
from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from app.projects.models import Project
from tests.support.factories import (
    insert_pairs,
    insert_rollouts,
    make_project,
    make_user,
    make_version,
)

GENERIC = {
    "Instruction_Following": True,
    "Factual_Accuracy": True,
    "Completeness": False,
    "Clarity": True,
    "Safety": True,
}


@pytest.fixture
def project(session: Session) -> Project:
    return make_project(session, make_user(session), "External verdicts")


def _jsonl(*lines: Any) -> io.BytesIO:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return io.BytesIO(text.encode())


def _import(session: Session, project: Project, version_id: Any, *lines: Any, **kw: Any):
    return external.import_verdicts(
        session,
        project,
        actor=None,
        rubric_version_id=version_id,
        stream=_jsonl(*lines),
        filename="verdicts.jsonl",
        **kw,
    )


def _generic_keys(version) -> list[str]:
    return [c["key"] for c in version.definition["criteria"]]


def test_scores_from_two_judges_become_two_linked_external_runs(
    session: Session, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 2)
    keys = _generic_keys(version)
    scores = {k: True for k in keys}
    failing = {**scores, keys[1]: False}
    summary = _import(
        session,
        project,
        version.id,
        {"rollout_id": "r-0", "judge": "gpt-4o", "scores": scores, "justification": "good"},
        {"rollout_id": "r-1", "judge": "gpt-4o", "scores": failing},
        {"rollout_id": "r-0", "judge": "claude", "scores": {k: 1 for k in keys}},
        {"rollout_id": "r-0", "judge": "claude", "repeat": 1, "scores": failing},
    )
    assert summary.verdicts == 4 and summary.judges == ["claude", "gpt-4o"]
    runs = session.exec(select(JudgeRun).order_by(col(JudgeRun.id))).all()
    assert [r.kind for r in runs] == ["external", "external"]
    assert {r.external_judge_name for r in runs} == {"claude", "gpt-4o"}
    assert runs[0].comparison_key and runs[0].comparison_key == runs[1].comparison_key
    assert all(r.status == "completed" and r.items_done == r.items_total for r in runs)

    verdicts = session.exec(select(Verdict).order_by(col(Verdict.id))).all()
    by_judge = {(v.judge_name, v.repeat, v.rollout_id): v for v in verdicts}
    assert len(by_judge) == 4
    perfect = [v for v in verdicts if v.judge_name == "gpt-4o"][0]
    assert perfect.normalized == 1.0 and perfect.parse_status == "ok"
    assert perfect.answer["justification"] == "good"
    # Each verdict has its own done work item (unique per run/subject/repeat/order).
    items = session.exec(select(JudgeWorkItem)).all()
    assert len(items) == 4 and {i.status for i in items} == {"done"}
    assert {v.work_item_id for v in verdicts} == {i.id for i in items}


def test_per_item_rubrics_take_a_list_of_item_scores(session: Session, project: Project) -> None:
    version = make_version(session, project, "legal_contract_review")
    insert_rollouts(session, project, 1)
    items = [
        {"TargetDocument_Grounding": 5, "Reference_Consistency": 5, "Actionability": 5},
        {"TargetDocument_Grounding": 1, "Reference_Consistency": 3, "Actionability": 2},
    ]
    _import(session, project, version.id, {"rollout_id": "r-0", "judge": "j", "items": items})
    verdict = session.exec(select(Verdict)).one()
    assert verdict.scores["items"] and len(verdict.scores["items"]) == 2
    assert 0.0 < (verdict.normalized or 0) < 1.0


def test_an_imported_per_item_answer_must_cover_every_item(
    session: Session, project: Project
) -> None:
    version = make_version(session, project, "legal_contract_review")
    insert_rollouts(
        session, project, 1, response='[{{"text_excerpt": "a"}}, {{"text_excerpt": "b"}}]'
    )
    scores = {
        k: {"evidence": "", "justification": "", "score": 4}
        for k in ("TargetDocument_Grounding", "Reference_Consistency", "Actionability")
    }

    def answer(*indices: int) -> dict:
        items = [
            {"item_index": i, "excerpt": "", "criteria": scores, "item_score": 4} for i in indices
        ]
        return {"comments": items, "aggregate_score": 4}

    with pytest.raises(InvalidInput) as exc:
        _import(
            session, project, version.id, {"rollout_id": "r-0", "judge": "j", "answer": answer(0)}
        )
    assert "item_index 1 is missing" in exc.value.details[0]["message"]
    _import(
        session, project, version.id, {"rollout_id": "r-0", "judge": "j", "answer": answer(1, 0)}
    )
    assert len(session.exec(select(Verdict)).one().scores["items"]) == 2


def test_a_full_answer_is_validated_against_the_schema(session: Session, project: Project) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 1)
    with pytest.raises(InvalidInput) as exc:
        _import(session, project, version.id, {"rollout_id": "r-0", "judge": "j", "answer": {}})
    problem = exc.value.details[0]
    assert problem["field"] == "line 1: answer"
    assert "does not match the answer schema" in problem["message"]


def test_pairwise_verdicts_are_resolved_whichever_way_the_pair_is_listed(
    session: Session, project: Project
) -> None:
    version = make_version(session, project, "pairwise_preference")
    rollouts = insert_rollouts(session, project, 4)
    pairs = insert_pairs(session, project, rollouts)  # (r-0, r-1), (r-2, r-3)
    _import(
        session,
        project,
        version.id,
        {"pair": ["r-0", "r-1"], "judge": "gpt4_pair", "winner": "A", "order_shown": "AB"},
        # Listed the other way round and shown B first: the stored pair's B (r-3) won.
        {"pair": ["r-3", "r-2"], "judge": "gpt4_pair", "winner": "model_a", "order_shown": "AB"},
        {"pair": ["r-1", "r-0"], "judge": "gpt4_pair", "winner": "tie", "repeat": 1},
    )
    verdicts = {(v.pair_id, v.repeat): v for v in session.exec(select(Verdict))}
    first = verdicts[(pairs[0], 0)]
    assert first.winner == "A" and first.order_shown == "AB" and first.normalized == 1.0
    second = verdicts[(pairs[1], 0)]
    assert second.winner == "B" and second.order_shown == "BA"
    # What the judge saw first (r-3, the stored B) is what it picked: positional "A".
    assert second.answer["winner"] == "A" and second.normalized == 0.0
    assert verdicts[(pairs[0], 1)].winner == "tie"
    run = session.exec(select(JudgeRun)).one()
    assert run.kind == "external" and run.repeats == 2
    assert run.settings["pairwise"] is True  # run pages show the order shown and the winner


def test_combined_verdicts_keep_inconsistent_apart_from_ties(
    session: Session, project: Project
) -> None:
    """MT-Bench publishes verdicts already combined over both orders; "tie (inconsistent)" is
    stored as inconsistent (not a tie) and counted as such by the pairwise figures."""
    from app.agreement import pairs as agreement_pairs
    from app.labels import exchange

    version = make_version(session, project, "pairwise_preference")
    rollouts = insert_rollouts(session, project, 6)
    pair_ids = insert_pairs(session, project, rollouts)  # (r-0, r-1), (r-2, r-3), (r-4, r-5)
    _import(
        session,
        project,
        version.id,
        {"pair": ["r-0", "r-1"], "judge": "gpt4_pair", "winner": "tie (inconsistent)"},
        {"pair": ["r-3", "r-2"], "judge": "gpt4_pair", "winner": "tie", "order_shown": "both"},
        {"pair": ["r-5", "r-4"], "judge": "gpt4_pair", "winner": "A", "order_shown": "both"},
    )
    verdicts = {v.pair_id: v for v in session.exec(select(Verdict))}
    assert verdicts[pair_ids[0]].winner == "inconsistent"
    assert verdicts[pair_ids[0]].order_shown == "" and verdicts[pair_ids[0]].normalized == 0.5
    assert verdicts[pair_ids[1]].winner == "tie"
    assert verdicts[pair_ids[2]].winner == "B"  # listed the other way round
    owner = session.exec(select(JudgeRun)).one()
    labels = "".join(
        json.dumps({"rollout": a, "rollout_b": b, "annotator": "expert", "preference": p}) + "\n"
        for a, b, p in (("r-0", "r-1", "tie"), ("r-2", "r-3", "tie"), ("r-4", "r-5", "B"))
    )
    exchange.import_labels(
        session, project, actor=None, rubric_version_id=version.id or 0, text=labels, fmt="jsonl"
    )
    figures = agreement_pairs.run_pairwise(session, owner, resamples=0).figures
    assert figures["tie_rate"].value == pytest.approx(1 / 3)
    assert figures["inconsistent_rate"].value == pytest.approx(1 / 3)
    assert figures["positional_agreement"].value == pytest.approx(2 / 3)
    assert figures["accuracy_ab"].value is None  # no verdict given in a known order


def test_a_combined_winner_needs_order_both(session: Session, project: Project) -> None:
    version = make_version(session, project, "pairwise_preference")
    insert_pairs(session, project, insert_rollouts(session, project, 2))
    with pytest.raises(InvalidInput) as refused:
        _import(
            session,
            project,
            version.id,
            {
                "pair": ["r-0", "r-1"],
                "judge": "j",
                "winner": "tie (inconsistent)",
                "order_shown": "AB",
            },
        )
    assert "tie (inconsistent)" not in refused.value.details[0]["message"].split("got")[0]
    assert "must be A, B or tie" in refused.value.details[0]["message"]


def test_every_problem_is_reported_by_line_and_nothing_is_stored(
    session: Session, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 2)
    keys = _generic_keys(version)
    good = {k: True for k in keys}
    with pytest.raises(InvalidInput) as exc:
        _import(
            session,
            project,
            version.id,
            {"rollout_id": "r-0", "judge": "j", "scores": good},
            "{not json",
            {"rollout_id": "missing", "judge": "j", "scores": good},
            {"rollout_id": "r-1", "judge": "j", "scores": {**good, "Made_Up": 1}},
            {"rollout_id": "r-1", "judge": "j", "scores": {keys[0]: True}},
            {"rollout_id": "r-1", "scores": good},
            {"rollout_id": "r-0", "judge": "j", "scores": good},
            {"rollout_id": "r-1", "judge": "j", "scores": {**good, keys[0]: "maybe"}},
            [1, 2],
            {"rollout_id": "r-1", "judge": "j", "repeat": -1, "scores": good},
        )
    problems = {p["line"]: p for p in exc.value.details}
    assert "nothing was imported" in exc.value.message
    assert "not valid JSON" in problems[2]["message"]
    assert "no rollout with id 'missing'" in problems[3]["message"]
    assert "unknown criterion Made_Up" in problems[4]["message"]
    assert "missing criterion" in problems[5]["message"]
    assert problems[6]["field"] == "line 6: judge"
    assert "repeats line 1" in problems[7]["message"]
    assert problems[8]["field"] == "line 8: scores" and "maybe" in problems[8]["message"]
    assert "must be a JSON object" in problems[9]["message"]
    assert problems[10]["field"] == "line 10: repeat"
    assert 1 not in problems
    assert session.exec(select(Verdict)).first() is None
    assert session.exec(select(JudgeRun)).first() is None


def test_a_default_judge_name_applies_to_lines_without_one(
    session: Session, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 1)
    good = {k: True for k in _generic_keys(version)}
    summary = _import(
        session, project, version.id, {"rollout_id": "r-0", "scores": good}, judge_name="legacy"
    )
    assert summary.judges == ["legacy"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [((), "empty"), (("",), "empty")],
)
def test_an_empty_file_is_refused(
    session: Session, project: Project, lines: tuple[str, ...], message: str
) -> None:
    version = make_version(session, project)
    with pytest.raises(InvalidInput, match=message):
        _import(session, project, version.id, *lines)


def test_a_file_that_is_not_utf8_is_refused(session: Session, project: Project) -> None:
    version = make_version(session, project)
    with pytest.raises(InvalidInput, match="UTF-8"):
        external.import_verdicts(
            session,
            project,
            actor=None,
            rubric_version_id=version.id or 0,
            stream=io.BytesIO(b'{"rollout_id": "\xff\xfe"}\n'),
        )


def test_deeply_nested_lines_are_problems_not_stored_values(
    session: Session, project: Project
) -> None:
    """Issue 11, item 5: nothing nested too deep to show again is stored (and a line too deep
    for the JSON parser itself is a problem, not a crash)."""
    version = make_version(session, project)
    insert_rollouts(session, project, 2)
    deep: dict = {}
    for _ in range(60):
        deep = {"x": deep}
    with pytest.raises(InvalidInput) as exc:
        _import(
            session,
            project,
            version.id,
            {"rollout_id": "r-0", "judge": "j", "answer": {"criteria": deep}},
            "[" * 100_000 + "]" * 100_000,
        )
    problems = {p["line"]: p for p in exc.value.details}
    assert "nested deeper than 32 levels" in problems[1]["message"]
    assert "nested deeper than 32 levels" in problems[2]["message"]
    assert session.exec(select(Verdict)).first() is None


def test_a_large_file_reports_progress(session: Session, project: Project, monkeypatch) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 12)
    keys = _generic_keys(version)
    monkeypatch.setattr(external, "PROGRESS_EVERY", 5)
    seen: list[tuple[str, int]] = []
    lines = [
        {"rollout_id": f"r-{i}", "judge": "j", "scores": {k: True for k in keys}} for i in range(12)
    ]
    _import(session, project, version.id, *lines, on_progress=lambda s, n: seen.append((s, n)))
    assert seen == [("read", 5), ("read", 10), ("stored", 12)]
