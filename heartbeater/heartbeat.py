"""Renew Eureka leases, but only for instances whose container the watcher still vouches for.

No liveness entry, no heartbeat: when a container hangs or its watcher or host dies, the entry
expires, renewals stop and Eureka evicts the instance by lease expiry (SPEC section 6). A renewal
answered 404 means Eureka lost the instance (restart, eviction): it is registered again, under the
instance lock the registrar also takes, and only if it is still tracked and live.
"""

from __future__ import annotations

import logging

from shared import keys
from shared.eureka import EurekaClient, EurekaError, EurekaUnavailable
from shared.locking import Locks
from shared.store import Store

log = logging.getLogger(__name__)


class Heartbeater:
    def __init__(self, store: Store, eureka: EurekaClient) -> None:
        self.store = store
        self.eureka = eureka
        self.locks = Locks(store, eureka.timeout, len(eureka.servers))

    def due(self, limit: int) -> tuple[list[str], float]:
        """Claim the instances whose heartbeat is due now; also the shortest of their intervals."""
        return self.store.claim_heartbeats(limit)

    def beat(self, instance_keys: list[str]) -> None:
        targets = self.store.heartbeat_targets(instance_keys)
        for done, target in enumerate(targets):
            key = target.instance.key
            if not target.live:
                log.debug("no heartbeat for %s: %s is not vouched for", key, target.instance.source)
                continue
            app, instance_id = keys.split_instance_key(key)
            try:
                if not self.eureka.heartbeat(app, instance_id):
                    self._register_again(key)
            except EurekaUnavailable as err:
                # The next ones would wait out the same timeouts; their next turn comes soon enough.
                log.error("Eureka unavailable, %d heartbeats of this batch skipped: %s", len(targets) - done, err)
                return
            except EurekaError as err:
                log.error("heartbeat of %s failed: %s", key, err)

    def _register_again(self, key: str) -> None:
        with self.locks.hold(keys.instance_lock(key)):
            instance = self.store.instance(key)
            if instance is None or not self.store.is_live(instance.source):
                return
            self.eureka.register(instance.document)
        log.info("re-registered %s: Eureka answered 404 to its heartbeat", key)
