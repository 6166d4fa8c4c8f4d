"""The small protocol every judge provider speaks: one call in, one reply out, typed errors.

Pure module: no web, database or SDK imports, so services, workers and tests can share it.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class JudgeCall:
    """One judge request. Providers send these values as they are (see ProviderConfig.new_call)."""

    system: str
    user: str
    output_schema: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int = 1024
    timeout_s: float = 60.0
    metadata: dict[str, Any] = field(default_factory=dict)
    # Earlier (user, assistant) exchanges sent before `user`; used by the one JSON repair attempt.
    prior_turns: tuple[tuple[str, str], ...] = ()

    def repair(self, bad_reply: str, error: str) -> JudgeCall:
        """The follow-up call asking the judge to fix a reply that was not usable JSON."""
        from app.llm.json_extract import repair_instructions

        return dataclasses.replace(
            self,
            user=repair_instructions(error, self.output_schema),
            prior_turns=(*self.prior_turns, (self.user, bad_reply)),
        )


@dataclass(frozen=True)
class JudgeReply:
    """What a provider returned for one JudgeCall, with the cost of getting it."""

    text: str
    input_tokens: int
    output_tokens: int
    latency_ms: int
    attempts: int
    # json_schema | json_object | prompt | native_json (Bedrock outputConfig) | none | fake
    structured_mode: str
    model: str
    stop_reason: str | None


class ProviderError(Exception):
    """A failed provider call. `retryable` decides whether call_with_retries tries again.

    `code` is a short machine-readable reason: rate_limited, server_error, timeout, connection,
    malformed_response, bad_request, auth, not_found, missing_api_key, no_credentials, or the AWS
    error code (ThrottlingException, ValidationException, ...) for Bedrock.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        code: str = "error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.code = code
        # Set by call_with_retries to the number of attempts made before giving up.
        self.attempts = 0

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.message!r}, code={self.code!r}, retryable={self.retryable}, "
            f"status={self.status}, retry_after={self.retry_after}, attempts={self.attempts})"
        )


@runtime_checkable
class JudgeProvider(Protocol):
    """A judge LLM behind one call. Implementations may also expose `limiter`
    (an asyncio.Semaphore) which call_with_retries holds for each attempt."""

    async def complete(self, call: JudgeCall) -> JudgeReply: ...

    async def aclose(self) -> None: ...


def schema_instruction(schema: dict[str, Any]) -> str:
    """The line added to the system prompt when the schema cannot be enforced by the server."""
    return (
        "Reply with only a single JSON object (no prose, no code fences) that matches this "
        "JSON Schema:\n" + json.dumps(schema, separators=(",", ":"), sort_keys=True)
    )


def schema_name(call: JudgeCall) -> str:
    """A name for the schema acceptable to OpenAI and Bedrock: [A-Za-z0-9_-]{1,64}."""
    raw = str(call.metadata.get("schema_name") or (call.output_schema or {}).get("title") or "")
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-") else "_" for ch in raw)
    return cleaned[:64] or "judge_answer"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date; None if absent."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())
