"""Import judge verdicts produced elsewhere (JSONL) as external judge runs.

One line per verdict:

    {"rollout_id": "<rollout external id>", "judge": "gpt-4o-judge",
     "scores": {"<criterion key>": <value or {"score": v, "justification": "..."}>, ...},
     "justification": "...", "repeat": 0}
    {"rollout_id": "...", "judge": "...", "items": [{"<criterion key>": v, ...}, ...]}
        (per-item rubrics: one score object per item of the response)
    {"rollout_id": "...", "judge": "...", "answer": {<a full judge answer>}}
    {"pair": ["<external id A>", "<external id B>"], "judge": "...", "winner": "A" | "B" | "tie",
     "order_shown": "AB" | "BA", "justification": "..."}   (preference rubrics)
    {"pair": [...], "judge": "...", "winner": "tie (inconsistent)", "order_shown": "both"}
        (a verdict already combined over both orders, as MT-Bench publishes them: "A", "B",
        "tie" when both orders agree, "tie (inconsistent)" / "inconsistent" when they did not;
        an inconsistent verdict is stored as such, never as a tie)

Scores are recomputed with the rubric version's own rules. Each judge name becomes one run of
kind "external"; runs from one file share a comparison key. Every problem is reported with its
line and field, and nothing is stored unless the whole file is valid.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import insert
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core import stored
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.errors import InvalidInput
from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from app.judging.service import get_version
from app.judging.verdict_lines import (
    CHECK_EVERY,
    PROGRESS_EVERY,
    Problems,
    VerdictLine,
    numbered_lines,
    pair_result,
    parse_line,
)
from app.judging.verdicts import (
    ERROR_PARSE_STATUSES,
    RunPlan,
    item_count_of,
    rubric_interpretation,
    score_parsed,
)
from app.projects.models import Project
from app.rollouts import service as rollout_service
from app.rollouts.jobs import VERDICTS_FORMAT
from app.rollouts.models import Rollout, RolloutImport, RolloutPair
from app.rubrics.definition import RubricDefinition, RubricMode
from app.rubrics.output_schema import build_output_schema

_items = JudgeWorkItem.__table__  # type: ignore[attr-defined]
# Files larger than this are imported as a job with progress from the browser.
JOB_THRESHOLD_BYTES = 256 * 1024


@dataclass
class ImportSummary:
    runs: list[JudgeRun]
    verdicts: int
    judges: list[str] = field(default_factory=list)


@dataclass
class VerdictPlan:
    """A checked verdict file: the rows to store (one external run per judge) and its problems."""

    version_id: int
    lines: int
    rows: list[tuple[VerdictLine, dict[str, Any]]]
    problems: Problems


def import_verdicts(
    session: Session,
    project: Project,
    *,
    actor: User | None,
    rubric_version_id: int,
    stream: Iterable[bytes | str],
    judge_name: str | None = None,
    filename: str = "",
    on_progress: Callable[[str, int], None] | None = None,
) -> ImportSummary:
    """Validate the whole file, then store one external run per judge (all or nothing).

    ``on_progress(stage, count)`` is told how far a large file has come: "read" every
    PROGRESS_EVERY lines, then "stored" with the number of verdicts stored. A large file is
    better imported as a job with progress (`app/judging/import_jobs.py`).
    """
    plan = plan_verdicts(
        session,
        project,
        rubric_version_id=rubric_version_id,
        stream=stream,
        judge_name=judge_name,
        on_progress=on_progress,
    )
    problems = plan.problems
    if problems.total:
        shown = len(problems.items)
        raise InvalidInput(
            f"{problems.total} problem(s) in the file; nothing was imported"
            + (f" (the first {shown} are listed)" if shown < problems.total else "")
            + ".",
            details=problems.items,
        )
    summary = store_verdicts(session, project, actor, plan.version_id, plan.rows, filename)
    if on_progress is not None:
        on_progress("stored", summary.verdicts)
    return summary


def plan_verdicts(
    session: Session,
    project: Project,
    *,
    rubric_version_id: int,
    stream: Iterable[bytes | str],
    judge_name: str | None = None,
    on_progress: Callable[[str, int], None] | None = None,
    on_checked: Callable[[int, int], None] | None = None,
) -> VerdictPlan:
    """Read and check every line (reads only). ``on_progress("read", count)`` every
    PROGRESS_EVERY lines read; ``on_checked(done, total)`` every CHECK_EVERY lines checked."""
    project_id = project.id or 0
    version = get_version(session, project_id, rubric_version_id)
    defn = RubricDefinition.model_validate(version.definition)
    plan = RunPlan(
        run_id=0,
        kind="external",
        status="completed",
        definition=defn,
        definition_dict=defn.model_dump(mode="json"),
        output_schema=version.output_schema or build_output_schema(defn),
        snapshot={},
        judge_name="",
        neutral_score=0.5,
    )
    problems = Problems()
    parsed: list[VerdictLine] = []
    try:
        for number, raw in numbered_lines(stream):
            line = parse_line(defn, number, raw, judge_name, problems)
            if line is not None:
                parsed.append(line)
            if on_progress is not None and number % PROGRESS_EVERY == 0:
                on_progress("read", number)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"The file is not UTF-8 text ({exc.reason}).") from None
    if not parsed and not problems.total:
        raise InvalidInput("The file has no verdicts (it is empty).")

    external_ids = {i for line in parsed for i in line.subject}
    rollout_ids = _rollout_ids(session, project_id, external_ids)
    pairs = (
        _pairs(session, project_id, rollout_ids.values())
        if defn.mode == RubricMode.preference
        else {}
    )
    # Per-item rubrics: an imported answer must score each item of the response exactly once.
    item_counts = (
        _item_counts(session, plan, rollout_ids.values())
        if defn.aggregation == "per_item_mean"
        else {}
    )
    rows: list[tuple[VerdictLine, dict[str, Any]]] = []
    seen: dict[tuple[str, tuple[str, ...], int, str], int] = {}
    for checked, line in enumerate(parsed):
        if on_checked is not None and checked % CHECK_EVERY == 0:
            on_checked(checked, len(parsed))
        missing = [i for i in line.subject if i not in rollout_ids]
        if missing:
            where = "pair" if line.kind == "pair" else "rollout_id"
            problems.add(line.number, where, f"no rollout with id {missing[0]!r} in this project")
            continue
        key = (line.judge, line.subject, line.repeat, line.order)
        if key in seen:
            problems.add(
                line.number, "", f"repeats line {seen[key]} (same judge, rollout and repeat)"
            )
            continue
        seen[key] = line.number
        try:
            if line.kind == "pair":
                a, b = (rollout_ids[i] for i in line.subject)
                found = pair_result(line, pairs, a, b)
                if found is None:
                    problems.add(
                        line.number,
                        "pair",
                        f"{line.subject[0]!r} and {line.subject[1]!r} are not a pair here",
                    )
                    continue
                subject, result = found
            else:
                subject = {"rollout_id": rollout_ids[line.subject[0]], "pair_id": None, "order": ""}
                result = (
                    score_parsed(plan, line.answer, "", item_counts.get(subject["rollout_id"]))
                    if line.kind == "answer"
                    else rubric_interpretation(plan, line.answer)
                )
        except ValueError as exc:
            problems.add(line.number, "answer" if line.kind == "answer" else "scores", str(exc))
            continue
        rows.append((line, {**subject, "result": result}))
    return VerdictPlan(version.id or 0, len(parsed), rows, problems)


def _rollout_ids(session: Session, project_id: int, external_ids: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    wanted = sorted(external_ids)
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        query = select(Rollout.external_id, Rollout.id).where(
            Rollout.project_id == project_id, col(Rollout.external_id).in_(chunk)
        )
        found.update({ext: int(rid or 0) for ext, rid in session.exec(query)})
    return found


def _item_counts(session: Session, plan: RunPlan, rollout_ids: Iterable[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    wanted = sorted(set(rollout_ids))
    for start in range(0, len(wanted), 1000):
        query = select(Rollout.id, Rollout.response).where(
            col(Rollout.id).in_(wanted[start : start + 1000])
        )
        for rid, response in session.exec(query):
            counts[int(rid or 0)] = item_count_of(plan, response) or 0
    return counts


def _pairs(
    session: Session, project_id: int, rollout_ids: Iterable[int]
) -> dict[tuple[int, int], int]:
    ids = sorted(set(rollout_ids))
    found: dict[tuple[int, int], int] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        query = select(RolloutPair.rollout_a_id, RolloutPair.rollout_b_id, RolloutPair.id).where(
            RolloutPair.project_id == project_id, col(RolloutPair.rollout_a_id).in_(chunk)
        )
        found.update({(a, b): int(pid or 0) for a, b, pid in session.exec(query)})
    return found


def store_verdicts(
    session: Session,
    project: Project,
    actor: User | None,
    version_id: int,
    rows: list[tuple[VerdictLine, dict[str, Any]]],
    filename: str,
    *,
    before_commit: Callable[[list[JudgeRun]], None] | None = None,
) -> ImportSummary:
    """One external run per judge, with its work items and verdicts, in one transaction.
    ``before_commit(runs)`` may add to the same transaction (a job recording its runs)."""
    project_id = project.id or 0
    judges = sorted({line.judge for line, _ in rows})
    comparison_key = uuid.uuid4().hex if len(judges) > 1 else None
    now = utcnow()
    runs: list[JudgeRun] = []
    for judge in judges:
        mine = [(line, data) for line, data in rows if line.judge == judge]
        run = JudgeRun(
            project_id=project_id,
            rubric_version_id=version_id,
            judge_config_id=None,
            judge_snapshot={"name": judge, "provider": "external"},
            kind="external",
            comparison_key=comparison_key,
            external_judge_name=judge[:200],
            selection={"source": "import", "file": filename[:300]},
            repeats=max(line.repeat for line, _ in mine) + 1,
            status="completed",
            items_total=len(mine),
            items_done=len(mine),
            # "pairwise": the run pages then say which order was shown and who won.
            settings={
                "neutral_score": 0.5,
                "pairwise": any(data["pair_id"] for _, data in mine),
            },
            message=f"Imported {len(mine)} verdicts"
            + (f" from {filename}" if filename else "")
            + ".",
            created_by_id=actor.id if actor else None,
            started_at=now,
            finished_at=now,
        )
        session.add(run)
        session.flush()
        stored.request_refresh(session, [run.id or 0])
        items = [
            {
                "run_id": run.id,
                "rollout_id": data["rollout_id"],
                "pair_id": data["pair_id"],
                "subject_key": f"p:{data['pair_id']}"
                if data["pair_id"]
                else f"r:{data['rollout_id']}",
                "repeat": line.repeat,
                "order_shown": data["order"],
                "status": "done",
                "attempts": 0,
            }
            for line, data in mine
        ]
        session.execute(insert(JudgeWorkItem), items)
        item_ids = {
            (rollout, pair, repeat, order): item_id
            for item_id, rollout, pair, repeat, order in session.execute(
                sa_select(
                    _items.c.id,
                    _items.c.rollout_id,
                    _items.c.pair_id,
                    _items.c.repeat,
                    _items.c.order_shown,
                ).where(_items.c.run_id == run.id)
            )
        }
        verdicts = []
        for line, data in mine:
            result = data["result"]
            verdicts.append(
                {
                    "run_id": run.id,
                    "work_item_id": item_ids[
                        (data["rollout_id"], data["pair_id"], line.repeat, data["order"])
                    ],
                    "rollout_id": data["rollout_id"],
                    "pair_id": data["pair_id"],
                    "repeat": line.repeat,
                    "order_shown": data["order"],
                    "answer": result.answer,
                    "scores": result.scores,
                    "aggregate": result.aggregate,
                    "normalized": result.normalized,
                    "winner": result.winner,
                    "raw_text": line.raw[:100_000],
                    "parse_status": "ok",
                    "error": None,
                    "latency_ms": 0,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "attempts": 0,
                    "judge_name": judge[:200],
                    "created_at": now,
                }
            )
        session.execute(insert(Verdict), verdicts)
        run.items_error = sum(v["parse_status"] in ERROR_PARSE_STATUSES for v in verdicts)
        audit_service.record(
            session,
            actor=actor,
            action="judge_run.import",
            object_type="judge_run",
            object_id=run.id,
            project_id=project_id,
            summary=f"imported {len(mine)} verdicts of external judge {judge}",
            details={"file": filename, "rubric_version_id": version_id},
        )
        runs.append(run)
    if before_commit is not None:
        before_commit(runs)
    session.commit()
    return ImportSummary(runs=runs, verdicts=len(rows), judges=judges)


def queue_verdict_import(
    session: Session,
    settings: Settings,
    project: Project,
    *,
    actor: User | None,
    rubric_version_id: int,
    filename: str,
    source: BinaryIO | None = None,
    path: Path | None = None,
    judge_name: str | None = None,
    claim_by: str | None = None,
) -> RolloutImport:
    """Queue a verdict file as a durable import job with progress (`app/judging/import_jobs.py`):
    the worker reads and checks every line, then stores the runs at once (all or nothing)."""
    version = get_version(session, project.id or 0, rubric_version_id)
    return rollout_service.create_file_job(
        session,
        settings,
        project,
        actor,
        fmt=VERDICTS_FORMAT,
        filename=filename,
        options={"rubric_version_id": version.id, "judge_name": (judge_name or "").strip()[:200]},
        source=source,
        path=path,
        claim_by=claim_by,
        action="judge_run.import.create",
        summary=f"started importing verdicts from {filename} under rubric version {version.id}",
    )
