"""Renew Eureka leases, but only for instances whose container the watcher still vouches for.

No liveness entry, no heartbeat: when a container hangs or its watcher or host dies, the entry
expires, renewals stop and Eureka evicts the instance by lease expiry (SPEC section 6). A renewal
answered 404 means Eureka lost the instance (restart, eviction): it is registered again, under the
instance lock the registrar also takes, and only if it is still tracked and live. An instance skipped
because its host's watcher is gone is free for the containers it was refused to: their reconciles are
requeued. An ALB's record has one entry in the schedule for the whole fleet; its renewal is
`registrar.albs.record.AlbRecords.renew`.

Each renewal is measured against when it was due (Redis time, handed over by the claim): one sent more
than a tenth of its interval late, beyond the ticker's own step (-tick), counts as missed (`shared.metrics`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rq import Queue

from registrar.albs import alb_resolver
from registrar.albs.record import AlbRecords
from registrar.albs.resolver import AlbResolver
from shared import defaults, keys, logs, metrics, queues
from shared.eureka import EurekaClient, EurekaError, EurekaUnavailable
from shared.locking import Locks
from shared.store import DueHeartbeats, HeartbeatTarget, Store, TrackedInstance

log = logging.getLogger(__name__)


class Heartbeater:
    def __init__(self, store: Store, eureka: EurekaClient, registrar_queue: Queue,
                 tick: float = defaults.HEARTBEAT_TICK_SECONDS, resolver: AlbResolver | None = None) -> None:
        """`resolver` answers an ALB's target health and whether its load balancer exists; `registrar_queue`
        takes the reconciles of containers refused an instance whose owner is gone."""
        self.store = store
        self.eureka = eureka
        self.registrar_queue = registrar_queue
        self.tick = tick
        self.locks = Locks(store, eureka.timeout, len(eureka.servers))
        self.albs = AlbRecords(store, eureka, self.locks, resolver or alb_resolver(store.redis))

    def due(self, limit: int) -> DueHeartbeats:
        """Claim the instances whose heartbeat is due now."""
        return self.store.claim_heartbeats(limit)

    def beat(self, instance_keys: list[str], due: list[float] | None = None) -> bool:
        """Renew what is still vouched for among `instance_keys` (due at the Redis times `due`); False when
        Eureka was unavailable and the rest of the batch was left for its next turn."""
        clock = _RedisClock(self.store) if due else None
        due_at = dict(zip(instance_keys, due or ()))
        albs = [alb for alb in map(keys.alb_of_schedule_entry, instance_keys) if alb is not None]
        if albs:
            instance_keys = [key for key in instance_keys if keys.alb_of_schedule_entry(key) is None]
        targets = self.store.heartbeat_targets(instance_keys)
        self._free_for_claimants([target for target in targets if not target.live])
        for done, target in enumerate(targets):
            key = target.key
            if not target.live:
                metrics.HEARTBEATS.labels("not_vouched").inc()
                if log.isEnabledFor(logging.DEBUG):
                    about, extra = self._about(target)
                    log.debug("no heartbeat for %s: %s is not vouched for", key, about, extra=extra)
                continue
            if clock is not None and key in due_at:
                self._measure(clock.now() - due_at[key], target.interval)
            app, instance_id = keys.split_instance_key(key)
            try:
                renewed = self.eureka.heartbeat(app, instance_id)
                if not renewed:
                    self._register_again(key)
            except EurekaUnavailable as err:
                # The next ones would wait out the same timeouts; their next turn comes soon enough.
                metrics.HEARTBEATS.labels("skipped").inc(len(targets) - done)
                log.error("Eureka unavailable, %d heartbeats of this batch skipped: %s", len(targets) - done, err)
                return False
            except EurekaError as err:
                metrics.HEARTBEATS.labels("failed").inc()
                about, extra = self._about(target)
                log.error("heartbeat of %s (%s) failed: %s", key, about, err, extra=extra)
                continue
            metrics.HEARTBEATS.labels("renewed" if renewed else "not_found").inc()
        return self._renew_albs(albs)

    def _renew_albs(self, albs: list[str]) -> bool:
        """After the containers' renewals: an ALB's may wait for AWS (its health, its existence)."""
        for done, key in enumerate(albs):
            try:
                self.albs.renew(key)
            except EurekaUnavailable as err:
                log.error("Eureka unavailable, %d ALB renewals of this batch skipped: %s", len(albs) - done, err)
                return False
            except EurekaError as err:
                log.error("renewal of ALB %s failed: %s", key, err)
        return True

    def _free_for_claimants(self, unvouched: list[HeartbeatTarget]) -> None:
        """An owner nobody vouches for, on a host no watcher serves, no longer wants its instance: the
        containers refused it may take it now, not only at their next retry (up to minutes into a backoff).
        One read for the claimants of the whole batch; hosts are asked only for instances that have some."""
        claimed = self.store.claimants([target.key for target in unvouched]) if unvouched else {}
        owners = {target.key: target.source for target in unvouched if target.key in claimed}
        if not owners:
            return
        served = self.store.served_hosts(sorted({keys.split_source(source)[0] for source in owners.values()}))
        for key, owner in owners.items():
            if served[keys.split_source(owner)[0]]:
                continue
            for claimant in sorted(claimed[key]):
                log.info("instance %s: its owner %s is gone with its watcher; %s may take it", key, owner,
                         claimant, extra=logs.about(source=claimant, instance=key))
                queues.requeue_reconcile(self.store, self.registrar_queue, claimant)

    def _register_again(self, key: str) -> None:
        with self.locks.hold(keys.instance_lock(key)):
            instance = self.store.instance(key)
            if instance is None or not self.store.is_live(instance.source):
                return
            self.eureka.register(instance.document)
        about, extra = _about(instance)
        log.info("re-registered %s: Eureka answered 404 to its heartbeat (%s)", key, about, extra=extra)

    def _about(self, target: HeartbeatTarget) -> tuple[str, dict[str, Any]]:
        """For a message: the container behind the instance, named from its registration (read for the
        message: renewals themselves read no document)."""
        instance = self.store.instance(target.key)
        return logs.about_instance(target.source, instance.document if instance else None, target.key)

    def _measure(self, lateness: float, interval: int | None) -> None:
        metrics.HEARTBEAT_LATENESS.observe(max(0.0, lateness))
        # Measuring must never fail a renewal: an instance without a recorded interval counts with the default.
        interval = interval or defaults.DEFAULT_RENEWAL_INTERVAL_SECONDS
        # A ticker claims what is due once per tick: that much lateness is by design.
        if lateness > interval * defaults.HEARTBEAT_LATE_FRACTION + self.tick:
            metrics.HEARTBEATS_MISSED.inc()


class _RedisClock:
    """Redis time, asked once: the job's own clock is not the one the due times are in."""

    def __init__(self, store: Store) -> None:
        self._offset = store.now() - time.monotonic()

    def now(self) -> float:
        return time.monotonic() + self._offset


def _about(instance: TrackedInstance) -> tuple[str, dict[str, Any]]:
    return logs.about_instance(instance.source, instance.document, instance.key)
