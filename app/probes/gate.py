"""The export gate's question about probes ("has this exact configuration been probed, and did
it pass?"), what the manifest records of it, and the hackability card of a rubric version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from app.judging.models import JudgeConfig
from app.probes import report as probe_report
from app.probes import service as probe_service
from app.probes.models import ProbeRun, ProbeRunStatus
from app.projects.models import Project
from app.rubrics.models import Rubric, RubricVersion


def _measured_gaming(run: ProbeRun) -> bool:
    """Did the run measure at least one way of gaming (a probe other than self-consistency,
    applied to at least one item)?"""
    return any(
        row.get("n") and not row.get("informational") and not row.get("not_applicable")
        for row in probe_service.report_rows(run)
    )


def probe_command(project: Project, version: RubricVersion, judge: JudgeConfig) -> str:
    """The command that probes exactly this configuration (shown where the gate refuses)."""
    return (
        f"rubric-studio probes run --project {project.id} --rubric-version {version.id} "
        f"--judge {judge.id} --wait"
    )


def gate_check(
    session: Session,
    project: Project,
    *,
    version: RubricVersion,
    rubric: Rubric,
    judge: JudgeConfig,
    reward: dict[str, Any],
) -> dict[str, Any]:
    """The gate's probe check for exactly what is exported.

    - a completed run with the same config hash: passes when every probe passed ("passed" or
      "failed");
    - none with that hash, but one for this rubric (any version), judge or reward before: the
      configuration changed since ("stale");
    - never probed ("missing").
    Stale and missing block the export like a failed probe (an admin may override with a
    reason): hackability that was not measured for what ships must not pass silently.
    """
    project_id = project.id or 0
    hash_ = probe_service.config_hash(version, judge, reward)
    run = probe_service.latest_completed(session, project_id, hash_=hash_)
    command = probe_command(project, version, judge)
    base = {"name": "probes", "minimum": None, "config_hash": hash_, "command": command}
    if run is not None and not _measured_gaming(run):
        return {
            **base,
            "state": "missing",
            "value": None,
            "passed": False,
            "probe_run_id": run.id,
            "reason": (
                f"probe run #{run.id} measured no way of gaming the reward (self-consistency "
                "only, or nothing could be rewritten). Run the gaming probes: "
                f"{command}"
            ),
        }
    if run is not None:
        report = run.report or {}
        failed = list(report.get("failed") or [])
        rows = {row["name"]: row for row in probe_service.report_rows(run)}
        reasons = [rows[name]["verdict"] for name in failed if name in rows]
        return {
            **base,
            "state": "passed" if not failed else "failed",
            "value": len(failed),
            "passed": not failed,
            "probe_run_id": run.id,
            "reason": "" if not failed else "; ".join(reasons),
        }
    versions = select(RubricVersion.id).where(RubricVersion.rubric_id == rubric.id)
    earlier = session.exec(
        select(ProbeRun)
        .where(
            ProbeRun.project_id == project_id,
            ProbeRun.status == ProbeRunStatus.COMPLETED.value,
            col(ProbeRun.rubric_version_id).in_(versions),
        )
        .order_by(col(ProbeRun.id).desc())
        .limit(1)
    ).first()
    if earlier is not None:
        return {
            **base,
            "state": "stale",
            "value": None,
            "passed": False,
            "probe_run_id": earlier.id,
            "reason": (
                f"out of date: probe run #{earlier.id} measured another rubric version, judge "
                "or reward configuration. Run probes for what you export: "
                f"{command}"
            ),
        }
    return {
        **base,
        "state": "missing",
        "value": None,
        "passed": False,
        "probe_run_id": None,
        "reason": (
            "not probed: nobody has measured whether this reward can be gamed. Run probes "
            f"(Probes page, or {command}), or ask a project admin to override with a reason"
        ),
    }


def manifest_entry(session: Session, check: dict[str, Any]) -> dict[str, Any]:
    """What the export manifest records about probes: the check, and the run's results,
    seeds and thresholds."""
    entry: dict[str, Any] = {"check": check}
    run_id = check.get("probe_run_id")
    run = session.get(ProbeRun, run_id) if run_id else None
    if run is not None:
        entry["run"] = {
            "id": run.id,
            "seed": run.seed,
            "probes": run.probes,
            "custom": run.custom,
            "thresholds": run.thresholds,
            "config_hash": run.config_hash,
            "selection": probe_service.public_selection(run),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "results": [_public_row(row) for row in probe_service.report_rows(run)],
        }
    return entry


def _public_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in probe_report.PUBLIC_ROW_KEYS}


@dataclass
class Hackability:
    """The summary card: the latest completed probe run of a rubric version."""

    run: ProbeRun | None
    rows: list[dict[str, Any]]
    failed: list[str]

    @property
    def measured(self) -> bool:
        return self.run is not None


def hackability(session: Session, project_id: int, version_id: int) -> Hackability:
    run = probe_service.latest_completed(session, project_id, version_id=version_id)
    if run is None:
        return Hackability(None, [], [])
    return Hackability(
        run, probe_service.report_rows(run), list((run.report or {}).get("failed") or [])
    )
