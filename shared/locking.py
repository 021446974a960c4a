"""The Redis locks a worker holds while it writes to Eureka.

Each lock lasts only as long as the next Eureka write can take (`defaults.lock_seconds`) and is renewed
before every write, so a worker killed mid-job (kill -9, OOM, host gone) holds the others up for seconds,
not for the length of a job. A worker that finds it lost a lock (it stalled past the lock's life) stops:
`LockNotOwnedError` fails its job, and the state stays pending for a retry.

A lock is a Redis string holding its holder's token, with an expiry (as redis-py's `Lock`, which other
parts use for the same keys). Taking one can read, in the same round trip, what the holder needs
(`hold(name, take)`), and renews the locks the worker already holds. A busy lock is tried again after
a millisecond, then at growing intervals: the holder is usually done within a few.
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence, TypeVar

from redis.exceptions import LockError, LockNotOwnedError

from shared import defaults
from shared.store import Store

T = TypeVar("T")
# Takes lock `name` for a token, given the lock's life in ms and the locks held already; returns what it
# read, or None when another holder has the lock.
Take = Callable[[str, int, Sequence[tuple[str, str]]], T | None]


class Locks:
    def __init__(self, store: Store, eureka_timeout: float, eureka_servers: int) -> None:
        self.store = store
        self.seconds = defaults.lock_seconds(eureka_timeout, eureka_servers)
        self._life_ms = int(self.seconds * 1000)
        self._local = threading.local()

    @contextmanager
    def hold(self, name: str, take: Take[T] | None = None) -> Iterator[T | bool]:
        """Hold lock `name`, waiting for it up to `defaults.LOCK_WAIT_SECONDS` (then redis-py's LockError).
        With `take`, the lock is taken by `take(token, life_ms, held)`, and its answer is what this yields."""
        token = uuid.uuid4().hex
        taken = self._wait(name, token, take or self._take_plain(name), self._held())
        with self.holding(name, token):
            yield taken

    @contextmanager
    def holding(self, name: str, token: str) -> Iterator[None]:
        """Hold lock `name`, which `token` has taken already (with another lock, in one step)."""
        held = self._held()
        held.append((name, token))
        try:
            yield
        finally:
            held.pop()
            if not self.store.release_lock(name, token):
                raise LockNotOwnedError(f"lock {name} expired or was taken over before it was released")

    def renew(self) -> None:
        """Give every lock this thread holds its full life again, before an Eureka write."""
        self.store.renew_locks(self._held(), self._life_ms)

    def _wait(self, name: str, token: str, take: Take[T], held: list[tuple[str, str]]) -> T:
        deadline = time.monotonic() + defaults.LOCK_WAIT_SECONDS
        pause = defaults.LOCK_FIRST_RETRY_SECONDS
        while True:
            taken = take(token, self._life_ms, tuple(held))
            if taken is not None:
                return taken
            if time.monotonic() + pause > deadline:
                raise LockError(f"lock {name} still held by another worker after {defaults.LOCK_WAIT_SECONDS}s")
            time.sleep(pause)
            pause = min(pause * 2, defaults.LOCK_MAX_RETRY_SECONDS)

    def _take_plain(self, name: str) -> Take[bool]:
        return lambda token, life_ms, held: self.store.take_lock(name, token, life_ms, held) or None

    def _held(self) -> list[tuple[str, str]]:
        """The (name, token) of the locks this thread holds, innermost last."""
        if not hasattr(self._local, "held"):
            self._local.held = []
        return self._local.held
