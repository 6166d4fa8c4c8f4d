"""The drift import's parsing pool starts only after its first chunks were checked inline."""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor

import pytest

from app.drift.jobs import DeferredPool


def _double(value: int) -> int:
    if value < 0:
        raise ValueError("negative")
    return value * 2


def test_first_tasks_run_inline_and_the_pool_starts_for_the_rest() -> None:
    started: list[Executor] = []

    def start() -> Executor:
        started.append(ThreadPoolExecutor(2))
        return started[-1]

    pool = DeferredPool(2, 3, start)
    inline = [pool.submit(_double, n) for n in range(3)]
    assert all(future.done() for future in inline) and not pool.started and not started
    later = [pool.submit(_double, n) for n in range(3, 6)]
    assert pool.started and len(started) == 1
    assert [f.result() for f in inline + later] == [0, 2, 4, 6, 8, 10]
    pool.shutdown()


def test_an_inline_error_comes_back_in_its_future() -> None:
    pool = DeferredPool(1, 1, lambda: pytest.fail("the pool must not start"))
    future = pool.submit(_double, -1)
    with pytest.raises(ValueError, match="negative"):
        future.result()
    pool.shutdown()  # nothing started, nothing to stop


def test_without_an_inline_budget_the_pool_starts_at_once() -> None:
    pool = DeferredPool(2, 0, lambda: ThreadPoolExecutor(1))
    assert not pool.started
    assert pool.submit(_double, 4).result() == 8 and pool.started
    pool.shutdown()
