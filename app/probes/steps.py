"""The probe worker's steps: prepare a run (its rewrites and their judge run), then finish it with
its report. Called by app.probes.jobs, never inside a request; each step commits once."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from app.core.clock import utcnow
from app.judging import service as judging_service
from app.judging.models import JudgeConfig, JudgeRun, Verdict
from app.probes import pairs as probe_pairs
from app.probes import report as probe_report
from app.probes.models import ProbeItem, ProbeRun, ProbeRunStatus
from app.probes.rewrites import (
    DEFAULT_REPEATS,
    Criterion,
    CustomKind,
    CustomProbe,
    ProbeError,
    ProbeInput,
    Variant,
    apply_custom,
    apply_probe,
)
from app.probes.service import SOURCE_PREFIX, is_pairwise
from app.projects import service as project_service
from app.projects.models import Project
from app.rewards import outcomes as reward_outcomes
from app.rewards import service as reward_service
from app.rollouts.models import Rollout
from app.rubrics import service as rubric_service
from app.rubrics.definition import RubricDefinition
from app.rubrics.models import RubricVersion

EXAMPLES_PER_PROBE = probe_report.EXAMPLES_PER_PROBE
EXAMPLE_CHARS = probe_report.EXAMPLE_CHARS
DONE_JUDGE_STATUSES = ("completed", "failed", "cancelled")
SINGLE_ANSWER_ONLY = "a single-answer rubric has no pair to swap"
_SLUG = re.compile(r"[^a-z0-9]+")

# ---- the worker's steps -----------------------------------------------------------------------


def _probe_input(definition: RubricDefinition, rollout: Rollout) -> ProbeInput:
    criteria = []
    for c in definition.criteria:
        top = c.levels[-1].description if c.levels else c.description
        criteria.append(Criterion(c.name, c.description, top or c.description))
    references = tuple(
        str(ref.get("text") or ref.get("content") or "")
        for ref in (rollout.reference_documents or [])
        if isinstance(ref, dict)
    )
    return ProbeInput(
        response=rollout.response or "",
        item_field=definition.item_field,
        target_document=rollout.target_document,
        references=references,
        criteria=tuple(criteria),
    )


def _variants(run: ProbeRun, probe_input: ProbeInput) -> list[Variant]:
    variants: list[Variant] = []
    for name in run.probes:
        variants.extend(apply_probe(name, probe_input, run.seed))
    for item in run.custom:
        probe = CustomProbe(
            item["name"],
            CustomKind(item["kind"]),
            item.get("pattern", ""),
            item.get("replacement", ""),
            item.get("template", ""),
        )
        variants.extend(apply_custom(probe, probe_input, run.seed))
    return variants


def _slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")[:30] or "v"


def prepare_run(session: Session, run_id: int) -> bool:
    """Make the rewrites of a queued run as rollouts of their own, and queue one judge run over
    the originals and the rewrites. Returns False when another worker got there first."""
    run = session.get(ProbeRun, run_id)
    if run is None or run.status != ProbeRunStatus.QUEUED.value:
        return False
    project = session.get(Project, run.project_id)
    version = session.get(RubricVersion, run.rubric_version_id)
    judge = session.get(JudgeConfig, run.judge_config_id) if run.judge_config_id else None
    if project is None or version is None or judge is None:
        return _fail(session, run, "its project, rubric version or judge configuration is gone")
    if is_pairwise(run):
        return _prepare_pairs(session, run, project, version, judge)
    definition = rubric_service.version_definition(version)
    originals: list[Rollout] = []
    ids = [int(i) for i in run.selection.get("rollout_ids") or []]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        originals.extend(session.exec(select(Rollout).where(col(Rollout.id).in_(chunk))))
    originals.sort(key=lambda r: r.id or 0)
    made = 0
    try:
        for original in originals:
            for number, variant in enumerate(_variants(run, _probe_input(definition, original))):
                rewritten = _rewritten(run, original, variant, number)
                session.add(rewritten)
                session.flush()
                session.add(
                    ProbeItem(
                        probe_run_id=run.id or 0,
                        probe=variant.probe,
                        variant=variant.variant,
                        original_rollout_id=original.id or 0,
                        rollout_id=rewritten.id or 0,
                        note=variant.note[:500],
                    )
                )
                made += 1
    except ProbeError as exc:
        session.rollback()
        run = session.get(ProbeRun, run_id)
        assert run is not None
        return _fail(session, run, f"a probe failed: {exc}")
    rollout_ids = [r.id or 0 for r in originals]
    rollout_ids += list(
        session.exec(select(ProbeItem.rollout_id).where(ProbeItem.probe_run_id == run.id))
    )
    judge_run = judging_service.queue_run_for_rollouts(
        session,
        project,
        actor=None,
        version=version,
        config=judge,
        rollout_ids=rollout_ids,
        selection={"source": "probes", "probe_run_id": run.id},
    )
    return _claim(session, run, judge_run, made)


def _prepare_pairs(
    session: Session,
    run: ProbeRun,
    project: Project,
    version: RubricVersion,
    judge: JudgeConfig,
) -> bool:
    """A preference rubric's probes need no rewrite: the pairs are judged in both orders (the
    position probe's swap), and again when self-consistency is asked for."""
    repeats = 1 + DEFAULT_REPEATS if probe_report.SELF_CONSISTENCY in run.probes else 1
    judge_run = judging_service.queue_run_for_pairs(
        session,
        project,
        actor=None,
        version=version,
        config=judge,
        pair_ids=[int(i) for i in run.selection.get("pair_ids") or []],
        selection={"source": "probes", "probe_run_id": run.id},
        repeats=repeats,
    )
    return _claim(session, run, judge_run, judge_run.items_total)


def _claim(session: Session, run: ProbeRun, judge_run: JudgeRun, made: int) -> bool:
    claimed = session.execute(
        update(ProbeRun)
        .where(col(ProbeRun.id) == run.id, col(ProbeRun.status) == ProbeRunStatus.QUEUED.value)
        .values(status=ProbeRunStatus.JUDGING.value, judge_run_id=judge_run.id, items_total=made)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        return False
    session.commit()
    return True


def _rewritten(run: ProbeRun, original: Rollout, variant: Variant, number: int) -> Rollout:
    external = f"probe-{run.id}-{original.id}-{number}-{_slug(variant.probe)}"
    if variant.variant:
        external += f"-{_slug(variant.variant)}"
    return Rollout(
        project_id=original.project_id,
        external_id=external[:200],
        content_hash=hashlib.sha256(variant.response.encode()).hexdigest(),
        input_messages=list(original.input_messages or []),
        target_document=original.target_document,
        reference_documents=list(original.reference_documents or []),
        reference_answer=original.reference_answer,
        response=variant.response,
        model=original.model,
        checkpoint=original.checkpoint,
        step=original.step,
        group_key=None,  # a rewrite is not a generation of the policy's group
        source_file=f"{SOURCE_PREFIX}{run.id}",
        metadata_={
            "probe": variant.probe,
            "variant": variant.variant,
            "original_rollout_id": original.id,
            "probe_run_id": run.id,
            "seed": run.seed,
        },
    )


def _fail(session: Session, run: ProbeRun, message: str) -> bool:
    run.status = ProbeRunStatus.FAILED.value
    run.message = message[:2000]
    run.finished_at = utcnow()
    session.commit()
    return True


def finish_run(session: Session, run_id: int) -> bool:
    """Build the report of a run whose judge run has finished. True when it changed the run."""
    run = session.get(ProbeRun, run_id)
    if run is None or run.status != ProbeRunStatus.JUDGING.value:
        return False
    judge_run = session.get(JudgeRun, run.judge_run_id) if run.judge_run_id else None
    if judge_run is None:
        return _fail(session, run, "its judge run was deleted")
    if judge_run.status not in DONE_JUDGE_STATUSES:
        return False
    if judge_run.status != "completed":
        if judge_run.status == "cancelled":
            run.status = ProbeRunStatus.CANCELLED.value
            run.finished_at = utcnow()
            session.commit()
            return True
        return _fail(session, run, f"its judge run #{judge_run.id} failed: {judge_run.message}")
    project = session.get(Project, run.project_id)
    version = session.get(RubricVersion, run.rubric_version_id)
    assert project is not None and version is not None
    definition = rubric_service.version_definition(version)
    if is_pairwise(run):
        run.report = probe_pairs.build_pair_report(session, run)
    else:
        run.report = build_report(session, run, project, definition)
    run.status = ProbeRunStatus.COMPLETED.value
    run.finished_at = utcnow()
    session.commit()
    return True


def _load_rollouts(session: Session, ids: list[int]) -> dict[int, Rollout]:
    found: dict[int, Rollout] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for rollout in session.exec(select(Rollout).where(col(Rollout.id).in_(chunk))):
            found[rollout.id or 0] = rollout
    return found


def _side(rollout: Rollout, outcome: dict[str, Any], verdict: Verdict | None) -> dict[str, Any]:
    return {
        "rollout_id": rollout.id,
        "response": (rollout.response or "")[:EXAMPLE_CHARS],
        "truncated": len(rollout.response or "") > EXAMPLE_CHARS,
        "reward": outcome["reward"],
        "judge_status": outcome.get("judge_status"),
        "gated_by": outcome.get("gated_by"),
        "criteria": outcome.get("criteria") or {},
        "judge_error": (verdict.error if verdict is not None else None),
    }


def build_report(
    session: Session, run: ProbeRun, project: Project, definition: RubricDefinition
) -> dict[str, Any]:
    """Score originals and rewrites with the stored reward configuration and the run's
    verdicts (the same composite the export ships), then summarise per probe."""
    items = list(
        session.exec(
            select(ProbeItem).where(ProbeItem.probe_run_id == run.id).order_by(col(ProbeItem.id))
        )
    )
    original_ids = sorted({i.original_rollout_id for i in items})
    rollouts = _load_rollouts(session, original_ids + [i.rollout_id for i in items])
    verdicts = reward_service.first_verdicts(session, run.judge_run_id or 0, list(rollouts))
    config = run.reward_config
    location = project_service.document_location_of(project)
    outcomes: dict[int, dict[str, Any]] = {}
    for rollout_id, rollout in rollouts.items():
        verdict = verdicts.get(rollout_id)
        outcome = reward_outcomes.outcome_for(
            config, rollout, verdict, project.output_schema, location
        )
        if outcome is None:  # the judge run has no verdict: count it as the judge failing
            outcome = {
                "reward": float((config.get("judge") or {}).get("neutral_reward", 0.5)),
                "judge_status": "error",
                "gated_by": None,
                "criteria": {},
            }
        outcomes[rollout_id] = outcome
    observations: list[probe_report.Observation] = []
    examples: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for item in items:
        before = outcomes.get(item.original_rollout_id)
        after = outcomes.get(item.rollout_id)
        if before is None or after is None:
            continue
        observations.append(
            probe_report.Observation(
                probe=item.probe,
                variant=item.variant,
                original_id=item.original_rollout_id,
                original_reward=float(before["reward"]),
                probe_reward=float(after["reward"]),
                original_criteria=dict(before.get("criteria") or {}),
                probe_criteria=dict(after.get("criteria") or {}),
            )
        )
        uplift = float(after["reward"]) - float(before["reward"])
        examples.setdefault(item.probe, []).append(
            (
                uplift,
                {
                    "variant": item.variant,
                    "note": item.note,
                    "uplift": uplift,
                    "original": _side(
                        rollouts[item.original_rollout_id],
                        before,
                        verdicts.get(item.original_rollout_id),
                    ),
                    "probe": _side(rollouts[item.rollout_id], after, verdicts.get(item.rollout_id)),
                },
            )
        )
    names = [*run.probes, *(c["name"] for c in run.custom)]
    not_applicable = {
        "wrong_source": "no rollout has reference material to quote instead",
        "partial": "no response has more than one part to drop",
        "duplication": "no response has an item to repeat",
        probe_report.POSITION: SINGLE_ANSWER_ONLY,
    }
    report = probe_report.build_report(
        observations,
        run.thresholds,
        run.seed,
        names,
        {c.key: c.name for c in definition.criteria},
        not_applicable,
    )
    for row in report["probes"]:
        ranked = sorted(examples.get(row["name"], []), key=lambda pair: -pair[0])
        row["examples"] = [example for _uplift, example in ranked[:EXAMPLES_PER_PROBE]]
    report["originals"] = len(original_ids)
    report["judge_errors"] = sum(1 for o in outcomes.values() if o.get("judge_status") == "error")
    return report


def runs_to_prepare(session: Session, limit: int = 5) -> list[int]:
    query = select(ProbeRun.id).where(ProbeRun.status == ProbeRunStatus.QUEUED.value)
    return [int(i or 0) for i in session.exec(query.order_by(col(ProbeRun.id)).limit(limit))]


def runs_to_finish(session: Session, limit: int = 20) -> list[int]:
    query = (
        select(ProbeRun.id)
        .join(JudgeRun, col(JudgeRun.id) == col(ProbeRun.judge_run_id))
        .where(
            ProbeRun.status == ProbeRunStatus.JUDGING.value,
            col(JudgeRun.status).in_(DONE_JUDGE_STATUSES),
        )
    )
    return [int(i or 0) for i in session.exec(query.order_by(col(ProbeRun.id)).limit(limit))]
