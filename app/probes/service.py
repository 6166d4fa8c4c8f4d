"""Probe runs: choose the originals, start a run, read runs and their progress, cancel. The
worker's steps (rewrites, their judge run, the report) are in app.probes.steps, the export
gate's question in app.probes.gate, a preference rubric's report in app.probes.pairs.

Public functions that change data commit once; helpers only flush. The rewrites and the report
are made by the worker (app.probes.jobs), never inside a request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import Conflict, InvalidInput, NotFound
from app.judging import configs as judging_configs
from app.judging import service as judging_service
from app.judging.models import JudgeConfig, JudgeRun
from app.judging.schemas import SelectionInput
from app.judging.service import Subjects
from app.probes import pairs as probe_pairs
from app.probes import report as probe_report
from app.probes.models import ProbeRun, ProbeRunStatus
from app.probes.rewrites import (
    PAIR_PROBES,
    PROBES,
    CustomProbe,
    ProbeError,
    check_custom,
    default_probes,
)
from app.probes.schemas import ProbeRunCreate
from app.projects.models import Project
from app.rewards import service as reward_service
from app.rubrics import service as rubric_service
from app.rubrics.models import Rubric, RubricVersion

SOURCE_PREFIX = judging_service.PROBE_SOURCE_PREFIX
MAX_ORIGINALS = 2000  # each original makes about a dozen rewrites, each a judge call


# ---- what was measured ------------------------------------------------------------------------


def judge_fingerprint(config: JudgeConfig) -> dict[str, Any]:
    """The judge settings that change verdicts (an edit bumps `revision`)."""
    snapshot = judging_configs.snapshot_of(config)
    keys = ("id", "revision", "provider", "model_id", "base_url", "region", "params")
    return {k: snapshot.get(k) for k in keys}


def config_hash(version: RubricVersion, judge: JudgeConfig, reward: dict[str, Any]) -> str:
    """One hash of the rubric version's content, the judge settings and the composite reward:
    probe results only count for an export with the very same hash."""
    payload = {
        "rubric_version": version.content_hash,
        "judge": judge_fingerprint(judge),
        "reward": reward,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ---- starting a run ---------------------------------------------------------------------------


def _version(session: Session, project_id: int, version_id: int) -> tuple[RubricVersion, Rubric]:
    version = session.get(RubricVersion, version_id)
    if version is None or version.project_id != project_id:
        raise NotFound("No such rubric version in this project.")
    rubric = session.get(Rubric, version.rubric_id)
    assert rubric is not None
    return version, rubric


def _judge(session: Session, project_id: int, config_id: int) -> JudgeConfig:
    return judging_configs.get_config(session, project_id, config_id)


def _custom(data: ProbeRunCreate) -> list[dict[str, Any]]:
    problems: list[dict[str, str]] = []
    custom: list[dict[str, Any]] = []
    for index, item in enumerate(data.custom):
        probe = CustomProbe(item.name, item.kind, item.pattern, item.replacement, item.template)
        try:
            check_custom(probe)
        except ProbeError as exc:
            problems.append({"field": f"custom[{index}]", "message": str(exc)})
            continue
        custom.append(item.model_dump(mode="json"))
    if problems:
        raise InvalidInput("A custom probe cannot run: " + problems[0]["message"], details=problems)
    return custom


def _resolve(
    session: Session, project_id: int, data: ProbeRunCreate, pairwise: bool, split: str | None
) -> Subjects:
    selection = SelectionInput(
        source="gold" if split else "all", gold_split=split, sample=data.sample, seed=data.seed
    )
    # Drift samples and earlier probe rewrites are never originals (left out in SQL).
    return judging_service.resolve_selection(
        session, project_id, selection, pairwise=pairwise, without_drift_samples=True
    )


def select_originals(
    session: Session, project_id: int, data: ProbeRunCreate, *, pairwise: bool
) -> tuple[Subjects, str]:
    """The rollouts (or pairs) to probe, and a note when the default had to fall back.

    By default the gold set's development split; when the project has none, every rollout
    (or pair) of the project instead, said in the note. Drift samples and rewrites made by
    earlier probe runs are never probed, whatever the selection."""
    subjects = _resolve(session, project_id, data, pairwise, data.gold_split)
    if subjects.ids or data.gold_split != "development":
        return subjects, ""
    what = "pairs" if pairwise else "rollouts"
    fallback = _resolve(session, project_id, data, pairwise, None)
    note = (
        "The gold set has no development split in this project, so all its "
        f"{what} were probed instead (drift samples and earlier probe rewrites left out). "
        "Add gold items to the development split to probe those."
    )
    return fallback, note


def create_run(
    session: Session, project: Project, *, actor: User | None, data: ProbeRunCreate
) -> ProbeRun:
    """Record a queued probe run; a worker makes the rewrites and judges them."""
    project_id = project.id or 0
    version, rubric = _version(session, project_id, data.rubric_version_id)
    pairwise = rubric_service.version_definition(version).mode == "preference"
    judge = _judge(session, project_id, data.judge_config_id)
    if judge.provider == "external":
        raise InvalidInput("An external judge cannot be called: choose a callable judge.")
    unknown = [name for name in data.probes if name not in PROBES]
    if unknown:
        raise InvalidInput(
            f"Unknown probe(s): {', '.join(unknown)}. Known: {', '.join(PROBES)}.",
            details=[{"field": "probes", "message": f"unknown: {name}"} for name in unknown],
        )
    probes = list(dict.fromkeys(data.probes)) if data.probes else list(default_probes(pairwise))
    if pairwise and data.custom:
        raise InvalidInput(
            "Your own rewrites apply to single-answer rubrics; a preference rubric runs the "
            f"probes that judge a pair ({', '.join(PAIR_PROBES)}).",
            details=[{"field": "custom", "message": probe_pairs.PAIR_ONLY}],
        )
    custom = _custom(data)
    subjects, note = select_originals(session, project_id, data, pairwise=pairwise)
    what = "pairs" if pairwise else "rollouts"
    if not subjects.ids:
        where = f"the gold set's {data.gold_split} split" if data.gold_split else "this project"
        raise InvalidInput(
            f"There are no {what} to probe in {where} (drift samples and earlier probe "
            "rewrites are never probed): add gold items to it, or choose another split."
        )
    if len(subjects.ids) > MAX_ORIGINALS:
        raise InvalidInput(
            f"The selection has {len(subjects.ids):,} {what}; probe at most {MAX_ORIGINALS:,} "
            "(give a sample size): every one makes several judge calls."
        )
    state = reward_service.current_config(session, project_id)
    reward = state.model.as_dict()
    seed = data.seed if data.seed is not None else secrets.randbelow(2**31)
    thresholds = probe_report.thresholds_with_defaults(data.thresholds.model_dump())
    chosen = {"pair_ids": subjects.ids} if pairwise else {"rollout_ids": subjects.ids}
    run = ProbeRun(
        project_id=project_id,
        rubric_version_id=version.id or 0,
        judge_config_id=judge.id,
        status=ProbeRunStatus.QUEUED.value,
        seed=seed,
        probes=probes,
        custom=custom,
        thresholds=thresholds,
        selection={**subjects.selection, **chosen, "note": note},
        config_hash=config_hash(version, judge, reward),
        reward_revision=state.revision,
        reward_config=reward,
        created_by_id=actor.id if actor else None,
    )
    session.add(run)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="probe_run.create",
        object_type="probe_run",
        object_id=run.id,
        project_id=project_id,
        summary=(
            f"started probes ({', '.join(probes + [c['name'] for c in custom])}) of "
            f"{rubric.name} v{version.number} with {judge.name} on {len(subjects.ids)} {what}"
        ),
        details={"seed": seed, "thresholds": thresholds, "config_hash": run.config_hash},
    )
    session.commit()
    return run


def originals_count(run: ProbeRun) -> int:
    """How many rollouts (or pairs, for a preference rubric) the run probes."""
    return len(run.selection.get("rollout_ids") or run.selection.get("pair_ids") or [])


def public_selection(run: ProbeRun) -> dict[str, Any]:
    """The run's selection without its (long) id lists."""
    return {k: v for k, v in run.selection.items() if k not in ("rollout_ids", "pair_ids")}


def is_pairwise(run: ProbeRun) -> bool:
    return "pair_ids" in run.selection


# ---- reading runs -----------------------------------------------------------------------------


def get_run(session: Session, project_id: int, run_id: int) -> ProbeRun:
    run = session.get(ProbeRun, run_id)
    if run is None or run.project_id != project_id:
        raise NotFound("No such probe run in this project.")
    return run


def list_runs(
    session: Session, project_id: int, *, version_id: int | None = None, limit: int = 50
) -> list[ProbeRun]:
    query = select(ProbeRun).where(ProbeRun.project_id == project_id)
    if version_id is not None:
        query = query.where(ProbeRun.rubric_version_id == version_id)
    return list(session.exec(query.order_by(col(ProbeRun.id).desc()).limit(limit)))


@dataclass
class ProbeProgress:
    status: str
    done: int
    total: int
    percent: int
    finished: bool


def progress(session: Session, run: ProbeRun) -> ProbeProgress:
    """How far the run's judging is (the rewrites come first, then the judge run)."""
    judge_run = session.get(JudgeRun, run.judge_run_id) if run.judge_run_id else None
    total = judge_run.items_total if judge_run else run.items_total
    done = judge_run.items_done if judge_run else 0
    if run.status == ProbeRunStatus.COMPLETED.value:
        done = total
    percent = int(100 * done / total) if total else 0
    finished = run.status in (
        ProbeRunStatus.COMPLETED.value,
        ProbeRunStatus.FAILED.value,
        ProbeRunStatus.CANCELLED.value,
    )
    return ProbeProgress(run.status, done, total, percent, finished)


def cancel_run(session: Session, project: Project, *, actor: User | None, run_id: int) -> ProbeRun:
    run = get_run(session, project.id or 0, run_id)
    if run.status not in (ProbeRunStatus.QUEUED.value, ProbeRunStatus.JUDGING.value):
        raise Conflict(f"This probe run is already {run.status}.")
    if run.judge_run_id:
        judge_run = session.get(JudgeRun, run.judge_run_id)
        if judge_run and judge_run.status in ("queued", "running"):
            judge_run.status = "cancelled"
            judge_run.finished_at = utcnow()
    run.status = ProbeRunStatus.CANCELLED.value
    run.finished_at = utcnow()
    audit_service.record(
        session,
        actor=actor,
        action="probe_run.cancel",
        object_type="probe_run",
        object_id=run.id,
        project_id=project.id,
        summary=f"cancelled probe run #{run.id}",
    )
    session.commit()
    return run


def report_rows(run: ProbeRun) -> list[dict[str, Any]]:
    return list((run.report or {}).get("probes") or [])


def latest_completed(
    session: Session, project_id: int, *, version_id: int | None = None, hash_: str | None = None
) -> ProbeRun | None:
    query = select(ProbeRun).where(
        ProbeRun.project_id == project_id, ProbeRun.status == ProbeRunStatus.COMPLETED.value
    )
    if version_id is not None:
        query = query.where(ProbeRun.rubric_version_id == version_id)
    if hash_ is not None:
        query = query.where(ProbeRun.config_hash == hash_)
    return session.exec(query.order_by(col(ProbeRun.id).desc()).limit(1)).first()
