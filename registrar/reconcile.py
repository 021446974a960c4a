"""Make Eureka hold what a container's wanted state says: register, re-register, deregister.

Correctness does not depend on job order. A job names only a source; it reads the wanted state as it
is *now*, under the source's lock, and compares it with what the registrar registered before. So two
jobs for one container in either order, or one job run twice, end in the same place, and a late
"started" cannot resurrect a container that already died: its job sees the death.

Every Eureka write to one instance happens under that instance's lock, shared with the heartbeater's
re-registration after a 404, so a re-registration cannot race a deregistration.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from shared import keys
from shared.eureka import EurekaClient, EurekaRejected
from shared.registration import Registration, registration
from shared.models import ContainerState, Phase
from shared.store import Store

log = logging.getLogger(__name__)

SWEEP_BATCH = 500
SWEEP_RETRY_SECONDS = 10


class Reconciler:
    def __init__(self, store: Store, eureka: EurekaClient) -> None:
        self.store = store
        self.eureka = eureka

    def reconcile(self, source: str, force: bool = False) -> None:
        with self.store.lock(keys.source_lock(source)):
            state, gen = self.store.read_state(source)
            wanted = self._wanted(state)
            tracked = self.store.tracked_instances(source)
            keep_in_eureka = state is not None and state.keep_registered
            for key in sorted(set(tracked) - set(wanted)):
                self._remove(key, source, delete=not keep_in_eureka)
            for key, wanted_registration in wanted.items():
                previous = tracked.get(key)
                previous_document = None if previous is None else previous.document
                if previous_document is not None and _only_status_differs(previous_document,
                                                                         wanted_registration.document):
                    self._change_status(key, source, wanted_registration)
                elif force or previous_document != wanted_registration.document:
                    self._register(key, source, wanted_registration, previous_document)
            self.store.mark_applied(source, gen)

    def _wanted(self, state: ContainerState | None) -> dict[str, Registration]:
        if state is None or state.phase is not Phase.RUNNING:
            return {}
        wanted: dict[str, Registration] = {}
        service_ids: dict[str, str] = {}
        for record in state.services:
            candidate = registration(record, state.status, host=state.host, ec2=state.ec2)
            for problem in candidate.problems:
                log.error("%s", problem)
            key = keys.instance_key(candidate.app, candidate.instance_id)
            if key in wanted:
                log.error("container %s (%s): services %s and %s would both be Eureka instance %s; "
                          "only the first is registered", state.container_name.lstrip("/"),
                          state.container_id[:12], service_ids[key], record.service_id, key)
                continue
            wanted[key] = candidate
            service_ids[key] = record.service_id
        return wanted

    def _register(self, key: str, source: str, wanted: Registration,
                  previous_document: dict[str, Any] | None) -> None:
        with self.store.lock(keys.instance_lock(key)):
            try:
                self.eureka.register(wanted.document)
                # A status this registrar set earlier through the override endpoint outlives a
                # re-registration in Eureka; bring it in line with the new document.
                if previous_document is not None and previous_document["status"] != wanted.document["status"]:
                    self._send_status(wanted)
            except EurekaRejected as err:
                log.error("Eureka refused instance %s of %s: %s", key, source, err)
                return
            previous = self.store.track(key, source, wanted.document, wanted.renewal_interval, time.time())
        if previous and previous != source:
            log.warning("instance %s moved from %s to %s", key, previous, source)
        log.info("registered %s (status %s) for %s", key, wanted.document["status"], source)

    def _change_status(self, key: str, source: str, wanted: Registration) -> None:
        """A status change alone goes through Eureka's status endpoints: no re-registration."""
        with self.store.lock(keys.instance_lock(key)):
            try:
                if not self._send_status(wanted):
                    self.eureka.register(wanted.document)
            except EurekaRejected as err:
                log.error("Eureka refused the status change of %s of %s: %s", key, source, err)
                return
            self.store.track(key, source, wanted.document, wanted.renewal_interval, time.time())
        log.info("status of %s is now %s (%s)", key, wanted.document["status"], source)

    def _send_status(self, wanted: Registration) -> bool:
        """Set the wanted status through the override endpoint. False if Eureka does not know the
        instance. The override then always mirrors what this registrar wants, UP included: clearing it
        instead (DELETE .../status) would do nothing to a status that came with the registration."""
        return self.eureka.set_status(wanted.app, wanted.instance_id, wanted.document["status"])

    def _remove(self, key: str, source: str, *, delete: bool) -> None:
        app, instance_id = keys.split_instance_key(key)
        with self.store.lock(keys.instance_lock(key)):
            instance = self.store.instance(key)
            owned = instance is not None and instance.source == source
            if delete and owned:
                try:
                    self.eureka.deregister(app, instance_id)
                except EurekaRejected as err:
                    log.error("Eureka refused to deregister %s of %s: %s", key, source, err)
            self.store.untrack(key, source)
        if delete and owned:
            log.info("deregistered %s for %s", key, source)
        else:
            log.info("stopped tracking %s for %s; lease expiry removes it from Eureka", key, source)

    def sweep_pending(self) -> list[str]:
        """Sources whose wanted state no registrar has applied for a while (their job failed, was lost
        with its worker, or is still queued): returned so they can be enqueued again."""
        return self.store.claim_due(keys.PENDING, time.time(), SWEEP_BATCH, SWEEP_RETRY_SECONDS)


def _only_status_differs(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return before["status"] != after["status"] and {**before, "status": after["status"]} == after
