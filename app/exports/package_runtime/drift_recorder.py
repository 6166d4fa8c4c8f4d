"""Drift samples out of training: what the exported reward function scored, written as drift
sample records (one JSON object per line) for reviewers to audit in the studio.

STANDARD LIBRARY ONLY (boto3 is imported only when writing to S3): this file is copied into the
exported reward functions. Recording is off the hot path and can never fail a training step:
`record()` chooses samples, builds plain dicts and hands them to a bounded queue; one background
thread serialises and writes them. A full queue, a write error, an unreachable S3 bucket or
studio API only counts the records as dropped or failed (`stats`), never raises into the caller.

What is recorded:
- a share `sample_rate` of the PROMPTS (every generation of a chosen prompt, so GRPO groups stay
  whole); the choice is a hash of the training run and the prompt (and the TRL step), so it is
  reproducible and the same in every process;
- judge errors and gated samples always, capped at `always_record_per_1000` per 1,000 scored
  samples (after a first burst of `ALWAYS_BURST`), so a broken judge cannot flood the store.

Where: the Nova Lambda writes one S3 object per invocation (`s3_bucket`, `s3_prefix`); the TRL
and verl functions append to a local JSONL file or POST JSONL batches to the studio's API
(`POST {api_url}/api/v1/projects/{project}/training-runs/{run}/samples`, bearer token read from
the environment variable named by `api_token_env`). Every setting can be changed at deploy time
with RUBRIC_DRIFT_* environment variables (see ENV_OVERRIDES).
"""

from __future__ import annotations

import atexit
import gzip
import hashlib
import io
import json
import logging
import os
import queue
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("rubric_reward.drift")

ALWAYS_BURST = 20  # always-recorded samples allowed before the per-1,000 cap applies
API_TIMEOUT_S = 10.0
MAX_WRITE_RECORDS = 500  # records coalesced into one file append or API request
DEFAULTS: dict[str, Any] = {
    "enabled": False,
    "training_run": "",
    "sample_rate": 0.03,
    "always_record_errors": True,
    "always_record_gated": True,
    "always_record_per_1000": 50,
    "s3_bucket": "",
    "s3_prefix": "drift-samples/",
    "trainer_destination": "file",
    "file_path": "drift_samples.jsonl",
    "api_url": "",
    "api_project": "",
    "api_token_env": "RUBRIC_STUDIO_TOKEN",
    "max_queue": 2000,
    "flush_wait_s": 1.0,
    "include_judge_raw": True,
}


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


ENV_OVERRIDES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "RUBRIC_DRIFT_ENABLED": ("enabled", _flag),
    "RUBRIC_DRIFT_TRAINING_RUN": ("training_run", str),
    "RUBRIC_DRIFT_SAMPLE_RATE": ("sample_rate", float),
    "RUBRIC_DRIFT_S3_BUCKET": ("s3_bucket", str),
    "RUBRIC_DRIFT_S3_PREFIX": ("s3_prefix", str),
    "RUBRIC_DRIFT_DESTINATION": ("trainer_destination", str),
    "RUBRIC_DRIFT_FILE": ("file_path", str),
    "RUBRIC_DRIFT_API_URL": ("api_url", str),
    "RUBRIC_DRIFT_API_PROJECT": ("api_project", str),
    "RUBRIC_DRIFT_API_TOKEN_ENV": ("api_token_env", str),
}


def settings_from(config: dict[str, Any] | None, environ: Any = None) -> dict[str, Any]:
    """The bundle's recording settings, with RUBRIC_DRIFT_* environment overrides."""
    settings = dict(DEFAULTS) | {k: v for k, v in (config or {}).items() if v is not None}
    environ = os.environ if environ is None else environ
    for name, (key, kind) in ENV_OVERRIDES.items():
        raw = environ.get(name)
        if raw not in (None, ""):
            try:
                settings[key] = kind(raw)
            except ValueError:
                log.warning("ignoring %s=%r: not a valid value", name, raw)
    return settings


def trainer_step(trainer_state: Any) -> int | None:
    """TRL passes `trainer_state` (a transformers TrainerState) to reward functions."""
    step = getattr(trainer_state, "global_step", None)
    if step is None and isinstance(trainer_state, dict):
        step = trainer_state.get("global_step")
    try:
        return int(step) if step is not None else None
    except (TypeError, ValueError):
        return None


def prompt_key(sample: dict[str, Any]) -> str:
    """A short stable id of the prompt (input messages): generations of one prompt share it."""
    text = json.dumps(sample.get("input_messages") or [], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def unit_hash(*parts: str) -> float:
    """A number in [0, 1) from the parts, the same in every process."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def now_text() -> str:
    stamp = datetime.now(timezone.utc)  # noqa: UP017 (the package also runs on older Pythons)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def build_record(
    outcome: dict[str, Any],
    *,
    training_run: str,
    source: str,
    bundle_hash: str,
    step: int | None,
    sample_id: Any,
    group_id: str | None,
    recorded_at: str,
    include_raw: bool = True,
) -> dict[str, Any]:
    """One drift sample record (INTERFACES.md §8) from a scored sample's outcome."""
    sample = outcome.get("sample") or {}
    call = outcome.get("judge_call") or {}
    components = {
        name: result.get("score")
        for name, result in (outcome.get("components") or {}).items()
        if isinstance(result, dict) and result.get("applicable", True)
    }
    judge: dict[str, Any] = {
        "status": outcome.get("judge_status"),
        "criteria": call.get("raw_criteria") or {},
        "criteria_normalized": outcome.get("criteria") or {},
        "aggregate": outcome.get("judge_score"),
        "latency_ms": call.get("latency_ms"),
        "attempts": call.get("attempts"),
    }
    if include_raw and call.get("raw") is not None:
        judge["raw"] = call["raw"]
    return {
        "id": uuid.uuid4().hex,
        "training_run": training_run,
        "step": step,
        "recorded_at": recorded_at,
        "source": source,
        "bundle_hash": f"sha256:{bundle_hash}",
        "sample_id": None if sample_id is None else str(sample_id),
        "group_id": group_id,
        "rollout": {
            "messages": sample.get("input_messages") or [],
            "response": sample.get("response") or "",
            "target_document": sample.get("target_document"),
            "reference_answer": sample.get("reference_answer"),
            "references": sample.get("references") or [],
            "metadata": sample.get("metadata") or {},
        },
        "reward": outcome.get("reward"),
        "components": components,
        "gated_by": outcome.get("gated_by"),
        "judge": judge,
        "error": outcome.get("judge_error") or outcome.get("sample_error"),
    }


# ---- where records go ----------------------------------------------------------------------


class FileSink:
    """Appends JSONL lines to a local file (one append per batch)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, records: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)


class ApiSink:
    """POSTs JSONL batches to the studio's training-run samples endpoint."""

    def __init__(self, base_url: str, project: str, training_run: str, token: str) -> None:
        quote = urllib.parse.quote
        self.url = (
            f"{base_url.rstrip('/')}/api/v1/projects/{quote(str(project), safe='')}"
            f"/training-runs/{quote(training_run, safe='')}/samples"
        )
        self.token = token

    def write(self, records: list[dict[str, Any]]) -> None:
        body = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
        request = urllib.request.Request(
            self.url,
            data=body.encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": "application/x-ndjson",
                "Authorization": f"Bearer {self.token}",
            },
        )
        with urllib.request.urlopen(request, timeout=API_TIMEOUT_S) as response:
            response.read()


class S3Sink:
    """One gzipped JSONL object per batch under `prefix/training_run/date/`."""

    def __init__(self, bucket: str, prefix: str, training_run: str, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.training_run = training_run
        self._client = client

    def client(self) -> Any:
        if self._client is None:
            import boto3  # only when writing to S3 (the Lambda runtime ships it)

            self._client = boto3.client("s3")
        return self._client

    def key(self) -> str:
        stamp = datetime.now(timezone.utc)  # noqa: UP017
        prefix = self.prefix if not self.prefix or self.prefix.endswith("/") else self.prefix + "/"
        return (
            f"{prefix}{self.training_run}/{stamp:%Y-%m-%d}/"
            f"{stamp:%H%M%S%f}-{uuid.uuid4().hex[:12]}.jsonl.gz"
        )

    def write(self, records: list[dict[str, Any]]) -> None:
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
            for record in records:
                line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
                handle.write(line.encode("utf-8"))
        self.client().put_object(
            Bucket=self.bucket,
            Key=self.key(),
            Body=buffer.getvalue(),
            ContentType="application/x-ndjson",
            ContentEncoding="gzip",
        )


# ---- the recorder ----------------------------------------------------------------------------


class _Batch:
    __slots__ = ("records", "done", "whole")

    def __init__(self, records: list[dict[str, Any]], whole: bool) -> None:
        self.records = records
        self.done = threading.Event()
        self.whole = whole  # written as its own object (one S3 object per Nova invocation)


class DriftRecorder:
    """Chooses, queues and writes drift sample records; every public method is safe to call
    from the training loop (never raises, never blocks longer than `flush_wait_s`)."""

    def __init__(
        self,
        settings: dict[str, Any],
        *,
        bundle_hash: str,
        sink_factory: Callable[[str], Any] | None = None,
        clock: Callable[[], str] = now_text,
    ) -> None:
        self.settings = settings
        self.bundle_hash = bundle_hash
        self.enabled = bool(settings.get("enabled"))
        self.training_run = str(settings.get("training_run") or "") or f"run-{bundle_hash[:12]}"
        self.stats = {"scored": 0, "recorded": 0, "written": 0, "dropped": 0, "failed": 0}
        self._sink_factory = sink_factory or self._default_sink
        self._sinks: dict[str, Any] = {}
        self._clock = clock
        self._always = 0
        self._lock = threading.Lock()
        self._pid = -1
        self._queue: queue.Queue[_Batch] | None = None
        self._pending = 0
        self._thread: threading.Thread | None = None

    # -- choosing ----------------------------------------------------------------------------

    def _always_allowed(self) -> bool:
        per_1000 = int(self.settings.get("always_record_per_1000") or 0)
        return self._always < ALWAYS_BURST + self.stats["scored"] * per_1000 // 1000

    def chosen(self, outcome: dict[str, Any], group_key: str) -> bool:
        """Whether to record this outcome (call with the lock held)."""
        rate = float(self.settings.get("sample_rate") or 0.0)
        if rate > 0 and unit_hash(self.training_run, group_key) < rate:
            return True
        special = (
            self.settings.get("always_record_errors") and outcome.get("judge_status") == "error"
        ) or (self.settings.get("always_record_gated") and outcome.get("gated_by") is not None)
        if special and self._always_allowed():
            self._always += 1
            return True
        return False

    # -- the public call ---------------------------------------------------------------------

    def record(
        self,
        outcomes: Sequence[dict[str, Any]],
        *,
        source: str,
        step: int | None = None,
        sample_ids: Sequence[Any] | None = None,
        wait: bool = False,
    ) -> None:
        """Record the chosen samples of one reward call. `wait` (the Nova Lambda) writes them as
        one object and waits up to `flush_wait_s` for it before returning."""
        if not self.enabled:
            return
        try:
            self._record(outcomes, source, step, sample_ids, wait)
        except Exception:  # recording must never fail a training step
            log.warning("drift recording failed", exc_info=True)
            self.stats["failed"] += len(outcomes)

    def _record(
        self,
        outcomes: Sequence[dict[str, Any]],
        source: str,
        step: int | None,
        sample_ids: Sequence[Any] | None,
        wait: bool,
    ) -> None:
        recorded_at = self._clock()
        records = []
        with self._lock:
            for index, outcome in enumerate(outcomes):
                self.stats["scored"] += 1
                sample = outcome.get("sample")
                if not isinstance(sample, dict):
                    continue  # unreadable: there is no response to audit
                prompt = prompt_key(sample)
                group = prompt if step is None else f"{prompt}@{step}"
                if not self.chosen(outcome, group):
                    continue
                sample_id = sample_ids[index] if sample_ids and index < len(sample_ids) else None
                records.append(
                    build_record(
                        outcome,
                        training_run=self.training_run,
                        source=source,
                        bundle_hash=self.bundle_hash,
                        step=step,
                        sample_id=sample_id,
                        group_id=group,
                        recorded_at=recorded_at,
                        include_raw=bool(self.settings.get("include_judge_raw", True)),
                    )
                )
            if not records:
                return
            batch = self._enqueue(records, whole=wait)
        if batch is not None and wait:
            batch.done.wait(max(0.0, float(self.settings.get("flush_wait_s") or 0.0)))

    def _enqueue(self, records: list[dict[str, Any]], whole: bool) -> _Batch | None:
        """Hand records to the writer thread (lock held); drop them when the queue is full."""
        if self._pid != os.getpid():  # first use, or a forked worker: a fresh thread and queue
            self._pid = os.getpid()
            self._queue = queue.Queue()
            self._pending = 0
            self._thread = threading.Thread(
                target=self._run, name="rubric-drift-writer", daemon=True
            )
            self._thread.start()
            atexit.register(self.flush)
        if self._pending + len(records) > int(self.settings.get("max_queue") or 0):
            self.stats["dropped"] += len(records)
            return None
        self._pending += len(records)
        self.stats["recorded"] += len(records)
        batch = _Batch(records, whole)
        assert self._queue is not None
        self._queue.put_nowait(batch)
        return batch

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (bounded) until everything queued so far is written or failed."""
        if self._queue is None or self._pid != os.getpid():
            return True
        limit = float(self.settings.get("flush_wait_s") or 0.0) if timeout is None else timeout
        marker = _Batch([], whole=True)
        try:
            self._queue.put_nowait(marker)
        except Exception:
            return False
        return marker.done.wait(max(0.0, limit))

    # -- the writer thread -------------------------------------------------------------------

    def _default_sink(self, source: str) -> Any:
        s = self.settings
        if source == "nova-lambda":
            if not s.get("s3_bucket"):
                raise ValueError("no S3 bucket configured for drift samples")
            return S3Sink(str(s["s3_bucket"]), str(s.get("s3_prefix") or ""), self.training_run)
        if s.get("trainer_destination") == "api":
            token = os.environ.get(str(s.get("api_token_env") or ""), "")
            if not (s.get("api_url") and s.get("api_project") and token):
                raise ValueError("the studio API needs api_url, api_project and a token")
            return ApiSink(str(s["api_url"]), str(s["api_project"]), self.training_run, token)
        return FileSink(str(s.get("file_path") or DEFAULTS["file_path"]))

    def _sink(self, source: str) -> Any:
        if source not in self._sinks:
            self._sinks[source] = self._sink_factory(source)
        return self._sinks[source]

    def _take(self, first: _Batch) -> list[_Batch]:
        """The first batch and, unless it must be written alone, more queued ones to coalesce."""
        batches = [first]
        if first.whole:
            return batches
        count = len(first.records)
        while count < MAX_WRITE_RECORDS and self._queue is not None:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            batches.append(more)
            count += len(more.records)
            if more.whole:
                break
        return batches

    def _run(self) -> None:
        own_queue = self._queue
        while own_queue is not None:
            batches = self._take(own_queue.get())
            by_source: dict[str, list[dict[str, Any]]] = {}
            for batch in batches:
                for record in batch.records:
                    by_source.setdefault(record["source"], []).append(record)
            for source, records in by_source.items():
                try:
                    self._sink(source).write(records)
                    outcome = "written"
                except Exception as exc:  # counted and dropped: never retried into memory
                    log.warning("drift samples not written (%s): %s", source, exc)
                    self._sinks.pop(source, None)
                    outcome = "failed"
                with self._lock:
                    self.stats[outcome] += len(records)
                    self._pending -= len(records)
            for batch in batches:
                batch.done.set()


class NullRecorder:
    """Recording switched off: the same call surface, doing nothing."""

    enabled = False
    stats: dict[str, int] = {}

    def record(self, outcomes: Sequence[dict[str, Any]], **kwargs: Any) -> None:
        return None

    def flush(self, timeout: float | None = None) -> bool:
        return True


def from_bundle(bundle: dict[str, Any], environ: Any = None) -> DriftRecorder | NullRecorder:
    """The recorder a bundle asks for (`spec.reward.drift`), or a null one when it is off."""
    try:
        config = (bundle.get("spec") or {}).get("reward", {}).get("drift")
        settings = settings_from(config, environ)
        if not settings.get("enabled"):
            return NullRecorder()
        return DriftRecorder(settings, bundle_hash=str(bundle.get("content_hash") or ""))
    except Exception:
        log.warning("drift recording disabled: unreadable settings", exc_info=True)
        return NullRecorder()
