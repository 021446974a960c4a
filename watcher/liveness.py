"""The liveness entries this watcher vouches with, and the checks that ride on their renewal.

Every -ttl-refresh seconds the watcher lists the host's containers once and, in one Redis round trip,
renews the liveness entry of every container it vouches for that Docker still lists as running,
renews its lease on the host identity and its "last seen" time, and compares Redis's count of the
changes it published with its own. A different count means Redis lost or rolled back data (restarted
empty, flushed, restored from an older snapshot, a replica promoted before it caught up): the caller
publishes the whole host again. When Docker does not answer, nothing is renewed and the entries
expire: heartbeats stop for every container nobody can vouch for.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from shared import keys, metrics
from shared.store import Lease, Published, Store
from watcher.engine import DockerEngine

log = logging.getLogger(__name__)


class IdentityLost(Exception):
    """Another watcher took this host's identity (this one failed to renew it for a whole TTL)."""


@dataclass(frozen=True)
class RenewalResult:
    listing: list[dict[str, Any]]
    intact: bool


class Liveness:
    def __init__(self, store: Store, host: str, token: str, ttl: int, published_seq: int) -> None:
        self.store = store
        self.host = host
        self.token = token
        self.ttl = ttl
        self.lock = threading.Lock()
        self._vouched: set[str] = set()
        self._seq = published_seq

    def note(self, container_id: str, vouched: bool, published: Published) -> None:
        """Record a publish; the caller holds `lock` around the publish and this call, so a renewal
        never compares the change counter halfway through."""
        if vouched:
            self._vouched.add(container_id)
        else:
            self._vouched.discard(container_id)
        self._seq = published.seq

    def withdraw(self, container_id: str) -> None:
        with self.lock:
            self._vouched.discard(container_id)

    def is_vouched(self, container_id: str) -> bool:
        return container_id in self._vouched

    def renew(self, engine: DockerEngine) -> RenewalResult:
        """Renew what Docker confirms running; return Docker's listing of every container and whether
        Redis still holds every change this watcher published. Raises IdentityLost."""
        listing = engine.containers()
        running = {entry["Id"] for entry in listing if entry.get("State") == "running"}
        with self.lock:
            sources = [keys.source(self.host, container_id) for container_id in self._vouched & running]
            renewal = self.store.renew_liveness(self.host, self.token, sources, self.ttl, self._seq)
        metrics.LIVENESS_ENTRIES.set(len(sources))
        if renewal.lease is Lease.TAKEN:
            raise IdentityLost(f"another watcher ({self.store.host_holder(self.host)}) took host identity "
                               f"{self.host!r} while this one could not renew it")
        return RenewalResult(listing, renewal.intact)
