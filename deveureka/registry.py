"""In-memory registry: instances per app, leases, status overrides and eviction.

Status handling follows Netflix's registry (AbstractInstanceRegistry and its override rules);
lease expiry does not reproduce Netflix's doubled duration (see README).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from enum import Enum

from deveureka.instance import ADDED, MODIFIED, OUT_OF_SERVICE, UNKNOWN, UP, Instance, Lease

log = logging.getLogger(__name__)


class RenewOutcome(Enum):
    RENEWED = "renewed"
    NOT_FOUND = "not registered"
    STATUS_UNKNOWN = "status is UNKNOWN, the client must register again"
    CLIENT_NEWER = "client's lastDirtyTimestamp is newer than the registry's"


def effective_status(requested: str, override: str | None, existing: str | None) -> str:
    """Netflix's rule chain: DownOrStarting, OverrideExists, LeaseExists, else as requested."""
    if requested not in (UP, OUT_OF_SERVICE):
        return requested
    if override is not None:
        return override
    if existing in (UP, OUT_OF_SERVICE):
        return existing
    return requested


class Registry:
    """Thread-safe store. Every read returns copies, so callers never see later changes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.RLock()
        self._apps: dict[str, dict[str, Instance]] = {}
        self._overrides: dict[tuple[str, str], str] = {}
        self._clock = clock

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def register(self, instance: Instance) -> None:
        with self._lock:
            self._register(copy.deepcopy(instance))

    def cancel(self, app: str, instance_id: str) -> bool:
        with self._lock:
            return self._remove(app, instance_id)

    def renew(self, app: str, instance_id: str, client_dirty_ts: int | None = None) -> RenewOutcome:
        with self._lock:
            instance = self._get(app, instance_id)
            if instance is None:
                return RenewOutcome.NOT_FOUND
            override = self._overrides.get((app, instance_id))
            status = effective_status(instance.status, override, instance.status)
            if status == UNKNOWN:
                return RenewOutcome.STATUS_UNKNOWN
            instance.status = status
            instance.lease.last_renewal_ts = self.now_ms()
            if client_dirty_ts is not None and client_dirty_ts > instance.last_dirty_ts:
                return RenewOutcome.CLIENT_NEWER
            return RenewOutcome.RENEWED

    def set_status(
        self, app: str, instance_id: str, status: str, client_dirty_ts: int | None = None
    ) -> bool:
        """PUT .../status: records an override; setting the current status changes nothing."""
        with self._lock:
            instance, now = self._touch(app, instance_id)
            if instance is None:
                return False
            if instance.status != status:
                if status == UP and instance.lease.service_up_ts == 0:
                    instance.lease.service_up_ts = now
                self._overrides[(app, instance_id)] = status
                instance.overridden_status = status
                instance.status = status
                self._modified(instance, client_dirty_ts, now)
            return True

    def delete_status_override(
        self, app: str, instance_id: str, status: str, client_dirty_ts: int | None = None
    ) -> bool:
        """DELETE .../status: drops the override and sets ``status``; a no-op without one."""
        with self._lock:
            instance, now = self._touch(app, instance_id)
            if instance is None:
                return False
            if self._overrides.pop((app, instance_id), None) is not None:
                instance.overridden_status = UNKNOWN
                instance.status = status
                self._modified(instance, client_dirty_ts, now)
            return True

    def _touch(self, app: str, instance_id: str) -> tuple[Instance | None, int]:
        """The instance, its lease renewed as Netflix renews it on a status request, and the time."""
        instance = self._get(app, instance_id)
        now = self.now_ms()
        if instance is not None:
            instance.lease.last_renewal_ts = now
        return instance, now

    def merge_metadata(self, app: str, instance_id: str, items: dict[str, str]) -> bool:
        """PUT .../metadata: merges, then re-registers the instance as Netflix does."""
        with self._lock:
            instance = self._get(app, instance_id)
            if instance is None:
                return False
            updated = copy.deepcopy(instance)
            updated.metadata.update(items)
            self._register(updated)
            return True

    def evict_expired(self) -> list[tuple[str, str]]:
        """Remove instances not renewed within their lease duration; return (app, id) removed."""
        with self._lock:
            now = self.now_ms()
            expired = [
                (app, instance_id)
                for app, instances in self._apps.items()
                for instance_id, instance in instances.items()
                if now > instance.lease.last_renewal_ts + instance.lease.duration_secs * 1000
            ]
            for app, instance_id in expired:
                self._remove(app, instance_id)
            return expired

    def applications(self) -> list[tuple[str, list[Instance]]]:
        with self._lock:
            return [(app, self._sorted_copies(app)) for app in sorted(self._apps)]

    def application(self, app: str) -> list[Instance] | None:
        with self._lock:
            return self._sorted_copies(app) if app in self._apps else None

    def instance(self, app: str, instance_id: str) -> Instance | None:
        with self._lock:
            return copy.deepcopy(self._get(app, instance_id))

    def find_instance(self, instance_id: str) -> Instance | None:
        """The instance with this id in any app (GET /instances/{id})."""
        with self._lock:
            for app in sorted(self._apps):
                if instance_id in self._apps[app]:
                    return copy.deepcopy(self._apps[app][instance_id])
            return None

    def _register(self, instance: Instance) -> None:
        now = self.now_ms()
        key = (instance.app, instance.instance_id)
        existing = self._get(*key)
        if existing is not None and existing.last_dirty_ts > instance.last_dirty_ts:
            log.warning(
                "%s/%s: registry copy is newer (lastDirtyTimestamp %d > %d); keeping it",
                *key,
                existing.last_dirty_ts,
                instance.last_dirty_ts,
            )
            instance = copy.deepcopy(existing)
        if instance.overridden_status != UNKNOWN:
            self._overrides.setdefault(key, instance.overridden_status)
        override = self._overrides.get(key)
        instance.overridden_status = override or UNKNOWN
        instance.status = effective_status(
            instance.status, override, existing.status if existing else None
        )
        instance.lease = Lease(
            renewal_interval_secs=instance.lease.renewal_interval_secs,
            duration_secs=instance.lease.duration_secs,
            registration_ts=now,
            last_renewal_ts=now,
            service_up_ts=existing.lease.service_up_ts if existing else 0,
        )
        if instance.status == UP and instance.lease.service_up_ts == 0:
            instance.lease.service_up_ts = now
        instance.action_type = ADDED
        instance.last_updated_ts = now
        self._apps.setdefault(instance.app, {})[instance.instance_id] = instance

    def _modified(self, instance: Instance, client_dirty_ts: int | None, now: int) -> None:
        if client_dirty_ts is not None and client_dirty_ts > instance.last_dirty_ts:
            instance.last_dirty_ts = client_dirty_ts
        instance.action_type = MODIFIED
        instance.last_updated_ts = now

    def _get(self, app: str, instance_id: str) -> Instance | None:
        return self._apps.get(app, {}).get(instance_id)

    def _remove(self, app: str, instance_id: str) -> bool:
        instances = self._apps.get(app)
        if instances is None or instances.pop(instance_id, None) is None:
            return False
        if not instances:
            del self._apps[app]
        self._overrides.pop((app, instance_id), None)
        return True

    def _sorted_copies(self, app: str) -> list[Instance]:
        return [copy.deepcopy(self._apps[app][i]) for i in sorted(self._apps[app])]


class Evictor:
    """Background thread that runs :meth:`Registry.evict_expired` every ``interval_secs``."""

    def __init__(self, registry: Registry, interval_secs: float) -> None:
        self._registry = registry
        self._interval = interval_secs
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deveureka-evictor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            for app, instance_id in self._registry.evict_expired():
                log.info("evicted %s/%s: lease expired", app, instance_id)
