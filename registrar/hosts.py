"""Forgetting hosts whose watcher is gone for good, so nothing in Redis grows without bound.

A host that dies leaves its containers' states, its tracked instances and their heartbeat schedule in
Redis. Once its watcher has not been seen for longer than its liveness TTL plus twice the longest
lease among its instances plus a margin (by then Netflix Eureka has evicted every one of them, unless
self-preservation kept them), its instances are deleted from Eureka (for the registries that kept
them), leave the heartbeat schedule, its containers leave the ALBs they were members of, and the host
is forgotten. Found through the `reg:hosts` index,
never by scanning keys. A watcher that comes back later notices Redis lost its states and publishes
them again.
"""

from __future__ import annotations

import logging

from registrar.reconcile import Reconciler
from shared import keys

log = logging.getLogger(__name__)


def forget_dead_hosts(reconciler: Reconciler, margin: float) -> list[str]:
    """Forget every host whose watcher is gone for good; returns their names."""
    store = reconciler.store
    now = store.now()
    forgotten = []
    for host, last_seen in store.hosts_unseen_since(now - margin):
        if store.host_is_served(host):
            continue
        lock = store.lock(keys.host_lock(host), reconciler.locks.seconds)
        if not lock.acquire(blocking=False):
            continue
        try:
            if _forget(reconciler, host, last_seen, now, margin):
                forgotten.append(host)
        finally:
            lock.release()
    return forgotten


def _forget(reconciler: Reconciler, host: str, last_seen: float, now: float, margin: float) -> bool:
    store = reconciler.store
    sources = sorted(store.host_sources(host))
    instances = {key: instance for source in sources for key, instance in store.tracked_instances(source).items()}
    longest_lease = max((instance.document["leaseInfo"]["durationInSecs"] for instance in instances.values()),
                        default=0)
    unseen_for = now - last_seen
    if unseen_for < store.host_ttl(host) + 2 * longest_lease + margin:
        return False
    for key, instance in sorted(instances.items()):
        reconciler.remove(key, instance.source, keep_in_eureka=False)
    for source in sources:
        reconciler.leave_albs(source)
    if not store.forget_host(host, last_seen):
        return False
    log.info("forgot host %s: its watcher was last seen %.0fs ago; %d containers and %d instances dropped",
             host, unseen_for, len(sources), len(instances))
    return True
