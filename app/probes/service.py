"""Probe runs: choose the originals, start a run, make its rewrites and judge run (worker) and
build its report. The export gate's question is answered in app.probes.gate, a preference
rubric's report in app.probes.pairs.

Public functions that change data commit once; helpers only flush. The rewrites and the report
are made by the worker (app.probes.jobs), never inside a request.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import Conflict, InvalidInput, NotFound
from app.judging import configs as judging_configs
from app.judging import service as judging_service
from app.judging.models import JudgeConfig, JudgeRun, Verdict
from app.judging.schemas import SelectionInput
from app.judging.service import Subjects
from app.probes import pairs as probe_pairs
from app.probes import report as probe_report
from app.probes.models import ProbeItem, ProbeRun, ProbeRunStatus
from app.probes.rewrites import (
    DEFAULT_REPEATS,
    PAIR_PROBES,
    PROBES,
    Criterion,
    CustomKind,
    CustomProbe,
    ProbeError,
    ProbeInput,
    Variant,
    apply_custom,
    apply_probe,
    check_custom,
    default_probes,
)
from app.probes.schemas import ProbeRunCreate
from app.projects import service as project_service
from app.projects.models import Project
from app.rewards import service as reward_service
from app.rollouts.models import Rollout
from app.rubrics import service as rubric_service
from app.rubrics.definition import RubricDefinition
from app.rubrics.models import Rubric, RubricVersion

SOURCE_PREFIX = judging_service.PROBE_SOURCE_PREFIX
EXAMPLES_PER_PROBE = probe_report.EXAMPLES_PER_PROBE
MAX_ORIGINALS = 2000  # each original makes about a dozen rewrites, each a judge call
EXAMPLE_CHARS = probe_report.EXAMPLE_CHARS
DONE_JUDGE_STATUSES = ("completed", "failed", "cancelled")
SINGLE_ANSWER_ONLY = "a single-answer rubric has no pair to swap"
_SLUG = re.compile(r"[^a-z0-9]+")


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
        outcome = reward_service.outcome_for(
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
