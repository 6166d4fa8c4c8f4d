"""The asynchronous judge executor: leases work items, calls the judge concurrently, and stores
each verdict together with its item's completion and the run's counters in one transaction.

A session works on one run: it keeps about `concurrency` calls in flight, claims more items as
they finish, extends its leases while it works, flushes verdicts in small batches, and stops
starting calls within `status_check_s` of the run being cancelled. Items it leased but did not
finish go back to the queue, and a crashed session's leases simply expire and are claimed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError

from app.judging.storage import (
    PromptCache,
    claim_items,
    extend_leases,
    fail_run,
    finalize_run,
    load_plan,
    prepare_items,
    release_leases,
    run_status,
    start_run,
    write_verdicts,
    write_verdicts_one_by_one,
)
from app.judging.verdicts import (
    ACTIVE_STATUSES,
    PreparedItem,
    ProviderFactory,
    RunPlan,
    default_provider,
    interpret,
    verdict_row,
)
from app.llm.base import JudgeProvider, ProviderError
from app.llm.egress import EgressPolicy
from app.llm.retry import RetryPolicy, call_with_retries

log = logging.getLogger(__name__)


# ---- one item ---------------------------------------------------------------------------------


async def judge_item(
    provider: JudgeProvider, plan: RunPlan, item: PreparedItem, policy: RetryPolicy
) -> dict[str, Any]:
    """Call the judge for one item (retries inside), with one repair request for an unusable
    answer. Always returns a verdict row: failures carry the neutral score."""
    if item.call is None:
        return verdict_row(plan, item, status="error", error=item.problem or "no prompt")
    try:
        reply = await call_with_retries(provider, item.call, policy)
    except ProviderError as exc:
        return verdict_row(
            plan, item, status="error", error=f"{exc.code}: {exc.message}", attempts=exc.attempts
        )
    tokens_in, tokens_out = reply.input_tokens, reply.output_tokens
    latency, attempts = reply.latency_ms, reply.attempts
    try:
        return verdict_row(
            plan,
            item,
            status="ok",
            result=interpret(plan, reply.text, item.order, item.item_count),
            raw_text=reply.text,
            latency_ms=latency,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            attempts=attempts,
        )
    except ValueError as exc:
        first_problem = str(exc)

    repair = item.call.repair(reply.text, first_problem)
    try:
        second = await call_with_retries(provider, repair, policy)
    except ProviderError as exc:
        return verdict_row(
            plan,
            item,
            status="invalid",
            raw_text=reply.text,
            error=f"{first_problem}; the repair request failed: {exc.code}: {exc.message}",
            latency_ms=latency,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            attempts=attempts + exc.attempts,
        )
    tokens_in += second.input_tokens
    tokens_out += second.output_tokens
    latency += second.latency_ms
    attempts += second.attempts
    try:
        result = interpret(plan, second.text, item.order, item.item_count)
    except ValueError as exc:
        return verdict_row(
            plan,
            item,
            status="invalid",
            raw_text=second.text,
            error=f"{first_problem}; after one repair request: {exc}",
            latency_ms=latency,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            attempts=attempts,
        )
    return verdict_row(
        plan,
        item,
        status="repaired",
        result=result,
        raw_text=second.text,
        error=f"first reply unusable: {first_problem}",
        latency_ms=latency,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        attempts=attempts,
    )


# ---- the session ------------------------------------------------------------------------------


@dataclass
class EngineOptions:
    worker_id: str
    lease_seconds: float = 120.0
    # Items claimed per round trip; default: the judge configuration's concurrency.
    claim_size: int | None = None
    status_check_s: float = 0.5
    flush_interval_s: float = 0.1
    max_session_s: float | None = None
    max_claims: int = 5
    # The operator's outbound-URL and key-variable policy; None: this process's settings.
    egress: EgressPolicy | None = None


@dataclass
class SessionStats:
    run_id: int
    claimed: int = 0
    finished: int = 0
    inserted: int = 0
    released: int = 0
    halted: str | None = None  # "cancelled", "stopped" or None
    completed_run: bool = False


def work_on_run(
    engine: Engine,
    run_id: int,
    options: EngineOptions,
    *,
    stop: threading.Event | None = None,
    provider_factory: ProviderFactory | None = None,
) -> SessionStats:
    """Judge items of `run_id` until none is left to claim, the run stops being active or
    `stop` is set. Synchronous: runs its own event loop (call it from a worker thread)."""
    session = _Session(engine, run_id, options, stop or threading.Event(), provider_factory)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(session.run())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    # uvloop (installed with uvicorn[standard]) roughly halves the event loop's own overhead,
    # which matters at hundreds of calls a second on a small machine.
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the standard loop works, only slower
        return None
    return uvloop.new_event_loop


class _Session:
    def __init__(
        self,
        engine: Engine,
        run_id: int,
        options: EngineOptions,
        stop: threading.Event,
        provider_factory: ProviderFactory | None,
    ) -> None:
        self.engine = engine
        self.options = options
        self.stop = stop
        self.provider_factory = provider_factory or functools.partial(
            default_provider, egress=options.egress
        )
        self.stats = SessionStats(run_id=run_id)
        self.token = f"{options.worker_id[:80]}/{uuid.uuid4().hex[:12]}"
        self.cache = PromptCache()
        self.results: list[dict[str, Any]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.halt: str | None = None
        self.wake = asyncio.Event()
        self.closing = asyncio.Event()
        self.write_lock = asyncio.Lock()

    async def run(self) -> SessionStats:
        try:
            plan = await asyncio.to_thread(load_plan, self.engine, self.stats.run_id)
            if plan is None:
                raise ValueError("its rubric version no longer exists")
            cfg = plan.config()
            provider = self.provider_factory(cfg)
        except Exception as exc:  # nothing of this run can be judged: say why, once
            log.exception("judge run %s cannot start", self.stats.run_id)
            await asyncio.to_thread(
                fail_run, self.engine, self.stats.run_id, f"The judge could not be set up: {exc}"
            )
            self.stats.halted = "failed"
            return self.stats
        if plan.status not in ACTIVE_STATUSES:
            await provider.aclose()
            return self.stats
        await asyncio.to_thread(start_run, self.engine, plan.run_id)
        policy = cfg.retry_policy()
        watcher = asyncio.create_task(self._watch(plan))
        flusher = asyncio.create_task(self._flush_regularly(plan))
        try:
            await self._loop(plan, provider, policy, cfg.concurrency)
        finally:
            watcher.cancel()
            # The flusher is asked to stop, not cancelled: a write in progress must finish.
            self.closing.set()
            for task in (watcher, flusher):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.tasks:  # halted: calls in flight are abandoned, their items re-queued
                for task in self.tasks:
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)
            try:
                await self._flush(plan)
                self.stats.released = await asyncio.to_thread(
                    release_leases, self.engine, self.token
                )
            finally:  # even when the database is gone: close the provider's connections
                with contextlib.suppress(Exception):
                    await provider.aclose()
        if self.halt is None:
            self.stats.completed_run = await asyncio.to_thread(
                finalize_run, self.engine, plan.run_id
            )
        self.stats.halted = self.halt
        return self.stats

    async def _loop(
        self, plan: RunPlan, provider: JudgeProvider, policy: RetryPolicy, concurrency: int
    ) -> None:
        claim_size = self.options.claim_size or max(concurrency, 8)
        # Keep a second round of work claimed so calls never wait for a claim round trip.
        low_water = concurrency + claim_size
        deadline = (
            time.monotonic() + self.options.max_session_s if self.options.max_session_s else None
        )
        exhausted = False
        while self.halt is None:
            draining = deadline is not None and time.monotonic() > deadline
            if not exhausted and not draining and len(self.tasks) < low_water:
                claimed = await asyncio.to_thread(
                    claim_items,
                    self.engine,
                    plan.run_id,
                    self.token,
                    claim_size,
                    self.options.lease_seconds,
                )
                if self.halt is not None:
                    break
                if claimed:
                    self.stats.claimed += len(claimed)
                    prepared = await asyncio.to_thread(
                        prepare_items,
                        self.engine,
                        plan,
                        claimed,
                        self.cache,
                        max_claims=self.options.max_claims,
                    )
                    for item in prepared:
                        task = asyncio.create_task(self._judge(provider, plan, item, policy))
                        self.tasks.add(task)
                    continue
                exhausted = True
            if not self.tasks:
                if exhausted and not draining:
                    # Items may have been released or their leases expired meanwhile: look once
                    # more before ending the session.
                    exhausted = False
                    again = await asyncio.to_thread(
                        claim_items,
                        self.engine,
                        plan.run_id,
                        self.token,
                        claim_size,
                        self.options.lease_seconds,
                    )
                    if again:
                        self.stats.claimed += len(again)
                        prepared = await asyncio.to_thread(
                            prepare_items,
                            self.engine,
                            plan,
                            again,
                            self.cache,
                            max_claims=self.options.max_claims,
                        )
                        for item in prepared:
                            task = asyncio.create_task(self._judge(provider, plan, item, policy))
                            self.tasks.add(task)
                        continue
                return
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.status_check_s):
                    await self.wake.wait()

    async def _judge(
        self, provider: JudgeProvider, plan: RunPlan, item: PreparedItem, policy: RetryPolicy
    ) -> None:
        try:
            row = await judge_item(provider, plan, item, policy)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not wedge the run: record it on the verdict
            log.exception("judging work item %s failed unexpectedly", item.item_id)
            row = verdict_row(plan, item, status="error", error=f"internal error: {exc!r}")
        finally:
            task = asyncio.current_task()
            if task is not None:
                self.tasks.discard(task)
            self.wake.set()
        self.results.append(row)
        self.stats.finished += 1

    async def _flush(self, plan: RunPlan) -> None:
        async with self.write_lock:
            while self.results:
                batch, self.results = self.results, []
                try:
                    inserted = await self._write(plan, batch)
                except BaseException:
                    # Kept for the next attempt; rows stored meanwhile are skipped then.
                    self.results = batch + self.results
                    raise
                self.stats.inserted += inserted

    async def _write(self, plan: RunPlan, batch: list[dict[str, Any]]) -> int:
        try:
            return await asyncio.to_thread(write_verdicts, self.engine, plan.snapshot, batch)
        except DataError:  # a value the database refuses: find it, store the rest
            return await asyncio.to_thread(write_verdicts_one_by_one, self.engine, plan, batch)

    async def _flush_regularly(self, plan: RunPlan) -> None:
        while not self.closing.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.flush_interval_s):
                    await self.closing.wait()
            try:
                await self._flush(plan)
            except asyncio.CancelledError:
                raise
            except Exception:  # a transient database error: the rows stay queued for next time
                log.exception("writing verdicts failed; retrying")

    async def _watch(self, plan: RunPlan) -> None:
        """Notice cancellation or shutdown quickly, and keep this session's leases alive."""
        heartbeat_every = max(self.options.lease_seconds / 3.0, self.options.status_check_s)
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(self.options.status_check_s)
            try:
                if self.stop.is_set():
                    self.halt = "stopped"
                else:
                    status = await asyncio.to_thread(run_status, self.engine, plan.run_id)
                    if status not in ACTIVE_STATUSES:
                        self.halt = "cancelled" if status == "cancelled" else (status or "deleted")
                if self.halt is not None:
                    self.wake.set()
                    return
                if time.monotonic() - last_beat >= heartbeat_every:
                    await asyncio.to_thread(
                        extend_leases, self.engine, self.token, self.options.lease_seconds
                    )
                    last_beat = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database blinked: check again at the next tick
                log.exception("checking judge run %s failed", plan.run_id)
