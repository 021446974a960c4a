"""The Redis locks a worker holds while it writes to Eureka.

Each lock lasts only as long as the next Eureka write can take (`defaults.lock_seconds`) and is renewed
before every write, so a worker killed mid-job (kill -9, OOM, host gone) holds the others up for seconds,
not for the length of a job. A worker that finds it lost a lock (it stalled past the lock's life) stops:
`LockNotOwnedError` fails its job, and the state stays pending for a retry.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from redis.lock import Lock

from shared import defaults
from shared.store import Store


class Locks:
    def __init__(self, store: Store, eureka_timeout: float, eureka_servers: int) -> None:
        self.store = store
        self.seconds = defaults.lock_seconds(eureka_timeout, eureka_servers)
        self._held: list[Lock] = []

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Hold lock `name`, waiting for it up to `defaults.LOCK_WAIT_SECONDS` (then redis-py's LockError)."""
        with self.store.lock(name, self.seconds) as lock:
            self._held.append(lock)
            try:
                yield
            finally:
                self._held.pop()

    def renew(self) -> None:
        """Give every held lock its full life again, before an Eureka write."""
        for lock in self._held:
            lock.reacquire()
