"""The per-process versioned cache: concurrent misses on one key compute it once."""

from __future__ import annotations

import threading

import pytest

from app.core.memo import VersionedCache


def test_concurrent_misses_compute_once() -> None:
    cache: VersionedCache[int] = VersionedCache(4)
    started = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        started.set()
        release.wait(5)
        return 42

    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(cache.get_or_compute("k", compute)))
    first.start()
    started.wait(5)
    others = [
        threading.Thread(target=lambda: results.append(cache.get_or_compute("k", compute)))
        for _ in range(5)
    ]
    for thread in others:
        thread.start()
    while cache.waits < 5:  # every other caller is waiting for the first one
        threading.Event().wait(0.01)
    release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert results == [42] * 6
    assert len(calls) == 1
    assert (cache.misses, cache.hits) == (1, 5)


def test_a_failed_computation_is_not_cached_and_waiters_retry() -> None:
    cache: VersionedCache[int] = VersionedCache(4)

    def fail() -> int:
        raise RuntimeError("statement cancelled")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("k", fail)
    assert cache.get_or_compute("k", lambda: 7) == 7
    assert cache.get_or_compute("k", fail) == 7


def test_oldest_entries_age_out() -> None:
    cache: VersionedCache[int] = VersionedCache(2)
    for key in ("a", "b", "c"):
        cache.get_or_compute(key, lambda key=key: ord(key))
    assert cache.get_or_compute("a", lambda: -1) == -1
