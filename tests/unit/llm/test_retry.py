"""call_with_retries: attempts, backoff bounds, Retry-After, per-call timeout, concurrency slots."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from app.llm.base import JudgeCall, JudgeReply, ProviderError
from app.llm.fake import FakeProvider
from app.llm.retry import RetryPolicy, call_with_retries

CALL = JudgeCall(system="Grade it.", user="The response.", timeout_s=5.0)


def policy(sleeper: Any, **overrides: Any) -> RetryPolicy:
    values: dict[str, Any] = {"max_attempts": 4, "base_delay_s": 1.0, "max_delay_s": 8.0}
    values.update(overrides)
    return RetryPolicy(sleep=sleeper, rng=random.Random(7), **values)


def flaky(code: str = "server_error", retry_after: float | None = None) -> ProviderError:
    return ProviderError(f"failed: {code}", retryable=True, code=code, retry_after=retry_after)


def test_first_try_success_counts_one_attempt(sleeper: Any) -> None:
    provider = FakeProvider(script=['{"score": 3}'])
    reply = asyncio.run(call_with_retries(provider, CALL, policy(sleeper)))
    assert (reply.text, reply.attempts) == ('{"score": 3}', 1)
    assert sleeper.delays == []


def test_retryable_errors_are_retried_with_growing_jittered_backoff(sleeper: Any) -> None:
    provider = FakeProvider(script=[flaky(), flaky(), flaky(), '{"score": 5}'])
    reply = asyncio.run(call_with_retries(provider, CALL, policy(sleeper)))
    assert reply.attempts == 4
    assert len(provider.calls) == 4
    assert len(sleeper.delays) == 3
    # Full jitter: attempt n waits uniformly in [0, min(max_delay, base * 2**(n-1))].
    for attempt, delay in enumerate(sleeper.delays, start=1):
        assert 0.0 <= delay <= min(8.0, 2 ** (attempt - 1))


def test_gives_up_after_max_attempts_with_the_last_error(sleeper: Any) -> None:
    errors = [flaky("rate_limited"), flaky("server_error"), flaky("timeout")]
    provider = FakeProvider(script=[*errors, "never reached"])
    with pytest.raises(ProviderError) as caught:
        asyncio.run(call_with_retries(provider, CALL, policy(sleeper, max_attempts=3)))
    assert caught.value is errors[-1]
    assert caught.value.attempts == 3
    assert len(sleeper.delays) == 2


def test_non_retryable_error_fails_at_once(sleeper: Any) -> None:
    error = ProviderError("bad schema", retryable=False, status=400, code="bad_request")
    provider = FakeProvider(script=[error, "unused"])
    with pytest.raises(ProviderError) as caught:
        asyncio.run(call_with_retries(provider, CALL, policy(sleeper)))
    assert caught.value.attempts == 1
    assert len(provider.calls) == 1
    assert sleeper.delays == []


def test_retry_after_is_a_floor_on_the_wait(sleeper: Any) -> None:
    provider = FakeProvider(script=[flaky(retry_after=12.5), flaky(retry_after=0.0), "ok"])
    reply = asyncio.run(call_with_retries(provider, CALL, policy(sleeper, base_delay_s=0.1)))
    assert reply.attempts == 3
    assert sleeper.delays[0] == 12.5  # beyond max_delay_s: the server's word wins
    assert sleeper.delays[1] <= 0.2  # Retry-After: 0 adds nothing to the jitter


def test_absurd_retry_after_is_capped(sleeper: Any) -> None:
    provider = FakeProvider(script=[flaky(retry_after=86_400.0), "ok"])
    asyncio.run(call_with_retries(provider, CALL, policy(sleeper, max_retry_after_s=60.0)))
    assert sleeper.delays == [60.0]


def test_backoff_is_capped_by_max_delay() -> None:
    rule = RetryPolicy(base_delay_s=1.0, max_delay_s=4.0, rng=random.Random(3))
    delays = [rule.backoff(attempt, None) for attempt in range(1, 40)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert max(delays[5:]) > 2.0  # the cap, not the base, bounds later attempts


class SlowProvider:
    """Answers after `delay` seconds; counts calls."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0

    async def complete(self, call: JudgeCall) -> JudgeReply:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return JudgeReply("{}", 1, 1, 0, 1, "none", "slow", "end_turn")

    async def aclose(self) -> None:
        return None


def test_per_call_timeout_becomes_a_retryable_timeout_error(sleeper: Any) -> None:
    provider = SlowProvider(delay=10.0)
    call = JudgeCall(system="s", user="u", timeout_s=0.05)
    with pytest.raises(ProviderError) as caught:
        asyncio.run(call_with_retries(provider, call, policy(sleeper, max_attempts=2)))
    assert caught.value.code == "timeout"
    assert caught.value.retryable
    assert caught.value.attempts == 2
    assert provider.calls == 2


def test_bugs_are_not_retried(sleeper: Any) -> None:
    class Broken(FakeProvider):
        async def complete(self, call: JudgeCall) -> JudgeReply:
            self.calls.append(call)
            raise KeyError("choices")

    provider = Broken()
    with pytest.raises(KeyError):
        asyncio.run(call_with_retries(provider, CALL, policy(sleeper)))
    assert len(provider.calls) == 1


def test_provider_limiter_bounds_concurrent_attempts(sleeper: Any) -> None:
    class Counting(FakeProvider):
        active = 0
        peak = 0

        async def complete(self, call: JudgeCall) -> JudgeReply:
            Counting.active += 1
            Counting.peak = max(Counting.peak, Counting.active)
            await asyncio.sleep(0.01)
            Counting.active -= 1
            return await super().complete(call)

    provider = Counting(concurrency=3)

    async def run_all() -> list[JudgeReply]:
        calls = [JudgeCall(system="s", user=f"u{i}") for i in range(12)]
        return await asyncio.gather(
            *(call_with_retries(provider, c, policy(sleeper)) for c in calls)
        )

    replies = asyncio.run(run_all())
    assert len(replies) == 12
    assert Counting.peak == 3


def test_queueing_for_a_slot_does_not_count_against_the_timeout(sleeper: Any) -> None:
    # Eight calls, one slot, each taking 0.05 s with a 0.25 s timeout: the last one waits
    # ~0.35 s for its slot and must still succeed on its first attempt.
    provider = SlowProvider(delay=0.05)
    provider.limiter = asyncio.Semaphore(1)  # type: ignore[attr-defined]
    call = JudgeCall(system="s", user="u", timeout_s=0.25)

    async def run_all() -> list[JudgeReply]:
        return await asyncio.gather(
            *(call_with_retries(provider, call, policy(sleeper)) for _ in range(8))
        )

    replies = asyncio.run(run_all())
    assert [r.attempts for r in replies] == [1] * 8
    assert provider.calls == 8
