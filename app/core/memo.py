"""A small per-process cache of derived figures keyed by a data version.

A key carries the version of the data it was computed from (max ids, counts, latest change
times), so a new label or verdict gives a new key and the old entry is never read again: there is
nothing to invalidate, only old entries to age out (least recently used first). Each web process
holds its own copy; a miss recomputes the same value.

Concurrent misses on one key compute it once: the first caller computes, the others wait for its
result (16 clients opening the same page after a new label cost one computation, not 16). When
the computation fails, each waiter computes for itself (and meets the same error if it holds).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class VersionedCache(Generic[V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._pending: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.waits = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
            pending = self._pending.get(key)
            if pending is None:
                self._pending[key] = threading.Event()
            else:
                self.waits += 1
        if pending is not None:
            pending.wait()
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return self._entries[key]
            return compute()  # the first caller failed: try once more here
        try:
            value = compute()
            with self._lock:
                self.misses += 1
                self._entries[key] = value
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
            return value
        finally:
            with self._lock:
                done = self._pending.pop(key, None)
            if done is not None:
                done.set()

    def peek(self, key: Hashable) -> V | None:
        """The entry under ``key`` when there is one (no computation)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
        return None

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
