"""Export bundles: freeze a rubric version, a judge configuration and the reward configuration
with the agreement figures on the gold test split, behind a gate; generate targets from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from app.exports import gate as gate_rules
from app.exports.bundle import BundleInputs, build_content, build_spec
from app.exports.models import ExportBundle
from app.exports.targets import TARGETS, TargetFile, TargetOptions, render_target
from app.judging.models import JudgeConfig, JudgeRun
from app.judging.verdicts import provider_config
from app.labels.models import GoldItem, Label
from app.labels.values import LabelStatus
from app.probes import gate as probe_gate
from app.projects import service as project_service
from app.projects.models import Project
from app.rewards import outcomes as reward_outcomes
from app.rewards import service as reward_service
from app.rollouts.models import Rollout
from app.rubrics import files as rubric_files
from app.rubrics import service as rubric_service
from app.rubrics.definition import RubricMode
from app.rubrics.models import Rubric, RubricVersion

MIN_OVERRIDE_REASON = 10
GOLD_SPLIT = "test"


class ExportGateBlocked(DomainError):
    """The agreement figures fall short of the gate and nobody overrode it."""

    status_code = 409


@dataclass
class ExportChoices:
    versions: list[rubric_service.VersionChoice]
    judges: list[JudgeConfig]
    runs: list[JudgeRun]


def export_choices(session: Session, project_id: int) -> ExportChoices:
    """Published rubric-mode versions, judge configurations and runs to export from."""
    versions = rubric_service.version_choices(session, project_id, mode="rubric")
    judges = list(
        session.exec(
            select(JudgeConfig)
            .where(JudgeConfig.project_id == project_id, JudgeConfig.provider != "external")
            .order_by(col(JudgeConfig.name))
        )
    )
    return ExportChoices(versions, judges, reward_service.list_runs(session, project_id))


def list_bundles(session: Session, project_id: int) -> list[ExportBundle]:
    query = select(ExportBundle).where(ExportBundle.project_id == project_id)
    return list(session.exec(query.order_by(col(ExportBundle.number).desc())))


def get_bundle(session: Session, project_id: int, bundle_id: int) -> ExportBundle:
    bundle = session.get(ExportBundle, bundle_id)
    if bundle is None or bundle.project_id != project_id:
        raise NotFound("No such export in this project.")
    return bundle


def same_content(session: Session, bundle: ExportBundle) -> list[int]:
    """Numbers of the project's other bundles with the same content hash."""
    query = select(ExportBundle.number).where(
        ExportBundle.project_id == bundle.project_id,
        ExportBundle.content_hash == bundle.content_hash,
        ExportBundle.id != bundle.id,
    )
    return sorted(session.exec(query))


def _version(session: Session, project_id: int, version_id: int) -> tuple[RubricVersion, Rubric]:
    version = session.get(RubricVersion, version_id)
    if version is None or version.project_id != project_id:
        raise NotFound("No such rubric version in this project.")
    rubric = session.get(Rubric, version.rubric_id)
    if rubric is None:
        raise NotFound("No such rubric in this project.")
    if rubric.mode != RubricMode.rubric:
        raise InvalidInput(
            "A preference rubric compares two responses and cannot score one response as a "
            "reward; export a rubric-mode rubric."
        )
    return version, rubric


def judge_settings(judge: JudgeConfig) -> dict[str, Any]:
    """The judge configuration as the settings a package uses (same reading as judge runs)."""
    try:
        return provider_config(judge.model_dump()).model_dump()
    except (ValidationError, KeyError) as exc:
        raise InvalidInput(
            f"Judge configuration “{judge.name}” cannot be exported: {exc}"
        ) from None


def _judge(session: Session, project_id: int, judge_config_id: int) -> JudgeConfig:
    judge = session.get(JudgeConfig, judge_config_id)
    if judge is None or judge.project_id != project_id:
        raise NotFound("No such judge configuration in this project.")
    if judge.provider not in ("bedrock", "openai_compat"):
        raise InvalidInput(
            f"Judge configuration “{judge.name}” ({judge.provider}) cannot be called from a "
            "reward function; choose a Bedrock or OpenAI-compatible judge."
        )
    return judge


def gold_test_pairs(
    session: Session, project_id: int, version: RubricVersion, run_id: int
) -> tuple[list[gate_rules.GatePair], dict[str, int]]:
    """(pairs, counts): each submitted expert label of a locked gold test item, with the run's
    verdict on that rollout. Labels of any version of the same rubric count (same criteria)."""
    gold_ids = list(
        session.exec(
            select(GoldItem.rollout_id).where(
                GoldItem.project_id == project_id, GoldItem.split == GOLD_SPLIT
            )
        )
    )
    same_rubric = select(RubricVersion.id).where(RubricVersion.rubric_id == version.rubric_id)
    labels: list[Label] = []
    for start in range(0, len(gold_ids), 500):
        chunk = gold_ids[start : start + 500]
        labels.extend(
            session.exec(
                select(Label)
                .where(
                    Label.project_id == project_id,
                    col(Label.rollout_id).in_(chunk),
                    col(Label.pair_id).is_(None),
                    Label.status == LabelStatus.submitted,
                    col(Label.rubric_version_id).in_(same_rubric),
                )
                .order_by(col(Label.rollout_id), col(Label.id))
            )
        )
    verdicts = reward_service.first_verdicts(
        session, run_id, sorted({label.rollout_id for label in labels})
    )
    pairs = []
    unjudged = 0
    for label in labels:
        verdict = verdicts.get(label.rollout_id)
        if verdict is None:
            unjudged += 1
            continue
        ok = verdict.parse_status not in reward_outcomes.ERROR_STATUSES
        pairs.append(
            gate_rules.GatePair(
                rollout_id=label.rollout_id,
                label_values=dict(label.values or {}),
                verdict_ok=ok and verdict.normalized is not None,
                verdict_normalized=verdict.normalized,
                verdict_raw=dict((verdict.scores or {}).get("raw") or {}),
            )
        )
    counts = {"gold_items": len(gold_ids), "labels": len(labels), "unjudged_labels": unjudged}
    return pairs, counts


@dataclass
class GateCheck:
    """The agreement figures and gate for an export, before anything is stored."""

    summary: dict[str, Any]
    gate: dict[str, Any]
    probes: dict[str, Any]


def check_gate(
    session: Session,
    project: Project,
    *,
    rubric_version_id: int,
    judge_config_id: int,
    run_id: int | None,
) -> GateCheck:
    """Agreement on the gold test split and the gate result for these choices (read only)."""
    project_id = project.id or 0
    version, rubric = _version(session, project_id, rubric_version_id)
    judge = _judge(session, project_id, judge_config_id)
    config = reward_service.current_config(session, project_id).model.as_dict()
    gate_cfg = config["export_gate"]
    definition = rubric_service.version_definition(version).model_dump(mode="json")
    if run_id is None:
        pairs: list[gate_rules.GatePair] = []
        counts = {"gold_items": 0, "labels": 0, "unjudged_labels": 0}
    else:
        run = reward_service.get_run(session, project_id, run_id)
        if run.rubric_version_id != version.id:
            raise InvalidInput(
                f"Judge run #{run.id} judged another rubric version; choose a run of the "
                "version you export, so the figures describe what you ship."
            )
        if run.judge_config_id != judge_config_id:
            raise InvalidInput(
                f"Judge run #{run.id} used another judge configuration; choose a run of the "
                "judge you export."
            )
        pairs, counts = gold_test_pairs(session, project_id, version, run_id)
    summary = gate_rules.agreement_summary(definition, pairs, float(gate_cfg["pass_threshold"]))
    summary = {"run_id": run_id, "split": GOLD_SPLIT, **counts, **summary}
    # Probes: results count only for this exact rubric version, judge and reward configuration.
    probe_check = probe_gate.gate_check(
        session, project, version=version, rubric=rubric, judge=judge, reward=config
    )
    gate = gate_rules.with_probe_check(gate_rules.evaluate_gate(gate_cfg, summary), probe_check)
    gate["warnings"] = reward_outcomes.inapplicable_warnings(
        reward_service.applicability(config, project, _gold_test_rollouts(session, project_id))
    )
    return GateCheck(
        summary=summary, gate=gate, probes=probe_gate.manifest_entry(session, probe_check)
    )


def _gold_test_rollouts(session: Session, project_id: int, limit: int = 5_000) -> list[Rollout]:
    """The rollouts of the gold test split (the gate's selection), for the applicability check."""
    query = (
        select(Rollout)
        .join(GoldItem, col(GoldItem.rollout_id) == col(Rollout.id))
        .where(GoldItem.project_id == project_id, GoldItem.split == GOLD_SPLIT)
        .order_by(col(Rollout.id))
        .limit(limit)
    )
    return list(session.exec(query))


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _next_number(session: Session, project_id: int) -> int:
    current = session.exec(
        select(func.max(ExportBundle.number)).where(ExportBundle.project_id == project_id)
    ).one()
    return int(current or 0) + 1


def create_bundle(
    session: Session,
    project: Project,
    *,
    actor: User,
    can_override: bool,
    rubric_version_id: int,
    judge_config_id: int,
    run_id: int | None = None,
    override_reason: str | None = None,
) -> ExportBundle:
    """Freeze an export. A failing gate blocks it (409) unless `override_reason` is given by
    someone who may override; the reason goes into the manifest and the audit log."""
    project_id = project.id or 0
    version, rubric = _version(session, project_id, rubric_version_id)
    judge = _judge(session, project_id, judge_config_id)
    state = reward_service.current_config(session, project_id)
    reward = state.model.as_dict()
    check = check_gate(
        session,
        project,
        rubric_version_id=rubric_version_id,
        judge_config_id=judge_config_id,
        run_id=run_id,
    )
    reason = (override_reason or "").strip()
    override = None
    if not check.gate["passed"]:
        failed = [c for c in check.gate["checks"] if not c["passed"]]
        problems = [{"field": c["name"], "message": c["reason"]} for c in failed]
        if not reason:
            raise ExportGateBlocked(
                "The export gate blocks this export. Improve the judge, or ask a project admin "
                "to override with a reason. What the gate found:",
                details=problems,
            )
        if not can_override:
            raise PermissionDenied("Only a project admin may override the export gate.")
        if len(reason) < MIN_OVERRIDE_REASON:
            raise InvalidInput(
                f"Say why the gate is overridden (at least {MIN_OVERRIDE_REASON} characters)."
            )
        override = {"by": actor.email, "reason": reason, "at": _iso(utcnow())}

    spec = build_spec(
        BundleInputs(
            project_output_schema=project.output_schema,
            rubric_name=rubric.name,
            rubric_version=version.number,
            rubric_version_hash=version.content_hash,
            definition=version.definition,
            answer_schema=version.output_schema,
            judge=judge_settings(judge),
            reward=reward,
            document_location=project_service.document_location(project).as_spec(),
        )
    )
    approvals = rubric_service.approvals_for(session, [version.id or 0])[version.id or 0]
    try:
        filename, text = rubric_files.export_text(
            session, rubric, fmt="yaml", version=version.number
        )
        files = {"rubric": {"filename": filename, "format": "yaml", "text": text}}
    except DomainError:
        files = {}
    now = utcnow()
    for _attempt in range(3):
        number = _next_number(session, project_id)
        manifest = {
            "number": number,
            "created_at": _iso(now),
            "created_by": actor.email,
            "rubric": {
                "id": rubric.id,
                "name": rubric.name,
                "version": version.number,
                "version_id": version.id,
                "content_hash": version.content_hash,
                "change_note": version.change_note,
                "published_by": version.created_by_label,
                "published_at": _iso(version.created_at),
                "approvals": [
                    {
                        "by": a.user_label,
                        "at": _iso(a.approved_at),
                        "comment": a.comment,
                        "is_publisher": a.user_id is not None
                        and a.user_id == version.created_by_id,
                    }
                    for a in approvals
                ],
                # True when the project let the publisher be the only approver.
                "single_approver_allowed": project_service.single_approver_allowed(project),
            },
            "judge_config": {"id": judge.id, "name": judge.name},
            "reward_config": {
                "id": state.row.id if state.row else None,
                "revision": state.revision,
            },
            "agreement": check.summary,
            "gate": check.gate,
            "probes": check.probes,
            "override": override,
        }
        content = build_content(spec, manifest, files)
        bundle = ExportBundle(
            project_id=project_id,
            number=number,
            rubric_version_id=version.id or 0,
            judge_config_id=judge.id,
            reward_config_id=state.row.id if state.row else None,
            content=content,
            content_hash=content["content_hash"],
            gate_passed=bool(check.gate["passed"]),
            override_reason=reason if override else None,
            created_by_id=actor.id,
            created_at=now,
        )
        session.add(bundle)
        try:
            session.flush()
        except IntegrityError:
            # Another export took this number meanwhile (nothing else is written yet): retry.
            session.rollback()
            continue
        break
    else:
        raise DomainError("Could not allocate an export number; try again.")
    details = {
        "number": number,
        "content_hash": bundle.content_hash,
        "rubric_version_id": version.id,
        "judge_config_id": judge.id,
        "reward_config_revision": state.revision,
        "run_id": run_id,
        "gate_passed": bundle.gate_passed,
        "override_reason": bundle.override_reason,
    }
    audit_service.record(
        session,
        actor=actor,
        action="export.create",
        object_type="export_bundle",
        object_id=bundle.id,
        project_id=project_id,
        summary=f"export #{number} of {rubric.name} v{version.number} "
        f"(sha256 {bundle.content_hash[:12]})",
        details=details,
    )
    if override:
        audit_service.record(
            session,
            actor=actor,
            action="export.gate_override",
            object_type="export_bundle",
            object_id=bundle.id,
            project_id=project_id,
            summary=f"overrode the export gate for export #{number}: {reason[:300]}",
            details={"reason": reason, "gate": check.gate},
        )
    session.commit()
    return bundle


def target_names() -> dict[str, str]:
    return {name: label for name, (label, _fn) in TARGETS.items()}


def target_file(
    bundle: ExportBundle, target: str, options: TargetOptions | None = None
) -> TargetFile:
    """The artefact of `target` generated from a stored bundle."""
    if target not in TARGETS:
        raise NotFound(f"Unknown export target “{target}”; choose one of: {', '.join(TARGETS)}.")
    try:
        return render_target(bundle.content, target, options)
    except ValueError as exc:
        raise InvalidInput(f"Cannot generate {target}: {exc}") from None
