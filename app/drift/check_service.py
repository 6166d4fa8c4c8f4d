"""Judge drift check: re-run the locked gold test split with an export bundle's exact rubric
version and judge settings (a normal durable judge run, done by the workers), then compare the
agreement with what the bundle's manifest recorded at export time and list the items whose
verdict flipped since the export's own run.

Same items, same labels, same judge settings: a change means the judge itself moved (a model
update behind the same id, a provider change, sampling noise); the figures say how much.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, func, select

from app.agreement import service as agreement_service
from app.audit import service as audit_service
from app.auth.models import User
from app.core.errors import InvalidInput, NotFound
from app.drift.audit_models import JudgeDriftCheck
from app.exports import gate as gate_rules
from app.exports import service as export_service
from app.exports.models import ExportBundle
from app.judging import launch as judging_launch
from app.judging.models import JudgeRun
from app.judging.schemas import RunCreate, SelectionInput
from app.judging.status import FINAL_STATUSES
from app.labels.models import GoldItem
from app.projects.models import Project
from app.rubrics import service as rubric_service
from app.rubrics.models import RubricVersion

GOLD_SPLIT = "test"
# Judge settings a bundle pins: top-level snapshot keys and the snapshot's `params` keys.
_TOP = ("provider", "model_id", "base_url", "api_key_env", "region")
_CALL = ("concurrency", "timeout_s", "max_attempts")
_PARAMS = ("temperature", "top_p", "max_tokens", "base_delay_s", "max_delay_s", "structured_output")
# The figures compared (figure_values keys of the manifest's agreement summary).
FIGURES = (
    ("agreement", "Agreement"),
    ("kappa", "Cohen's kappa"),
    ("true_positive_rate", "True-positive rate (catches failures)"),
    ("true_negative_rate", "True-negative rate"),
)


def snapshot_overrides(spec_judge: dict[str, Any]) -> dict[str, Any]:
    """A bundle's judge settings in the shape of a judge run's snapshot."""
    overrides: dict[str, Any] = {k: spec_judge.get(k) for k in _TOP}
    overrides |= {k: spec_judge[k] for k in _CALL if spec_judge.get(k) is not None}
    overrides["params"] = {k: spec_judge.get(k) for k in _PARAMS if k in spec_judge}
    return overrides


def start_check(
    session: Session,
    project: Project,
    bundle: ExportBundle,
    *,
    actor: User | None,
    training_run_id: int | None = None,
) -> JudgeDriftCheck:
    """Queue the gold test re-run for the bundle and record the check (one commit)."""
    if bundle.judge_config_id is None:
        raise InvalidInput("This bundle names no judge configuration: nothing to re-run.")
    gold = session.exec(
        select(func.count())
        .select_from(GoldItem)
        .where(GoldItem.project_id == project.id, GoldItem.split == GOLD_SPLIT)
    ).one()
    if not gold:
        raise InvalidInput(
            "The project has no locked gold test items: a drift check re-judges them, so add "
            "labelled items to the gold test split first."
        )
    data = RunCreate(
        rubric_version_id=bundle.rubric_version_id,
        judge_config_ids=[bundle.judge_config_id],
        selection=SelectionInput(source="gold", gold_split=GOLD_SPLIT),
    )
    spec_judge = dict((bundle.content.get("spec") or {}).get("judge") or {})
    (run,) = judging_launch.create_runs(
        session,
        project,
        actor=actor,
        data=data,
        snapshot_overrides=snapshot_overrides(spec_judge),
        commit=False,
    )
    check = JudgeDriftCheck(
        project_id=project.id or 0,
        export_bundle_id=bundle.id or 0,
        run_id=run.id or 0,
        training_run_id=training_run_id,
        created_by_id=actor.id if actor else None,
    )
    session.add(check)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="judge_drift_check.start",
        object_type="judge_drift_check",
        object_id=check.id,
        project_id=project.id,
        summary=f"started a judge drift check of export #{bundle.number} (judge run #{run.id})",
        details={"bundle_id": bundle.id, "run_id": run.id},
    )
    session.commit()
    return check


def get_check(session: Session, project_id: int, check_id: int) -> JudgeDriftCheck:
    check = session.get(JudgeDriftCheck, check_id)
    if check is None or check.project_id != project_id:
        raise NotFound(f"No judge drift check with id {check_id} in this project.")
    return check


def list_checks(session: Session, project_id: int, bundle_id: int | None = None) -> list[Any]:
    query = select(JudgeDriftCheck).where(JudgeDriftCheck.project_id == project_id)
    if bundle_id is not None:
        query = query.where(JudgeDriftCheck.export_bundle_id == bundle_id)
    return list(session.exec(query.order_by(col(JudgeDriftCheck.id).desc()).limit(100)))


@dataclass
class FigureRow:
    key: str
    name: str
    at_export: float | None
    now: float | None

    @property
    def change(self) -> float | None:
        if self.at_export is None or self.now is None:
            return None
        return self.now - self.at_export


@dataclass
class FlippedItem:
    rollout_id: int
    external_id: str
    criterion: str
    at_export: str
    now: str
    experts: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class CheckReport:
    check: JudgeDriftCheck
    bundle: ExportBundle
    run: JudgeRun
    finished: bool
    figures: list[FigureRow]
    n_at_export: int | None
    n_now: int | None
    export_run_id: int | None
    flips: list[FlippedItem]
    note: str | None = None


def _figures(summary: dict[str, Any] | None) -> dict[str, float | None]:
    overall = (summary or {}).get("overall") or {}
    result: dict[str, float | None] = {}
    for key, _name in FIGURES:
        value = overall.get(key)
        if isinstance(value, dict):  # figure_values may nest a proportion's value
            value = value.get("value")
        result[key] = value if isinstance(value, int | float) else None
    return result


def report(session: Session, check: JudgeDriftCheck, viewer: User) -> CheckReport:
    """The check's run status and, once it is done, the comparison with the export."""
    bundle = session.get(ExportBundle, check.export_bundle_id)
    run = session.get(JudgeRun, check.run_id)
    if bundle is None or run is None:  # pragma: no cover - both cascade to the check
        raise NotFound("The check's bundle or judge run no longer exists.")
    manifest = (bundle.content or {}).get("manifest") or {}
    recorded = manifest.get("agreement") or {}
    before = _figures(recorded)
    finished = run.status in FINAL_STATUSES
    now_summary: dict[str, Any] | None = None
    flips: list[FlippedItem] = []
    note = None
    export_run_id = recorded.get("run_id")
    if finished:
        version = session.get(RubricVersion, bundle.rubric_version_id)
        assert version is not None
        pairs, _counts = export_service.gold_test_pairs(
            session, bundle.project_id, version, run.id or 0
        )
        reward = ((bundle.content or {}).get("spec") or {}).get("reward") or {}
        threshold = float((reward.get("export_gate") or {}).get("pass_threshold", 0.5))
        definition = rubric_service.version_definition(version).model_dump(mode="json")
        now_summary = gate_rules.agreement_summary(definition, pairs, threshold)
        old_run = session.get(JudgeRun, export_run_id) if export_run_id else None
        if old_run is None:
            note = "The export recorded no judge run, so flipped items cannot be listed."
        else:
            comparison = agreement_service.compare_runs(
                session, old_run, run, scope="gold_test", viewer=viewer
            )
            for criterion in comparison.criteria:
                for flip in criterion.flips:
                    flips.append(
                        FlippedItem(
                            rollout_id=flip.rollout_id,
                            external_id=flip.external_id,
                            criterion=flip.criterion_name,
                            at_export=flip.old,
                            now=flip.new,
                            experts=list(flip.experts),
                        )
                    )
            if comparison.hidden:
                note = f"{comparison.hidden} flipped items are hidden while you label them blind."
    after = _figures(now_summary)
    figures = [FigureRow(key, name, before.get(key), after.get(key)) for key, name in FIGURES]
    return CheckReport(
        check=check,
        bundle=bundle,
        run=run,
        finished=finished,
        figures=figures,
        n_at_export=recorded.get("n"),
        n_now=(now_summary or {}).get("n"),
        export_run_id=export_run_id,
        flips=flips,
        note=note,
    )
