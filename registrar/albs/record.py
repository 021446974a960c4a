"""An ALB's Eureka record, as its own thing to reconcile (SPEC section 5).

Its instance key is `<APP>/<dns name>_<port>`; its members (the reference set, `reg:alb:<key>:members`) are the
sources, on any host, whose services sit behind it. Eureka holds the record while at least one member is live
(its watcher vouches for it: running, not unhealthy, not being stopped, the watcher alive) and the load
balancer exists; its status follows the target group's health. Every change happens under the instance's
lock (the one container instances take too) in a container's reconcile steps: read what is wanted (live
members, health, existence), read what is tracked (`reg:alb:<key>`), converge Eureka, record what it holds.

- The registrar changes memberships as containers come and go (`join`, `leave`): the first live member
  registers the record, the last one leaving deletes it at once. Under the lock, two hosts losing their last
  members at the same moment take turns, and the second one sees nobody left; a member that joins while the
  last one leaves either comes first (the record stays) or registers it again after.
- The heartbeater renews it once per interval for the whole fleet (`renew`: one entry in the heartbeat
  schedule, however many members) and checks there what no container event tells: a deleted load balancer
  (the record is deleted, never renewed again, and its members look for their ALB again), the target health
  (a status change), and members whose watcher died (liveness expired). With no live member left the record
  is deleted at once; it stays in the schedule while it has members, so the first renewal that finds one
  live again registers it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from registrar.albs.resolver import AlbResolver, Unknown
from shared import keys
from shared.alb import AlbEndpoint, alb_status, with_alb_health
from shared.eureka import EurekaClient, EurekaRejected
from shared.locking import Locks
from shared.models import InstanceStatus
from shared.store import AlbRecord, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlbMember:
    """What a member brings: the ALB's document (`alb_registration` for UP), its endpoint, and how many
    healthy targets its lookup saw (None: AWS did not say)."""

    document: dict[str, Any]
    endpoint: AlbEndpoint
    healthy_targets: int | None

    @property
    def interval(self) -> int:
        return self.document["leaseInfo"]["renewalIntervalInSecs"]


class AlbRecords:
    def __init__(self, store: Store, eureka: EurekaClient, locks: Locks, resolver: AlbResolver) -> None:
        self.store = store
        self.eureka = eureka
        self.locks = locks
        self.resolver = resolver

    def join(self, key: str, source: str, member: AlbMember) -> None:
        """Make `source` a member of ALB `key`. The record is registered when Eureka does not hold it yet, and
        registered again when this member's document differs (the last one to join wins). (A re-sync's
        forced re-registration does not apply: Redis holds no record after losing its data, and a record
        Eureka lost is registered again by its next renewal.)"""
        with self.locks.hold(keys.instance_lock(key)):
            self.store.set_alb_membership(key, source, True)
            record = self.store.alb(key)
            if (record is not None and record.registered and record.document == member.document
                    and record.endpoint == member.endpoint):
                return
            previous = record.health if record is not None else None
            health = (previous or InstanceStatus.STARTING) if member.healthy_targets is None else alb_status(
                member.healthy_targets, previous)
            if not self.store.live_sources(self.store.alb_members(key)):
                # Its watcher stopped vouching since: the renewal registers the record once a member is live.
                if record is None:
                    self.store.save_alb(key, member.document, member.endpoint, health, member.interval,
                                        registered=False)
                return
            document = with_alb_health(member.document, health)
            if not self._register(key, document):
                return
            self.store.save_alb(key, member.document, member.endpoint, health, member.interval)
        log.info("registered ALB %s (status %s) for %s", key, document["status"], source)

    def leave(self, key: str, source: str) -> None:
        """`source` is no longer a member of ALB `key`; when no live member is left, the record is deleted
        from Eureka at once."""
        with self.locks.hold(keys.instance_lock(key)):
            others = self.store.alb_members(key) - {source}
            if self.store.live_sources(others):
                self.store.set_alb_membership(key, source, False)
                return
            record = self.store.alb(key)
            registered = record is not None and record.registered
            if registered or record is None:  # without a record: one a crash kept from being recorded, if any
                self._delete(key)
            self.store.set_alb_membership(key, source, False)
            self.store.withdraw_alb(key)
        if registered:
            log.info("deleted ALB %s: %s was its last live container", key, source)

    def renew(self, key: str) -> None:
        """The ALB's turn in the heartbeat schedule: delete it if its load balancer is gone or no member is
        live; otherwise follow its target health and renew its lease (registering it again on 404)."""
        # AWS is asked before the lock is taken: an answer may take seconds, the lock lasts one Eureka write.
        seen = self.store.alb(key)
        exists: bool | Unknown | None = None
        healthy: int | Unknown | None = None
        if seen is not None:
            exists = self.resolver.exists(seen.endpoint)
            if exists is not False and self.store.live_sources(self.store.alb_members(key)):
                healthy = self.resolver.healthy_targets(seen.endpoint)
        with self.locks.hold(keys.instance_lock(key)):
            record = self.store.alb(key)
            if record is None:
                self.store.withdraw_alb(key)
                return
            if seen is None or record.endpoint != seen.endpoint:
                return  # registered by a member since: checked at its next turn
            members = self.store.alb_members(key)
            if exists is False:
                self._delete(key)
                self.store.drop_alb(key, members)
                log.warning("deleted ALB %s: load balancer %s no longer exists; %d containers look for their "
                            "ALB again", key, record.endpoint.load_balancer_arn, len(members))
                return
            if not self.store.live_sources(members):
                if record.registered:
                    self._delete(key)
                    log.info("deleted ALB %s: none of its %d containers is vouched for any more", key,
                             len(members))
                self.store.withdraw_alb(key)
                return
            self._renew(record, healthy)

    def _renew(self, record: AlbRecord, healthy: int | Unknown | None) -> None:
        """Renew the lease of an ALB with a live member (`healthy`: its healthy targets, if known)."""
        key = record.key
        health = alb_status(healthy, record.health) if isinstance(healthy, int) else record.health
        document = with_alb_health(record.document, health)
        app, instance_id = keys.split_instance_key(key)
        if not record.registered:
            if self._register(key, document):
                self.store.save_alb(key, record.document, record.endpoint, health, record.interval)
                log.info("registered ALB %s again (status %s): a container behind it is vouched for again",
                         key, document["status"])
            return
        self.locks.renew()
        if health is not record.health:
            if not self.eureka.set_status(app, instance_id, document["status"]):
                self._register(key, document)
            self.store.set_alb_health(key, health)
            log.info("ALB %s is now %s: %s healthy targets", key, document["status"], healthy)
        if not self.eureka.heartbeat(app, instance_id):
            self._register(key, document)
            log.info("re-registered ALB %s: Eureka answered 404 to its heartbeat", key)

    def _register(self, key: str, document: dict[str, Any]) -> bool:
        """POST the document; False when Eureka refuses it as malformed (logged; no retry can change that)."""
        self.locks.renew()
        try:
            self.eureka.register(document)
        except EurekaRejected as err:
            log.error("Eureka refused ALB %s: %s", key, err)
            return False
        return True

    def _delete(self, key: str) -> None:
        self.locks.renew()
        try:
            self.eureka.deregister(*keys.split_instance_key(key))
        except EurekaRejected as err:
            log.error("Eureka refused to delete ALB %s: %s", key, err)
