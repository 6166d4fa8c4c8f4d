"""Training runs and their drift samples: create runs, start imports (file, upload, S3 prefix),
map time to steps, read the dashboard series (cached per data version) and the signals.
Public functions that change data commit once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import defer
from sqlmodel import Session, col

from app.audit import service as audit_service
from app.auth.models import User
from app.core import stored
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.memo import VersionedCache
from app.core.stored import FigureKind
from app.drift import audit_service as drift_audits
from app.drift import series as series_sql
from app.drift.buckets import BucketPlan, plan_buckets
from app.drift.models import DriftSample, TrainingRun
from app.drift.records import StepMap
from app.drift.signal_types import AgreementBucket, BucketStats, DriftThresholds, SignalResult
from app.drift.signals import compute_signals
from app.drift.step_log import read_step_map
from app.exports.models import ExportBundle
from app.projects.models import Project
from app.rollouts import service as rollout_service
from app.rollouts.jobs import DRIFT_FORMAT
from app.rollouts.models import Rollout, RolloutImport

MAX_NAME = 200
SERIES_CACHE_VERSION = 1


# ---------------------------------------------------------------------------- training runs


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Give the training run a name (the `training_run` of its records).")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"The name is {len(name)} characters long; at most {MAX_NAME}.")
    return name


def create_training_run(
    session: Session,
    project: Project,
    actor: User | None,
    *,
    name: str,
    export_bundle_id: int | None = None,
    base_model: str | None = None,
    notes: str = "",
    synthetic: bool = False,
) -> TrainingRun:
    name = _clean_name(name)
    if find_training_run(session, project.id or 0, name) is not None:
        raise Conflict(f"This project already has a training run named '{name}'.")
    if export_bundle_id is not None:
        bundle = session.get(ExportBundle, export_bundle_id)
        if bundle is None or bundle.project_id != project.id:
            raise InvalidInput("No such export bundle in this project.")
    run = TrainingRun(
        project_id=project.id or 0,
        name=name,
        export_bundle_id=export_bundle_id,
        base_model=(base_model or "").strip()[:300] or None,
        notes=notes.strip(),
        synthetic=synthetic,
        created_by_id=actor.id if actor else None,
    )
    session.add(run)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="drift.training_run.create",
        object_type="training_run",
        object_id=run.id,
        project_id=project.id,
        summary=f"created the training run {name}",
    )
    session.commit()
    return run


def find_training_run(session: Session, project_id: int, name: str) -> TrainingRun | None:
    return session.scalars(
        select(TrainingRun).where(
            col(TrainingRun.project_id) == project_id, col(TrainingRun.name) == name
        )
    ).first()


def get_training_run(session: Session, project_id: int, run_id: int) -> TrainingRun:
    run = session.get(TrainingRun, run_id)
    if run is None or run.project_id != project_id:
        raise NotFound("No such training run in this project.")
    return run


def list_training_runs(session: Session, project_id: int) -> list[TrainingRun]:
    """The project's training runs, newest first; their large columns (the cached series, the
    step map) are loaded only if read."""
    query = (
        select(TrainingRun)
        .options(defer(TrainingRun.series_cache), defer(TrainingRun.step_map))  # type: ignore[arg-type]
        .where(col(TrainingRun.project_id) == project_id)
        .order_by(col(TrainingRun.id).desc())
    )
    return list(session.scalars(query))


def unstepped_count(session: Session, run: TrainingRun) -> int:
    """Samples without a step (Nova records before a step/time log was given)."""
    query = select(func.count()).where(
        col(DriftSample.training_run_id) == run.id, col(DriftSample.step).is_(None)
    )
    return int(session.scalar(query) or 0)


# ---------------------------------------------------------------------------- imports


def create_drift_import(
    session: Session,
    settings: Settings,
    project: Project,
    run: TrainingRun,
    actor: User | None,
    *,
    filename: str,
    source: BinaryIO | None = None,
    path: Path | None = None,
    skip_invalid: bool = False,
    s3: dict[str, str] | None = None,
    claim_by: str | None = None,
) -> RolloutImport:
    """Record an import of drift samples and queue it for a worker.

    Give `source` (an upload, streamed to the upload folder), `path` (a local file, used in
    place) or `s3` ({"bucket", "prefix"}: the worker downloads every object under the prefix,
    gzip or not, into one file). With claim_by the job is leased to that worker (CLI).
    """
    filename = (Path(filename or "upload").name or "upload")[:500]
    keep_file = path is not None
    size = 0
    stored = ""
    if s3 is not None:
        bucket, prefix = (s3.get("bucket") or "").strip(), (s3.get("prefix") or "").strip()
        if not bucket:
            raise InvalidInput("Give the S3 bucket to import from.")
        s3 = {"bucket": bucket, "prefix": prefix}
        filename = f"s3://{bucket}/{prefix}"[:500]
    elif path is not None:
        if not path.is_file():
            raise InvalidInput(f"no such file: {path}")
        size = path.stat().st_size
        stored = str(path)
    elif source is not None:
        saved, size = rollout_service.save_upload(settings, source)
        stored = str(saved)
    else:
        raise InvalidInput("no file was sent")
    if size > settings.max_upload_bytes:
        raise InvalidInput("The file is larger than the upload limit.")
    job = RolloutImport(
        project_id=project.id or 0,
        created_by_id=actor.id if actor else None,
        filename=filename,
        stored_path=stored,
        size_bytes=size,
        format=DRIFT_FORMAT,
        options={"training_run_id": run.id, "keep_file": keep_file, "s3": s3},
        skip_invalid=skip_invalid,
        status=rollout_service.QUEUED,
    )
    if claim_by is not None:
        job.status = rollout_service.VALIDATING
        job.lease_owner = claim_by
        job.lease_expires_at = utcnow() + timedelta(seconds=settings.lease_seconds)
        job.attempts = 1
        job.started_at = utcnow()
    session.add(job)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="drift.import.create",
        object_type="rollout_import",
        object_id=job.id,
        project_id=project.id,
        summary=f"started importing drift samples from {filename} into {run.name}",
        details={"training_run_id": run.id, "skip_invalid": skip_invalid, "s3": s3},
    )
    session.commit()
    return job


def list_drift_imports(session: Session, run: TrainingRun, limit: int = 20) -> list[RolloutImport]:
    query = (
        select(RolloutImport)
        .where(
            col(RolloutImport.project_id) == run.project_id,
            col(RolloutImport.format) == DRIFT_FORMAT,
        )
        .order_by(col(RolloutImport.id).desc())
        .limit(limit * 5)
    )
    jobs = [j for j in session.scalars(query) if j.options.get("training_run_id") == run.id]
    return jobs[:limit]


def set_step_map(
    session: Session, run: TrainingRun, actor: User | None, csv_text: str
) -> tuple[StepMap, int]:
    """Store the training job's step/time log and give every sample without a recorded step
    the step running at its time. Returns the map and how many samples got a step."""
    try:
        mapping = read_step_map(csv_text)
    except ValueError as error:
        raise InvalidInput(str(error)) from None
    run.step_map = mapping.as_json()
    run_id = run.id or 0
    samples = DriftSample.__table__  # type: ignore[attr-defined]
    rollouts = Rollout.__table__  # type: ignore[attr-defined]
    c = samples.c
    mapped = 0
    unrecorded = and_(c.training_run_id == run_id, (c.step.is_(None)) | (c.step_mapped.is_(True)))
    # Before the first logged time there is no step.
    session.execute(
        update(samples)
        .where(unrecorded, c.recorded_at < mapping.times[0])
        .values(step=None, step_mapped=False)
    )
    for index, (moment, step) in enumerate(zip(mapping.times, mapping.steps, strict=True)):
        condition = and_(unrecorded, c.recorded_at >= moment)
        if index + 1 < len(mapping.times):
            condition = and_(condition, c.recorded_at < mapping.times[index + 1])
        result = session.execute(
            update(samples).where(condition).values(step=step, step_mapped=True)
        )
        mapped += int(result.rowcount or 0)  # type: ignore[attr-defined]
    # The rollouts made from the samples carry the same step.
    session.execute(
        update(rollouts)
        .where(
            rollouts.c.id == c.rollout_id,
            c.training_run_id == run_id,
            c.step_mapped.is_(True),
        )
        .values(step=c.step)
    )
    _refresh_run_counters(session, run)
    audit_service.record(
        session,
        actor=actor,
        action="drift.training_run.step_map",
        object_type="training_run",
        object_id=run.id,
        project_id=run.project_id,
        summary=f"mapped time to steps for {run.name} ({len(mapping.times)} log rows, "
        f"{mapped} samples placed)",
    )
    session.add(run)
    session.commit()
    series(session, run)  # recomputed now (the steps changed), not on the next page view
    return mapping, mapped


def _refresh_run_counters(session: Session, run: TrainingRun) -> None:
    row = session.execute(
        select(func.count(), func.min(DriftSample.step), func.max(DriftSample.step)).where(
            col(DriftSample.training_run_id) == run.id
        )
    ).one()
    run.sample_count, run.step_min, run.step_max = int(row[0]), row[1], row[2]
    run.data_version += 1
    run.updated_at = utcnow()


# ---------------------------------------------------------------------------- series


@dataclass(frozen=True)
class RunSeries:
    run: TrainingRun
    plan: BucketPlan | None
    buckets: list[dict[str, Any]]
    criteria: list[str]
    components: list[str]
    cached: bool


def series(session: Session, run: TrainingRun, *, target_buckets: int | None = None) -> RunSeries:
    """The dashboard's per-bucket figures; computed in SQL once per data version and kept."""
    session.refresh(run)
    plan = plan_buckets(run.step_min, run.step_max, target_buckets or 20)
    if plan is None:
        return RunSeries(run, None, [], [], [], cached=False)
    key = f"{SERIES_CACHE_VERSION}:{run.data_version}:{plan.key()}"
    cache = run.series_cache or {}
    if cache.get("key") == key:
        buckets = cache["buckets"]
        cached = True
    else:
        buckets = series_sql.compute_series(session, run.id or 0, plan)
        run.series_cache = {"key": key, "buckets": buckets}
        session.execute(
            update(TrainingRun.__table__)  # type: ignore[attr-defined]
            .where(TrainingRun.__table__.c.id == run.id)  # type: ignore[attr-defined]
            .values(series_cache=run.series_cache)
        )
        session.commit()
        cached = False
    criteria = sorted({name for b in buckets for name in b.get("criteria", {})})
    components = sorted({name for b in buckets for name in b.get("components", {})})
    return RunSeries(run, plan, buckets, criteria, components, cached)


# ---------------------------------------------------------------------------- signals


def thresholds(project: Project) -> DriftThresholds:
    return DriftThresholds.from_settings((project.settings or {}).get("drift"))


def stored_thresholds(project: Project) -> dict[str, Any]:
    """The thresholds the project changed (the others are at their defaults)."""
    return dict((project.settings or {}).get("drift") or {})


def save_thresholds(
    session: Session,
    project: Project,
    actor: User | None,
    values: dict[str, Any],
    *,
    strict: bool = False,
) -> DriftThresholds:
    """Store the project's signal thresholds (numbers checked against their defaults' ranges);
    a threshold not given goes back to its default.

    strict: refuse names that are not thresholds (the API and CLI; the form sends only those).
    """
    defaults = DriftThresholds().as_dict()
    unknown = sorted(name for name in values if name not in defaults)
    if strict and unknown:
        raise InvalidInput(
            f"Unknown threshold '{unknown[0][:60]}'; the thresholds are: {', '.join(defaults)}."
        )
    clean: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in defaults or raw in (None, ""):
            continue
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise InvalidInput(f"'{name}' must be a number, not '{str(raw)[:40]}'") from None
        if not (number > 0) or (name == "alpha" and number >= 0.5):
            raise InvalidInput(
                f"'{name}' must be above 0" + (" and below 0.5" if name == "alpha" else "")
            )
        clean[name] = int(number) if isinstance(defaults[name], int) else number
    project.settings = {**(project.settings or {}), "drift": clean}
    session.add(project)
    audit_service.record(
        session,
        actor=actor,
        action="drift.settings.update",
        object_type="project",
        object_id=project.id,
        project_id=project.id,
        summary="changed the drift signal thresholds",
        details=clean,
    )
    session.commit()
    return DriftThresholds.from_settings(clean)


# Signals of a run, per data version: its samples (data_version), the bucket plan, the project's
# thresholds and its labels (the audit labels' agreement). The dashboard, the overview and the
# API read them on every request; at a million samples with 20,000 labelled ones computing them
# takes about a second (mostly pairing audit labels with the judge's verdicts).
_SIGNALS: VersionedCache[list[SignalResult]] = VersionedCache(32)


def signals(
    session: Session,
    project: Project,
    run: TrainingRun,
    agreement: list[AgreementBucket] | None = None,
    data: RunSeries | None = None,
) -> list[SignalResult]:
    """The run's signals; ``data``: its series when the caller has read it already."""
    data = data or series(session, run)
    buckets = [BucketStats.from_series(b) for b in data.buckets]
    limits = thresholds(project)
    if agreement is not None:
        return compute_signals(buckets, limits, agreement)
    key = (
        str(session.get_bind().engine.url),
        run.id,
        str(run.created_at),
        run.data_version,
        data.plan.key() if data.plan else None,
        tuple(sorted(limits.as_dict().items())),
        drift_audits.labels_marker(session, project.id or 0),
    )

    def compute() -> list[SignalResult]:
        # reviewers' audit labels against the training-time judge
        return compute_signals(buckets, limits, drift_audits.agreement_buckets(session, run))

    return stored.remembered(
        session, _SIGNALS, FigureKind.DRIFT_SIGNALS, key, compute, training_run_id=run.id
    )


@dataclass(frozen=True)
class ExamplePair:
    late: DriftSample
    early: DriftSample | None


def signal_examples(
    session: Session, run: TrainingRun, result: SignalResult, limit: int = 3
) -> list[ExamplePair]:
    """Late samples that show the signal, each with an early sample of the same prompt (or
    group) when one exists."""
    if not result.fired or result.onset_step is None:
        return []
    s = DriftSample
    query = select(s).where(col(s.training_run_id) == run.id, col(s.step) >= result.onset_step)
    kind = result.kind.value
    if kind == "judge_addressed_text":
        query = query.where(col(s.judge_addressed).is_(True)).order_by(col(s.reward).desc())
    elif kind == "grounding_decay":
        query = query.where(col(s.quotes_ungrounded) > 0).order_by(
            col(s.quotes_ungrounded).desc(), col(s.reward).desc()
        )
    elif kind == "judge_failing":
        query = query.where(col(s.judge_status) == "error").order_by(col(s.step))
    elif kind == "length_hacking":
        query = query.order_by(col(s.response_chars).desc(), col(s.reward).desc())
    else:
        query = query.order_by(col(s.reward).desc())
    late = list(session.scalars(query.limit(limit)))
    pairs = []
    for sample in late:
        early = None
        if sample.prompt_key:
            early = session.scalars(
                select(s)
                .where(
                    col(s.training_run_id) == run.id,
                    col(s.prompt_key) == sample.prompt_key,
                    col(s.step) < result.onset_step,
                )
                .order_by(col(s.step))
                .limit(1)
            ).first()
        pairs.append(ExamplePair(sample, early))
    return pairs


def project_signal_summary(
    session: Session, project: Project
) -> list[tuple[TrainingRun, list[SignalResult]]]:
    """Fired signals of each training run with samples, for the project overview."""
    out = []
    for run in list_training_runs(session, project.id or 0)[:10]:
        if run.sample_count:
            out.append((run, [r for r in signals(session, project, run) if r.fired]))
    return out


def rollouts_of(session: Session, samples: list[DriftSample]) -> dict[int, Rollout]:
    ids = [s.rollout_id for s in samples if s.rollout_id]
    if not ids:
        return {}
    return {r.id or 0: r for r in session.scalars(select(Rollout).where(col(Rollout.id).in_(ids)))}


SERIES_COLUMNS = (
    "step_start",
    "step_end",
    "n",
    "reward_mean",
    "reward_p10",
    "reward_p50",
    "reward_p90",
    "length_mean",
    "length_p90",
    "reward_length_spearman",
    "judge_error_rate",
    "neutral_rate",
    "gate_rate",
    "judge_addressed_rate",
    "ungrounded_share",
    "zero_spread_share",
    "latency_mean_ms",
)


def series_rows(data: RunSeries) -> list[list[Any]]:
    """The series as a table: one row per bucket, criteria and components as extra columns."""
    header: list[Any] = list(SERIES_COLUMNS)
    header += [f"criterion:{name}" for name in data.criteria]
    header += [f"component_pass:{name}" for name in data.components]
    rows: list[list[Any]] = [header]
    for bucket in data.buckets:
        row = [bucket.get(name) for name in SERIES_COLUMNS]
        row += [(bucket["criteria"].get(name) or {}).get("mean") for name in data.criteria]
        row += [(bucket["components"].get(name) or {}).get("pass_rate") for name in data.components]
        rows.append(row)
    return rows
