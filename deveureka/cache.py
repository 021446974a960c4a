"""Response cache for the registry-wide reads, standing in for Netflix's 30 s read-only cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ResponseCache(Generic[V]):
    """Serves a built value until it is ``seconds`` old; ``seconds`` <= 0 disables caching."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, V]] = {}

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        if self._seconds <= 0:
            return build()
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < self._seconds:
                return entry[1]
        value = build()
        with self._lock:
            self._entries[key] = (now, value)
        return value
