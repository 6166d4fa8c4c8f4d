"""Reading drift sample files (INTERFACES.md §8), one line at a time.

Pure: no database, no web. `iter_records(stream, options)` yields a `DriftLine` per good line and
`Problem`s (line, field, message) for bad ones, like the rollout import; gzip is read as it
streams. A training job's step/time log becomes a StepMap in app/drift/step_log.py.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson

from app.drift.kinds import DriftSource, JudgeStatus
from app.drift.measures import SampleMeasures, measure
from app.rollouts.formats.common import (
    MAX_LABEL_CHARS,
    FileRejected,
    Problem,
    RolloutRecord,
    canonical_json,
    cap_problems,
    check_step,
    describe,
    response_text,
)
from app.rollouts.formats.lines import (
    BLANK_MESSAGE,
    HEAD_BYTES,
    UTF8_BOM,
    LineSource,
    RawLine,
    check_head,
    decode_json_object,
    fast_decode,
    read_head,
    too_long_problem,
)

GZIP_MAGIC = b"\x1f\x8b"
KNOWN_KEYS = frozenset(
    {
        "id",
        "training_run",
        "step",
        "recorded_at",
        "source",
        "bundle_hash",
        "sample_id",
        "group_id",
        "rollout",
        "reward",
        "components",
        "gated_by",
        "judge",
        "error",
    }
)
ROLLOUT_KEYS = frozenset(
    {"messages", "input_messages", "response", "target_document", "reference_answer", "metadata"}
)
NOT_MEASURED = SampleMeasures(0, False, None, None)
# A component given only as a score passes at this score (a record may say `passed` itself).
COMPONENT_PASS_SCORE = 0.5
MAX_ERROR_CHARS = 2000
# What checks a chunk of lines (iter_records' `parse`).
ChunkParser = Callable[[Sequence[RawLine], "DriftOptions"], list[Any]]


@dataclass(frozen=True)
class StepMap:
    """Times (UTC, ascending) and the step running from each: a record gets the step of the
    last logged time at or before its own (records before the first time get no step)."""

    times: tuple[datetime, ...] = ()
    steps: tuple[int, ...] = ()

    def step_at(self, moment: datetime) -> int | None:
        index = bisect.bisect_right(self.times, moment) - 1
        return self.steps[index] if index >= 0 else None

    def as_json(self) -> list[list[Any]]:
        return [[t.isoformat(), s] for t, s in zip(self.times, self.steps, strict=True)]

    @classmethod
    def from_json(cls, value: Sequence[Sequence[Any]] | None) -> StepMap:
        pairs = sorted((parse_time(t), int(s)) for t, s in (value or []))
        return cls(tuple(t for t, _ in pairs), tuple(s for _, s in pairs))


@dataclass(frozen=True)
class DriftOptions:
    training_run: str
    step_map: StepMap = field(default_factory=StepMap)
    max_line_bytes: int = 8 * 1024 * 1024
    max_file_bytes: int = 2 * 1024**3
    max_depth: int = 32
    # The import's first pass only checks lines: the figures measured for storage are skipped.
    check_only: bool = False


@dataclass(frozen=True, slots=True)
class DriftRecord:
    """One §8 record, checked, with the figures measured at import."""

    record_id: str
    content_hash: str
    step: int | None
    step_mapped: bool
    recorded_at: datetime
    source: str
    bundle_hash: str | None
    sample_id: str | None
    group_id: str | None
    prompt_key: str
    reward: float
    components: dict[str, float]
    components_passed: dict[str, bool]
    gated_by: str | None
    judge_status: str
    judge_criteria: dict[str, float]
    judge_aggregate: float | None
    neutral_reward: bool
    latency_ms: float | None
    attempts: int | None
    error: str | None
    response_chars: int
    judge_addressed: bool
    quotes_total: int | None
    quotes_ungrounded: int | None
    metadata: dict[str, Any]
    rollout: RolloutRecord


@dataclass(frozen=True, slots=True)
class DriftLine:
    line_no: int
    record: DriftRecord
    # Read by orjson with no \u0000 escape: nothing in it the databases refuse (no NUL
    # character, no infinite number), so bulk.storage_problem need not look.
    storable: bool = False


# ---------------------------------------------------------------------------- small checks


def parse_time(value: Any) -> datetime:
    """An ISO 8601 time (a trailing Z allowed) or a Unix time in seconds, as aware UTC."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return datetime.fromtimestamp(float(value), tz=UTC)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected an ISO 8601 time, got {describe(value)}")
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        return datetime.fromtimestamp(float(text), tz=UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 time like 2026-12-01T10:22:31Z, got '{text[:40]}'"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _label(value: Any, name: str, problems: list[Problem], line: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        problems.append(Problem(line, name, f"expected text, got {describe(value)}"))
        return None
    if len(value) > MAX_LABEL_CHARS:
        problems.append(
            Problem(line, name, f"expected at most {MAX_LABEL_CHARS} characters, got {len(value)}")
        )
        return None
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _components(
    value: Any, line: int, problems: list[Problem]
) -> tuple[dict[str, float], dict[str, bool]]:
    scores: dict[str, float] = {}
    passed: dict[str, bool] = {}
    if value is None:
        return scores, passed
    if not isinstance(value, dict):
        problems.append(Problem(line, "components", f"expected an object, got {describe(value)}"))
        return scores, passed
    for name, item in value.items():
        explicit: Any = None
        if isinstance(item, dict):
            explicit = item.get("passed")
            item = item.get("score")
        score = _number(item)
        if score is None:
            problems.append(
                Problem(line, f"components.{name}", f"expected a number, got {describe(item)}")
            )
            continue
        scores[str(name)[:100]] = score
        passed[str(name)[:100]] = (
            bool(explicit) if isinstance(explicit, bool) else score >= COMPONENT_PASS_SCORE
        )
    return scores, passed


def _judge(value: Any, line: int, problems: list[Problem]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": JudgeStatus.absent.value,
        "criteria": {},
        "aggregate": None,
        "latency_ms": None,
        "attempts": None,
        "raw": None,
    }
    if value is None:
        return out
    if not isinstance(value, dict):
        problems.append(Problem(line, "judge", f"expected an object, got {describe(value)}"))
        return out
    status = value.get("status", JudgeStatus.ok.value if value.get("criteria") else None)
    if status is not None:
        try:
            out["status"] = JudgeStatus(status).value
        except ValueError:
            allowed = ", ".join(s.value for s in JudgeStatus)
            problems.append(
                Problem(line, "judge.status", f"expected one of {allowed}, got {describe(status)}")
            )
    criteria = value.get("criteria") or {}
    if not isinstance(criteria, dict):
        problems.append(
            Problem(line, "judge.criteria", f"expected an object, got {describe(criteria)}")
        )
        criteria = {}
    for name, item in criteria.items():
        if isinstance(item, dict):
            item = item.get("score", item.get("value"))
        number = _number(item)
        if number is None:
            problems.append(
                Problem(
                    line,
                    f"judge.criteria.{name}",
                    f"expected a number or true/false, got {describe(item)}",
                )
            )
            continue
        out["criteria"][str(name)[:100]] = number
    for key in ("aggregate", "latency_ms"):
        if value.get(key) is not None:
            number = _number(value[key]) if not isinstance(value[key], bool) else None
            if number is None:
                problems.append(
                    Problem(line, f"judge.{key}", f"expected a number, got {describe(value[key])}")
                )
            out[key] = number
    attempts = value.get("attempts")
    if attempts is not None:
        if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts >= 0:
            out["attempts"] = attempts
        else:
            problems.append(
                Problem(
                    line, "judge.attempts", f"expected a whole number, got {describe(attempts)}"
                )
            )
    if isinstance(value.get("raw"), str):
        out["raw"] = value["raw"][:20_000]
    return out


# ---------------------------------------------------------------------------- one record


def parse_record(
    row: dict[str, Any], line: int, options: DriftOptions, *, storable: bool = False
) -> DriftLine | list[Problem]:
    problems: list[Problem] = []
    record_id = _label(row.get("id"), "id", problems, line)
    if row.get("id") is None or (record_id is not None and not record_id.strip()):
        problems.append(Problem(line, "id", "missing: every record needs an 'id' (unique)"))
    run = row.get("training_run")
    if run is None:
        problems.append(Problem(line, "training_run", "missing: every record names its run"))
    elif run != options.training_run:
        problems.append(
            Problem(
                line,
                "training_run",
                f"this record belongs to the training run '{str(run)[:80]}', not "
                f"'{options.training_run}'; import it into that run",
            )
        )
    recorded_at: datetime | None = None
    if row.get("recorded_at") is None:
        problems.append(Problem(line, "recorded_at", "missing: every record needs its time"))
    else:
        try:
            recorded_at = parse_time(row["recorded_at"])
        except ValueError as error:
            problems.append(Problem(line, "recorded_at", str(error)))
    step, step_problem = check_step(row.get("step"))
    if step_problem:
        problems.append(Problem(line, "step", step_problem))
    source = row.get("source") or DriftSource.other.value
    try:
        source = DriftSource(source).value
    except ValueError:
        allowed = ", ".join(s.value for s in DriftSource)
        problems.append(
            Problem(line, "source", f"expected one of {allowed}, got {describe(source)}")
        )
    rollout = row.get("rollout")
    response: str | None = None
    if not isinstance(rollout, dict):
        problems.append(
            Problem(line, "rollout", "missing: every record needs 'rollout' with a 'response'")
            if rollout is None
            else Problem(line, "rollout", f"expected an object, got {describe(rollout)}")
        )
        rollout = {}
    elif rollout.get("response") is None:
        problems.append(Problem(line, "rollout.response", "missing: the policy's response"))
    else:
        response = response_text(rollout["response"])
    messages = rollout.get("messages", rollout.get("input_messages")) or []
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        problems.append(Problem(line, "rollout.messages", "expected a list of message objects"))
        messages = []
    target = rollout.get("target_document")
    if target is not None and not isinstance(target, str):
        problems.append(
            Problem(line, "rollout.target_document", f"expected text, got {describe(target)}")
        )
        target = None
    rollout_meta = rollout.get("metadata") or {}
    if not isinstance(rollout_meta, dict):
        problems.append(Problem(line, "rollout.metadata", "expected an object"))
        rollout_meta = {}
    reward = row.get("reward")
    reward_value = None if isinstance(reward, bool) else _number(reward)
    if reward is None:
        problems.append(Problem(line, "reward", "missing: the reward returned to the trainer"))
    elif reward_value is None:
        problems.append(Problem(line, "reward", f"expected a number, got {describe(reward)}"))
    components, passed = _components(row.get("components"), line, problems)
    gated_by = _label(row.get("gated_by"), "gated_by", problems, line)
    judge = _judge(row.get("judge"), line, problems)
    sample_error = row.get("error")
    if sample_error is not None and not isinstance(sample_error, str):
        sample_error = str(sample_error)
    bundle_hash = _label(row.get("bundle_hash"), "bundle_hash", problems, line)
    sample_id = _label(row.get("sample_id"), "sample_id", problems, line)
    group_id = _label(row.get("group_id"), "group_id", problems, line)
    if problems:
        return cap_problems(problems)
    assert record_id is not None and recorded_at is not None and response is not None
    assert reward_value is not None
    step_mapped = False
    if step is None and options.step_map.times:
        step = options.step_map.step_at(recorded_at)
        step_mapped = step is not None
    metadata = {key: value for key, value in row.items() if key not in KNOWN_KEYS}
    if judge["raw"]:
        metadata["judge_raw"] = judge["raw"]
    extra_rollout = {k: v for k, v in rollout.items() if k not in ROLLOUT_KEYS}
    if extra_rollout:
        metadata["rollout_extra"] = extra_rollout
    measures = NOT_MEASURED if options.check_only else measure(response, target)
    content_hash = "" if options.check_only else _digest(row)
    model = rollout_meta.get("model") if isinstance(rollout_meta.get("model"), str) else None
    checkpoint = rollout_meta.get("checkpoint")
    rollout_record = RolloutRecord(
        external_id=rollout_external_id(options.training_run, record_id),
        content_hash=content_hash,
        input_messages=messages,
        target_document=target,
        reference_documents=[],
        reference_answer=rollout.get("reference_answer"),
        response=response,
        model=model[:200] if model else None,
        checkpoint=checkpoint[:200] if isinstance(checkpoint, str) else None,
        step=step,
        group_key=group_id,
        metadata={
            **rollout_meta,
            "source": f"drift:{options.training_run}",
            "drift_record_id": record_id,
            "reward": reward_value,
        },
        line_no=line,
    )
    judge_status = judge["status"]
    return DriftLine(
        line,
        DriftRecord(
            record_id=record_id,
            content_hash=content_hash,
            step=step,
            step_mapped=step_mapped,
            recorded_at=recorded_at,
            source=source,
            bundle_hash=bundle_hash,
            sample_id=sample_id,
            group_id=group_id,
            prompt_key="" if options.check_only else _digest([messages, target])[:16],
            reward=reward_value,
            components=components,
            components_passed=passed,
            gated_by=gated_by,
            judge_status=judge_status,
            judge_criteria=judge["criteria"],
            judge_aggregate=judge["aggregate"],
            neutral_reward=judge_status == JudgeStatus.error.value,
            latency_ms=judge["latency_ms"],
            attempts=judge["attempts"],
            error=sample_error[:MAX_ERROR_CHARS] if sample_error else None,
            response_chars=measures.response_chars,
            judge_addressed=measures.judge_addressed,
            quotes_total=measures.quotes_total,
            quotes_ungrounded=measures.quotes_ungrounded,
            metadata=metadata,
            rollout=rollout_record,
        ),
        storable,
    )


def _digest(value: Any) -> str:
    """SHA-256 of a JSON value in a canonical form (sorted keys): orjson, or json for what
    orjson refuses (integers beyond 64 bits)."""
    try:
        encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        encoded = canonical_json(value)
    return hashlib.sha256(encoded).hexdigest()


def rollout_external_id(run_name: str, record_id: str) -> str:
    """The id of the rollout made from a record: readable when short, hashed when long."""
    readable = f"drift:{run_name}:{record_id}"
    if len(readable) <= MAX_LABEL_CHARS:
        return readable
    digest = hashlib.sha256(f"{run_name}\x00{record_id}".encode()).hexdigest()[:32]
    return f"drift:{run_name[:100]}:{digest}"


# ---------------------------------------------------------------------------- files


def open_text_stream(stream: BinaryIO) -> BinaryIO:
    """The stream itself, or its decompressed content when it is gzip (read as it streams)."""
    head = stream.read(2)
    stream.seek(0)
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


def iter_records(
    stream: BinaryIO,
    options: DriftOptions,
    pool: Executor | None = None,
    parse: ChunkParser | None = None,
) -> Iterator[Any]:
    """Parse a drift sample file (JSONL, gzip or not) one line at a time.

    Raises FileRejected for a whole-file problem (empty, binary, not JSONL); yields a DriftLine
    per good line and Problems for bad ones, in line order.

    pool: processes to check and measure the lines in (parse_chunk, CHUNK_LINES at a time, at
    most PENDING_CHUNKS_PER_WORKER per process ahead of the consumer, so memory stays bounded);
    the lines are still read here, in order, with the same limits. None: in this process.
    parse: what checks a chunk of lines (parse_chunk, or one that also turns the good lines into
    what the importer stores, such as copy_rows.pack_chunk); a module-level function (or a
    functools.partial of one) so that it can be sent to the pool's processes.
    """
    parse = parse or parse_chunk
    body_stream = open_text_stream(stream)
    try:
        head = read_head(body_stream)
    except (OSError, EOFError) as error:
        raise FileRejected(f"the gzip file cannot be read: {error}") from None
    check_head(head)
    body = head.removeprefix(UTF8_BOM)
    if not body.strip() and len(head) < HEAD_BYTES:
        raise FileRejected(BLANK_MESSAGE)
    if body.lstrip()[:1] not in (b"{", b""):
        raise FileRejected(
            "expected JSONL: one drift sample record (a JSON object) per line, see docs/drift.md",
            line=1,
        )
    lines = LineSource(
        head,
        body_stream,
        max_line_bytes=options.max_line_bytes,
        max_file_bytes=options.max_file_bytes,
        encoding="utf-8",
    )
    if pool is None:
        return _iter(lines, options, parse)
    return _iter_pooled(lines, options, pool, parse)


def parse_line(line: RawLine, options: DriftOptions) -> list[DriftLine | Problem]:
    """One line of a drift sample file: its record, or its problems (none for a blank line)."""
    if line.text is None:
        return [too_long_problem(line, options.max_line_bytes)]
    text = line.text.strip()
    if not text:
        return []
    value = fast_decode(text)
    row = decode_json_object(text, line, options.max_depth, value)
    if isinstance(row, list):
        return list(row)
    storable = value is not None and "\\u0000" not in text
    result = parse_record(row, line.number, options, storable=storable)
    return [result] if isinstance(result, DriftLine) else list(result)


def parse_chunk(lines: Sequence[RawLine], options: DriftOptions) -> list[DriftLine | Problem]:
    """parse_line over a chunk of lines: the work a pool process does."""
    return [item for line in lines for item in parse_line(line, options)]


def _raw_lines(lines: LineSource) -> Iterator[RawLine]:
    """The file's lines; raises FileRejected for one with no content at all, or a damaged
    gzip stream."""
    seen = False
    try:
        for line in lines:
            if line.text is None or line.text.strip():
                seen = True
            yield line
    except (OSError, EOFError) as error:  # a damaged or cut-off gzip stream
        raise FileRejected(f"the gzip file is damaged or cut off: {error}") from None
    if not seen:
        raise FileRejected(BLANK_MESSAGE)


def _iter(lines: LineSource, options: DriftOptions, parse: ChunkParser) -> Iterator[Any]:
    for line in _raw_lines(lines):
        yield from parse([line], options)


CHUNK_LINES = 500
PENDING_CHUNKS_PER_WORKER = 3


def _to_send(chunk: list[RawLine]) -> list[tuple[int, str | None, int, bool]]:
    """Lines as plain tuples: pickled several times faster than the dataclass."""
    return [(line.number, line.text, line.size, line.ends_with_newline) for line in chunk]


def _parse_sent(
    parse: ChunkParser, sent: list[tuple[int, str | None, int, bool]], options: DriftOptions
) -> list[Any]:
    """In a pool process: the lines sent back as RawLines, parsed."""
    return parse([RawLine(*line) for line in sent], options)


def _iter_pooled(
    lines: LineSource, options: DriftOptions, pool: Executor, parse: ChunkParser
) -> Iterator[Any]:
    workers = max(1, int(getattr(pool, "_max_workers", 1)))
    pending: deque[Future[list[Any]]] = deque()
    chunk: list[RawLine] = []
    try:
        for line in _raw_lines(lines):
            chunk.append(line)
            if len(chunk) >= CHUNK_LINES:
                pending.append(pool.submit(_parse_sent, parse, _to_send(chunk), options))
                chunk = []
                if len(pending) >= workers * PENDING_CHUNKS_PER_WORKER:
                    yield from pending.popleft().result()
        if chunk:
            pending.append(pool.submit(_parse_sent, parse, _to_send(chunk), options))
        while pending:
            yield from pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
