"""Very large judge runs through Amazon Bedrock batch inference (Converse invocation type).

A batch run moves through `settings["batch_state"]`: (none) -> submitted -> ingested. Submitting
renders every unfinished item's prompt into JSONL files under the configuration's S3 prefix and
creates one model invocation job; polling reads the job status; when it ends, the output files
(found by listing the output prefix, never by guessing names) are joined on recordId into
verdicts. A worker holds a run-level lease while it does any of this.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Engine

from app.core.clock import utcnow
from app.core.jobs import WorkerContext
from app.judging import storage as judge_storage
from app.judging import verdicts
from app.judging.models import JudgeRun, JudgeWorkItem
from app.judging.status import WorkItemStatus
from app.labels.values import LabelStatus
from app.llm.base import JudgeCall, schema_instruction

log = logging.getLogger(__name__)

RUNNING_STATES = frozenset({"Submitted", "Validating", "Scheduled", "InProgress", "Stopping"})
DONE_STATES = frozenset({"Completed", "PartiallyCompleted"})
FAILED_STATES = frozenset({"Failed", "Stopped", "Expired"})
RECORDS_PER_FILE = 50_000
POLL_INTERVAL_S = 60.0
RUN_LEASE_S = 600.0
WRITE_CHUNK = 500

_runs = JudgeRun.__table__  # type: ignore[attr-defined]
_items = JudgeWorkItem.__table__  # type: ignore[attr-defined]


@dataclass
class BatchClients:
    bedrock: Any  # boto3 "bedrock" (control plane) client
    s3: Any


def default_clients(region: str | None) -> BatchClients:
    """Clients from the standard AWS credential chain (never stored credentials)."""
    import boto3

    return BatchClients(
        bedrock=boto3.client("bedrock", region_name=region),
        s3=boto3.client("s3", region_name=region),
    )


# Replaced in tests by a factory that returns stubbed clients.
CLIENT_FACTORY: Callable[[str | None], BatchClients] = default_clients


def record_id(item_id: int) -> str:
    """An 11-character alphanumeric record id that names the work item."""
    return f"R{item_id:010d}"


def parse_record_id(value: Any) -> int | None:
    if isinstance(value, str) and len(value) == 11 and value[0] == "R" and value[1:].isdigit():
        return int(value[1:])
    return None


def split_s3_uri(uri: str) -> tuple[str, str]:
    """("bucket", "prefix/") from s3://bucket/prefix (the prefix ends with / unless empty)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri}")
    bucket, _, prefix = uri[5:].partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def model_input(call: JudgeCall) -> dict[str, Any]:
    """The Converse request body of one record. Batch jobs do not take structured output, so
    the schema is stated in the system prompt and the reply parsed and validated afterwards."""
    system = call.system
    if call.output_schema is not None:
        system = f"{system}\n\n{schema_instruction(call.output_schema)}".strip()
    inference: dict[str, Any] = {"maxTokens": call.max_tokens}
    if call.temperature is not None:
        inference["temperature"] = call.temperature
    if call.top_p is not None:
        inference["topP"] = call.top_p
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": [{"text": call.user}]}],
        "inferenceConfig": inference,
    }
    if system:
        body["system"] = [{"text": system}]
    return body


def _set_state(engine: Engine, run_id: int, **values: Any) -> None:
    settings_update = values.pop("settings_update", None)
    with engine.begin() as conn:
        if settings_update:
            current = conn.execute(select(_runs.c.settings).where(_runs.c.id == run_id)).scalar()
            values["settings"] = {**(current or {}), **settings_update}
        conn.execute(update(_runs).where(_runs.c.id == run_id).values(**values))


def _unfinished(engine: Engine, run_id: int) -> list[tuple[int, int, int | None, int, str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(*judge_storage.CLAIMED_COLUMNS)
            .where(_items.c.run_id == run_id, _items.c.status != WorkItemStatus.DONE)
            .order_by(_items.c.id)
        ).all()
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


def submit(engine: Engine, run_id: int, clients: BatchClients) -> str | None:
    """Write the run's unfinished items as JSONL to S3 and create the invocation job.

    Returns the job ARN (None when nothing was left to submit and the run was completed)."""
    plan = judge_storage.load_plan(engine, run_id)
    if plan is None:
        raise RuntimeError(f"judge run {run_id} or its rubric version no longer exists")
    params = plan.snapshot.get("params") or {}
    bucket, prefix = split_s3_uri(str(params.get("batch_s3_uri") or ""))
    role_arn = str(params.get("batch_role_arn") or "")
    claimed = _unfinished(engine, run_id)
    prepared = judge_storage.prepare_items(
        engine, plan, claimed, judge_storage.PromptCache(), max_claims=10**9
    )
    unrenderable = [p for p in prepared if p.call is None]
    for chunk in _chunks(unrenderable, WRITE_CHUNK):
        judge_storage.write_verdicts(
            engine,
            plan.snapshot,
            [
                verdicts.verdict_row(plan, p, status="error", error=p.problem or "no prompt")
                for p in chunk
            ],
        )
    records = [p for p in prepared if p.call is not None]
    if not records:
        judge_storage.finalize_run(engine, run_id)
        return None
    token = uuid.uuid4().hex[:12]
    base = f"{prefix}rubric-studio/run-{run_id}/{token}/"
    input_prefix, output_prefix = f"{base}input/", f"{base}output/"
    for number, chunk in enumerate(_chunks(records, RECORDS_PER_FILE), start=1):
        body = io.BytesIO()
        for item in chunk:
            assert item.call is not None
            line = {"recordId": record_id(item.item_id), "modelInput": model_input(item.call)}
            body.write(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
        clients.s3.put_object(
            Bucket=bucket, Key=f"{input_prefix}part-{number:05d}.jsonl", Body=body.getvalue()
        )
    job = clients.bedrock.create_model_invocation_job(
        jobName=f"rubric-studio-run-{run_id}-{token}",
        roleArn=role_arn,
        modelId=plan.snapshot["model_id"],
        inputDataConfig={
            "s3InputDataConfig": {
                "s3Uri": f"s3://{bucket}/{input_prefix}",
                "s3InputFormat": "JSONL",
            }
        },
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{bucket}/{output_prefix}"}},
        modelInvocationType="Converse",
        timeoutDurationInHours=24,
        clientRequestToken=f"rs{run_id}x{token}",
    )
    job_arn = str(job["jobArn"])
    now = utcnow()
    _set_state(
        engine,
        run_id,
        status="running",
        started_at=now,
        rate_base_at=now,
        batch_job_arn=job_arn,
        next_poll_at=now + timedelta(seconds=POLL_INTERVAL_S),
        message=f"Batch job submitted with {len(records)} records.",
        settings_update={
            "batch_state": "submitted",
            "batch_output_uri": f"s3://{bucket}/{output_prefix}",
            "batch_records": len(records),
        },
    )
    return job_arn


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def poll(engine: Engine, run_id: int, clients: BatchClients) -> str:
    """Ask Bedrock for the job's status; ingest the output when it has ended. Returns it."""
    with engine.connect() as conn:
        run = conn.execute(select(_runs).where(_runs.c.id == run_id)).mappings().one()
    job = clients.bedrock.get_model_invocation_job(jobIdentifier=run["batch_job_arn"])
    status = str(job.get("status") or "Submitted")
    processed = job.get("processedRecordCount")
    total = job.get("totalRecordCount")
    progress = f" ({processed}/{total} records)" if processed is not None and total else ""
    if status in RUNNING_STATES:
        _set_state(
            engine,
            run_id,
            next_poll_at=utcnow() + timedelta(seconds=POLL_INTERVAL_S),
            message=f"Batch job {status}{progress}.",
        )
        return status
    settings = run["settings"] or {}
    if status in DONE_STATES or (status in FAILED_STATES and settings.get("batch_output_uri")):
        stored = ingest(engine, run_id, clients, str(settings["batch_output_uri"]), status)
        if status in FAILED_STATES and run["status"] != "cancelled":
            _set_state(
                engine,
                run_id,
                status="failed",
                finished_at=utcnow(),
                message=f"Batch job {status}: {job.get('message') or 'no reason given'}; "
                f"{stored} verdicts were read from its partial output. Resume to submit the rest.",
            )
        return status
    _set_state(engine, run_id, message=f"Batch job status {status}{progress}.")
    return status


def _reply_text(output: dict[str, Any]) -> str:
    content = ((output.get("output") or {}).get("message") or {}).get("content") or []
    return next(
        (b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)), ""
    )


def _output_lines(clients: BatchClients, output_uri: str) -> Iterator[dict[str, Any]]:
    bucket, prefix = split_s3_uri(output_uri)
    paginator = clients.s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents") or []:
            key = str(obj["Key"])
            if not key.endswith(".jsonl.out"):
                continue  # manifest.json.out and anything else
            body = clients.s3.get_object(Bucket=bucket, Key=key)["Body"]
            for raw in body.iter_lines():
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError:
                    log.warning("skipping an unreadable line in %s", key)
                    continue
                if isinstance(record, dict):
                    yield record


def ingest(
    engine: Engine, run_id: int, clients: BatchClients, output_uri: str, job_status: str
) -> int:
    """Join the job's output records on recordId into verdicts; items without a record become
    error verdicts (neutral score) when the job completed. Returns verdicts stored."""
    plan = judge_storage.load_plan(engine, run_id)
    if plan is None:
        return 0
    waiting = {row[0]: row for row in _unfinished(engine, run_id)}
    stored = 0
    rows: list[dict[str, Any]] = []
    for record in _output_lines(clients, output_uri):
        item_id = parse_record_id(record.get("recordId"))
        if item_id is None or item_id not in waiting:
            continue
        claimed = waiting.pop(item_id)
        item = verdicts.PreparedItem(
            claimed[0], claimed[1], claimed[2], claimed[3], claimed[4], call=None
        )
        rows.append(_record_verdict(plan, item, record))
        if len(rows) >= WRITE_CHUNK:
            stored += judge_storage.write_verdicts(engine, plan.snapshot, rows)
            rows = []
    if job_status in DONE_STATES:
        for claimed in waiting.values():
            item = verdicts.PreparedItem(*claimed[:5], call=None)
            rows.append(
                verdicts.verdict_row(
                    plan, item, status="error", error="no record for this item in the job's output"
                )
            )
            if len(rows) >= WRITE_CHUNK:
                stored += judge_storage.write_verdicts(engine, plan.snapshot, rows)
                rows = []
    stored += judge_storage.write_verdicts(engine, plan.snapshot, rows)
    _set_state(engine, run_id, settings_update={"batch_state": "ingested"}, next_poll_at=None)
    if job_status in DONE_STATES:
        judge_storage.finalize_run(engine, run_id)
    return stored


def _record_verdict(
    plan: verdicts.RunPlan, item: verdicts.PreparedItem, record: dict[str, Any]
) -> dict[str, Any]:
    error = record.get("error")
    if error:
        message = error.get("errorMessage") if isinstance(error, dict) else str(error)
        code = error.get("errorCode") if isinstance(error, dict) else None
        return verdicts.verdict_row(
            plan, item, status="error", error=f"batch record error {code}: {message}", attempts=1
        )
    output = record.get("modelOutput") or {}
    usage = output.get("usage") or {}
    text = _reply_text(output)
    tokens: dict[str, Any] = {
        "input_tokens": int(usage.get("inputTokens") or 0),
        "output_tokens": int(usage.get("outputTokens") or 0),
        "latency_ms": int((output.get("metrics") or {}).get("latencyMs") or 0),
        "attempts": 1,
    }
    try:
        result = verdicts.interpret(plan, text, item.order, item.item_count)
    except ValueError as exc:
        # No repair request in batch mode: the reply is stored as invalid with the neutral score.
        return verdicts.verdict_row(
            plan, item, status="invalid", raw_text=text, error=str(exc), **tokens
        )
    return verdicts.verdict_row(plan, item, status="ok", result=result, raw_text=text, **tokens)


def stop_job(engine: Engine, run_id: int, clients: BatchClients) -> None:
    """A cancelled run's job is stopped at Bedrock (best effort) and its state recorded."""
    with engine.connect() as conn:
        arn = conn.execute(select(_runs.c.batch_job_arn).where(_runs.c.id == run_id)).scalar()
    if arn:
        try:
            clients.bedrock.stop_model_invocation_job(jobIdentifier=arn)
        except Exception as exc:  # the job may have ended already; cancelling still stands
            log.warning("could not stop batch job %s: %s", arn, exc)
    _set_state(engine, run_id, settings_update={"batch_state": "stopped"}, next_poll_at=None)


def advance_batch_run(engine: Engine, run_id: int, clients: BatchClients) -> str:
    """Do the next step of one batch run; returns what was done."""
    with engine.connect() as conn:
        run = conn.execute(select(_runs).where(_runs.c.id == run_id)).mappings().one()
    state = (run["settings"] or {}).get("batch_state")
    if run["status"] == "cancelled":
        if state == LabelStatus.submitted:
            stop_job(engine, run_id, clients)
            return "stopped"
        return "nothing"
    if state is None:
        arn = submit(engine, run_id, clients)
        return "submitted" if arn else "completed"
    if state == LabelStatus.submitted:
        return f"polled: {poll(engine, run_id, clients)}"
    return "nothing"


def _lease_run(engine: Engine, run_id: int, owner: str) -> bool:
    now = utcnow()
    with engine.begin() as conn:
        result = conn.execute(
            update(_runs)
            .where(
                _runs.c.id == run_id,
                or_(_runs.c.lease_owner.is_(None), _runs.c.lease_expires_at < now),
            )
            .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=RUN_LEASE_S))
        )
    return bool(result.rowcount)


def _release_run(engine: Engine, run_id: int, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(_runs)
            .where(_runs.c.id == run_id, _runs.c.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )


def due_batch_runs(engine: Engine) -> list[int]:
    now = utcnow()
    waiting_submit_or_poll = and_(
        _runs.c.status.in_(verdicts.ACTIVE_STATUSES),
        or_(_runs.c.next_poll_at.is_(None), _runs.c.next_poll_at <= now),
    )
    # A cancelled run whose job is still running at Bedrock must have it stopped.
    cancelled_job = and_(_runs.c.status == "cancelled", _runs.c.next_poll_at.is_not(None))
    query = (
        select(_runs.c.id)
        .where(
            _runs.c.kind == "batch",
            or_(waiting_submit_or_poll, cancelled_job),
            or_(_runs.c.lease_owner.is_(None), _runs.c.lease_expires_at < now),
        )
        .order_by(_runs.c.id)
        .limit(10)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def advance_batch_runs(ctx: WorkerContext) -> bool:
    """The worker's step for batch runs: submit new ones, poll due ones, stop cancelled ones."""
    did_work = False
    for run_id in due_batch_runs(ctx.engine):
        if not _lease_run(ctx.engine, run_id, ctx.worker_id[:100]):
            continue
        try:
            with ctx.engine.connect() as conn:
                snapshot = conn.execute(
                    select(_runs.c.judge_snapshot).where(_runs.c.id == run_id)
                ).scalar()
            clients = CLIENT_FACTORY((snapshot or {}).get("region"))
            outcome = advance_batch_run(ctx.engine, run_id, clients)
            did_work = did_work or outcome != "nothing"
        except Exception as exc:  # an AWS error: record it and try again at the next poll
            log.exception("batch judge run %s failed a step", run_id)
            _set_state(
                ctx.engine,
                run_id,
                message=f"Batch step failed, will retry: {exc}"[:2000],
                next_poll_at=utcnow() + timedelta(seconds=POLL_INTERVAL_S),
            )
        finally:
            _release_run(ctx.engine, run_id, ctx.worker_id[:100])
    return did_work
