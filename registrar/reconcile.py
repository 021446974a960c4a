"""Make Eureka hold what a container's wanted state says: register, re-register, deregister.

Correctness does not depend on order. A reconcile (of a change taken from the fast lane, or an RQ job)
names only a source; it reads the wanted state as it is *now*, under the source's lock, and compares it
with what the registrar registered before. So two reconciles of one container in either order, or one
run twice, end in the same place, and a late "started" cannot resurrect a container that already died:
it sees the death.

An instance has one owner. Two sources may derive the same Eureka instance (`APP/<hostName>_<port>`:
the same IP and port on two hosts, a hostName label, on purpose); the first owner keeps it as long as
it still wants it, and a second claimant is refused (one error line), stays pending, and takes over
only when the owner lets go: its container goes (the release requeues the claimants), or its watcher
does (the heartbeater, skipping the owner's renewal, requeues them). Deregistration never deletes an
instance another source owns.

Every Eureka write to one instance happens under that instance's lock, shared with the heartbeater's
re-registration after a 404, so a re-registration cannot race a deregistration. A state counts as
applied only when every one of its instances reached Eureka (or Eureka refused it as malformed, which
no retry can change); anything else leaves it pending, and the sweep retries it with backoff.

A service registered through an AWS load balancer makes its container a member of that ALB's record
(`registrar.albs.membership`), which is reconciled as a thing of its own (`registrar.albs.record`).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from functools import partial
from typing import Any, Iterator

from rq import Queue

from registrar.albs import alb_resolver
from registrar.albs.lookups import Lookups
from registrar.albs.membership import AlbMemberships, AlbPlan, AlbService
from registrar.albs.record import AlbRecords
from registrar.albs.resolver import AlbResolver
from shared import defaults, keys, logs, metrics, queues
from shared.alb import alb_intent, with_alb_endpoint
from shared.eureka import EurekaClient, EurekaRejected, EurekaUnavailable
from shared.locking import Locks
from shared.models import ContainerState, InstanceStatus, Phase
from shared.registration import Registration, registration
from shared.store import PreLocked, ReconcileStart, Store, TrackedInstance

log = logging.getLogger(__name__)

# States of one source applied by one reconcile at most, when its state keeps changing meanwhile; the
# job queued for the latest change applies the rest.
RECONCILE_ROUNDS = 3


class StateChanged(Exception):
    """The source's wanted state changed since the reconcile read it: what it was about to write is moot."""


class Reconciler:
    def __init__(self, store: Store, eureka: EurekaClient, queue: Queue, *,
                 min_renewal: int = defaults.MIN_RENEWAL_INTERVAL_SECONDS, resolver: AlbResolver | None = None) -> None:
        """`resolver` finds the AWS load balancers in front of services (AWS is asked only when a service
        wants one)."""
        self.store = store
        self.eureka = eureka
        self.queue = queue
        self.min_renewal = min_renewal
        self.locks = Locks(store, eureka.timeout, len(eureka.servers))
        resolver = resolver or alb_resolver(store.redis)
        self.albs = AlbMemberships(store, AlbRecords(store, eureka, self.locks, resolver), Lookups(resolver),
                                   self.requeue, min_renewal=min_renewal)

    def run_job(self, source: str, force: bool, job_id: str) -> bool:
        """A reconcile job: from its start on, a new change of the source needs a new job. True when the
        wanted state is applied."""
        return self.reconcile(source, force, job_id=job_id)

    def reconcile(self, source: str, force: bool = False, *, job_id: str = "") -> bool:
        """Converge Eureka to `source`'s wanted state; True when it is applied. A state that changes while
        it is applied is applied in turn (up to `RECONCILE_ROUNDS` states), and a write the newer state
        makes moot (a DOWN for a container that has died since) is skipped."""
        lock = keys.source_lock(source)

        def take(token: str, life_ms: int, _: object) -> ReconcileStart | None:  # the first lock a job takes
            return self.store.begin_reconcile(source, job_id, lock, token, life_ms)

        with self.locks.hold(lock, take) as start:
            for _ in range(RECONCILE_ROUNDS):
                try:
                    if not self._converge(source, start, force):
                        return False
                except StateChanged:
                    log.debug("%s: its state changed while it was applied; applying the new one", source)
                else:
                    if self.store.mark_applied(source, start.stored.gen):
                        return True
                start = self.store.read_reconcile(source)
            return False

    def _converge(self, source: str, start: ReconcileStart, force: bool) -> bool:
        """Apply one state; False when it is not (completely) applied. Raises StateChanged."""
        state, gen, tracked = start.stored.state, start.stored.gen, start.tracked
        wanted, alb_services = self._wanted(state)
        albs = AlbPlan()
        if state is not None and alb_services:
            albs = self.albs.plan(source, state, alb_services, _describe(source, state))
        wanted = {key: with_alb_endpoint(candidate, albs.endpoints[key]) if key in albs.endpoints else candidate
                  for key, candidate in wanted.items() if key not in albs.waiting}
        keep = state is not None and state.keep_registered
        # A forced re-registration applies no new event: it is not measured from the last one.
        event_time = None if force else start.stored.event_time
        complete = albs.settled
        prelocked = {start.prelocked.instance.key: start.prelocked} if start.prelocked else {}
        try:
            # A state that wants nothing removes every instance, so the one locked with the source (for
            # such a state only) is always used; it goes first: nothing has happened to it since.
            for key in sorted(set(tracked) - set(wanted) - albs.waiting, key=lambda key: (key not in prelocked, key)):
                self.remove(key, source, keep_in_eureka=keep, event_time=event_time, gen=gen,
                            prelocked=prelocked.pop(key, None))
            for key, wanted_registration in wanted.items():
                complete &= self._apply(key, source, wanted_registration, tracked.get(key), force, event_time, gen)
            self.albs.converge(source, albs)
        except EurekaUnavailable as err:
            log.warning("%s: Eureka unavailable, retrying later: %s", _describe(source, state), err,
                        extra=logs.about(source=source, container_name=state.container_name if state else None))
            return False
        return complete

    def requeue(self, source: str) -> None:
        queues.requeue_reconcile(self.store, self.queue, source)

    def sweep_pending(self) -> list[str]:
        """Enqueue again the sources whose wanted state no registrar has applied for a while (their job
        failed, was lost with its worker, or Eureka was unavailable); each backs off on its own."""
        sources = self.store.claim_pending(defaults.SWEEP_BATCH)
        for source in sources:
            self.requeue(source)
        return sources

    def leave_albs(self, source: str) -> None:
        """`source` is no longer a member of any ALB (its host is forgotten)."""
        self.albs.converge(source, AlbPlan())

    def _wanted(self, state: ContainerState | None, *,
                report: bool = True) -> tuple[dict[str, Registration], list[AlbService]]:
        """The container's own Eureka instances (before an ALB endpoint is added to them) and its services
        registered through an ALB."""
        if state is None or state.phase is not Phase.RUNNING:
            return {}, []
        wanted: dict[str, Registration] = {}
        service_ids: dict[str, str] = {}
        albs: list[AlbService] = []
        for record in state.services:
            decision = alb_intent(record)
            candidate = registration(record, state.status, host=state.host, ec2=state.ec2,
                                     min_renewal=self.min_renewal)
            own = decision.intent is None or not decision.intent.only_registration
            key = keys.instance_key(candidate.app, candidate.instance_id) if own else None
            # alb_intent words a problem registration() also finds the same way: each is logged once.
            problems = tuple(dict.fromkeys(decision.problems + (candidate.problems if own else ())))
            if report:
                for problem in problems:
                    log.error("%s", problem)
                if key in wanted:
                    log.error("container %s (%s): services %s and %s would both be Eureka instance %s; "
                              "only the first is registered", state.container_name.lstrip("/"),
                              state.container_id[:12], service_ids[key], record.service_id, key)
            if key in wanted:
                key = None
            if decision.intent is not None:
                albs.append(AlbService(record, decision.intent, problems, key))
            if key is not None:
                wanted[key] = candidate
                service_ids[key] = record.service_id
        return wanted, albs

    def _owner_wants(self, owner: str, key: str) -> bool:
        """Whether source `owner` still wants instance `key`: its container runs with that instance,
        and its watcher is alive to say so."""
        state, _ = self.store.read_state(owner)
        if state is None or key not in self._wanted(state, report=False)[0]:
            return False
        return self.store.is_live(owner) or self.store.host_is_served(keys.split_source(owner)[0])

    def _apply(self, key: str, source: str, wanted: Registration, tracked: TrackedInstance | None,
               force: bool, event_time: float | None, gen: str) -> bool:
        """Make Eureka hold `wanted` for `source`; False when another owner keeps the instance. Raises
        StateChanged when the source's state is no longer generation `gen`."""
        before = None if tracked is None else tracked.document
        if before == wanted.document and not force:
            return True
        with self._hold_instance(key, source, gen) as current:
            if current is not None and current.source != source:
                if self._owner_wants(current.source, key):
                    self._refuse(key, source, current.source)
                    return False
                self.locks.renew()
            about, extra = logs.about_instance(source, wanted.document, key)
            try:
                if before is not None and not force and _only_status_differs(before, wanted.document):
                    if not self.eureka.set_status(wanted.app, wanted.instance_id, wanted.document["status"]):
                        self.eureka.register(wanted.document)
                    written, action = "status", f"status of {key} is now {wanted.document['status']}"
                else:
                    self.eureka.register(wanted.document)
                    written, action = "register", f"registered {key} (status {wanted.document['status']})"
            except EurekaRejected as err:
                log.error("Eureka refused instance %s of %s: %s", key, about, err, extra=extra)
                return True
            _observe(written, event_time)
            previous = self.store.track(key, source, wanted.document, wanted.renewal_interval)
        if previous and previous != source:
            log.warning("instance %s taken over by %s from %s, which no longer wants it", key, about, previous,
                        extra=extra)
        log.info("%s for %s", action, about, extra=extra)
        return True

    @contextmanager
    def _hold_instance(self, key: str, source: str, gen: str | None,
                       prelocked: PreLocked | None = None) -> Iterator[TrackedInstance | None]:
        """Hold instance `key`'s lock, the other held locks renewed: the instance as tracked now. Raises
        StateChanged when `gen` is given and `source`'s state is no longer that generation (nothing is
        written for an outdated state). `prelocked`: the lock was taken with the source's lock a moment
        ago, which read the instance and the generation then."""
        if prelocked is not None:
            with self.locks.holding(keys.instance_lock(key), prelocked.token):
                yield prelocked.instance
            return
        take = partial(self.store.take_instance_lock, key, source, keys.instance_lock(key))
        with self.locks.hold(keys.instance_lock(key), take) as claim:
            if gen is not None and claim.state_gen != gen:
                raise StateChanged(source)
            yield claim.instance

    def _refuse(self, key: str, source: str, owner: str) -> None:
        if not self.store.add_claimant(key, source):
            return
        # As a new claimant joins, those that no longer want the instance are forgotten: the set never
        # outgrows the sources that really compete for it (the owner's release drops the whole set).
        for claimant in self.store.claimants([key]).get(key, set()) - {source}:
            if key not in self._wanted(self.store.read_state(claimant)[0], report=False)[0]:
                self.store.drop_claimant(key, claimant)
        state, _ = self.store.read_state(source)
        owner_state, _ = self.store.read_state(owner)
        log.error("Eureka instance %s is wanted by %s, but %s owns it and still wants it: not registered "
                  "for the second one until the first lets go", key, _describe(source, state),
                  _describe(owner, owner_state),
                  extra=logs.about(source=source, container_name=state.container_name if state else None,
                                   instance=key))

    def remove(self, key: str, source: str, *, keep_in_eureka: bool, event_time: float | None = None,
               gen: str | None = None, prelocked: PreLocked | None = None) -> None:
        """Stop registering `key` for `source`: delete it from Eureka, or with `keep_in_eureka` set it
        DOWN and leave it to lease expiry (no more heartbeats). Someone else's instance is left alone.
        `event_time`: when the Docker event that asked for it happened, if one did. With `gen`, raises
        StateChanged when `source`'s state is no longer that generation. `prelocked`: its lock, taken
        with the source's."""
        app, instance_id = keys.split_instance_key(key)
        with self._hold_instance(key, source, gen, prelocked) as instance:
            owned = instance is not None and instance.source == source
            about, extra = logs.about_instance(source, instance.document if owned and instance else None, key)
            if owned:
                try:
                    if keep_in_eureka:
                        self.eureka.set_status(app, instance_id, InstanceStatus.DOWN.value)
                    else:
                        self.eureka.deregister(app, instance_id)
                    _observe("deregister", event_time)
                except EurekaRejected as err:
                    log.error("Eureka refused to remove %s of %s: %s", key, about, err, extra=extra)
            untracked = self.store.untrack(key, source)
        if owned and keep_in_eureka:
            log.info("set %s DOWN for %s; lease expiry removes it from Eureka", key, about, extra=extra)
        elif owned:
            log.info("deregistered %s for %s", key, about, extra=extra)
        for claimant in untracked.claimants:
            log.info("instance %s is free: %s may take it", key, claimant,
                     extra=logs.about(source=claimant, instance=key))
            self.requeue(claimant)


def _describe(source: str, state: ContainerState | None) -> str:
    """`container web-1 (0123456789ab) on host host-a` for messages."""
    return logs.describe(source, state.container_name if state is not None else None)


def _observe(action: str, event_time: float | None) -> None:
    """Time from the Docker event to this Eureka write (see metrics.EVENT_TO_EUREKA on the clocks)."""
    if event_time is not None:
        metrics.EVENT_TO_EUREKA.labels(action).observe(max(0.0, time.time() - event_time))


def _only_status_differs(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return before["status"] != after["status"] and {**before, "status": after["status"]} == after
