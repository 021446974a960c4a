"""Netflix's response cache for the registry-wide reads: /apps, /apps/delta and /apps/{APP}.

Two levels, as in Netflix's ResponseCacheImpl:

- the read-write level builds an answer on demand and keeps it until a change invalidates it, or
  for at most 180 s after it was built (heartbeats change lease timestamps without invalidating);
- the read-only level is what requests are served from. A key read for the first time is filled
  from the read-write level at once; after that it only changes when a timer, every
  ``update_interval`` seconds on the wall-clock multiples of that interval, copies the read-write
  level over it. So a change shows in a key already read at the next tick, up to one interval later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

READ_WRITE_EXPIRY_SECS = 180.0  # Netflix's responseCacheAutoExpirationInSeconds


class ResponseCache(Generic[K, V]):
    """``update_interval`` <= 0 turns caching off: every read is built fresh."""

    def __init__(
        self,
        update_interval: float,
        build: Callable[[K], V],
        *,
        read_write_expiry: float = READ_WRITE_EXPIRY_SECS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._interval = update_interval
        self._build = build
        self._expiry = read_write_expiry
        self._clock = clock
        # Builds run under the lock; the registry tells of changes outside its own lock, so the
        # two locks are never waited for in opposite orders.
        self._lock = threading.Lock()
        self._read_only: dict[K, V] = {}
        self._read_write: dict[K, tuple[float, V]] = {}
        self._stopped = threading.Event()
        self._timer = threading.Thread(target=self._run, name="deveureka-cache", daemon=True)

    @property
    def enabled(self) -> bool:
        return self._interval > 0

    def get(self, key: K) -> V:
        if not self.enabled:
            return self._build(key)
        with self._lock:
            if key not in self._read_only:
                self._read_only[key] = self._read_write_value(key)
            return self._read_only[key]

    def invalidate(self, matches: Callable[[K], bool]) -> None:
        """Drop the read-write answers of the keys that ``matches``; reads see that at the next
        tick."""
        with self._lock:
            for key in [key for key in self._read_write if matches(key)]:
                del self._read_write[key]

    def refresh(self) -> None:
        """One timer tick: every key read so far gets the read-write level's current answer."""
        with self._lock:
            for key in list(self._read_only):
                self._read_only[key] = self._read_write_value(key)

    def start(self) -> None:
        if self.enabled:
            self._timer.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._timer.is_alive():
            self._timer.join(timeout=5)

    def _read_write_value(self, key: K) -> V:
        now = self._clock()
        entry = self._read_write.get(key)
        if entry is None or now - entry[0] >= self._expiry:
            entry = (now, self._build(key))
            self._read_write[key] = entry
        return entry[1]

    def _run(self) -> None:
        while not self._stopped.wait(self._until_next_tick()):
            self.refresh()

    def _until_next_tick(self) -> float:
        now = self._clock()
        return (now // self._interval + 1) * self._interval - now
