"""Retry loop for judge calls: per-attempt timeout, full-jitter exponential backoff, Retry-After.

Providers make exactly one attempt per complete(); every retry decision lives here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from app.llm.base import JudgeCall, JudgeProvider, JudgeReply, ProviderError

logger = logging.getLogger(__name__)

Sleeper = Callable[[float], Awaitable[None]]


async def _default_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. `sleep` and `rng` are injectable for tests."""

    max_attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    # A server's Retry-After is honoured up to this bound (protects against absurd dates).
    max_retry_after_s: float = 300.0
    sleep: Sleeper = _default_sleep
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Delay before attempt `attempt + 1`: full jitter, but never less than Retry-After."""
        cap = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        delay = self.rng.uniform(0.0, max(cap, 0.0))
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, self.max_retry_after_s))
        return delay


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable


async def _attempt(provider: JudgeProvider, call: JudgeCall) -> JudgeReply:
    # The concurrency slot is taken before the clock starts: queueing is not the judge's fault.
    limiter: asyncio.Semaphore | None = getattr(provider, "limiter", None)
    if limiter is None:
        return await _timed(provider, call)
    async with limiter:
        return await _timed(provider, call)


async def _timed(provider: JudgeProvider, call: JudgeCall) -> JudgeReply:
    try:
        async with asyncio.timeout(call.timeout_s):
            return await provider.complete(call)
    except TimeoutError as exc:
        raise ProviderError(
            f"judge call timed out after {call.timeout_s:g}s", retryable=True, code="timeout"
        ) from exc


async def call_with_retries(
    provider: JudgeProvider, call: JudgeCall, policy: RetryPolicy | None = None
) -> JudgeReply:
    """Run `call` until it succeeds, fails for good, or `policy.max_attempts` are used.

    Returns the reply with `attempts` set; raises the last ProviderError with `.attempts` set.
    Non-ProviderError exceptions (bugs) propagate at once.
    """
    policy = policy or RetryPolicy()

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, ProviderError) else None
        return policy.backoff(state.attempt_number, retry_after)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.info(
            "judge attempt %d failed (%s); retrying in %.2fs",
            state.attempt_number,
            getattr(exc, "code", type(exc).__name__),
            state.upcoming_sleep,
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max(1, policy.max_attempts)),
        wait=wait,
        retry=retry_if_exception(_is_retryable),
        sleep=policy.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    attempt_number = 0
    reply: JudgeReply | None = None
    try:
        async for attempt in retrying:
            with attempt:
                attempt_number = attempt.retry_state.attempt_number
                reply = await _attempt(provider, call)
    except ProviderError as exc:
        exc.attempts = attempt_number
        raise
    assert reply is not None  # tenacity stops iterating only after a success (or reraises)
    return dataclasses.replace(reply, attempts=attempt_number)
