"""In-memory registry: instances per app, leases, status overrides, eviction, self-preservation.

It follows Netflix Eureka 1.10's AbstractInstanceRegistry and PeerAwareInstanceRegistryImpl:

- A lease expires ``durationInSecs`` after its last update. Netflix's ``Lease.renew()`` sets that
  update to *now + duration*, so a renewed lease lasts twice its duration and reads show the
  renewal time plus the duration as ``lastRenewalTimestamp`` (``lease_expiry="netflix"``). With
  ``lease_expiry="duration"`` a renewal sets it to now: a lease ends one duration after its last
  renewal.
- Single-instance reads do not see an expired instance; the listings still show it until an
  eviction run removes it. A heartbeat revives an expired instance that was not evicted yet.
- An eviction run removes at most ``size - floor(0.85 x size)`` expired instances, picked at random.
- With self-preservation, expiry (and so eviction and the single-instance 404) only applies while
  the heartbeats of the last full minute exceed 85 % of those expected (2 a minute per instance).
"""

from __future__ import annotations

import copy
import logging
import random
import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import Literal

from deveureka.codec import java_long
from deveureka.instance import ADDED, MODIFIED, OUT_OF_SERVICE, UNKNOWN, UP, Instance, Lease

log = logging.getLogger(__name__)

LeaseExpiry = Literal["netflix", "duration"]
LEASE_EXPIRIES: tuple[LeaseExpiry, ...] = ("netflix", "duration")

RENEWAL_PERCENT_THRESHOLD = 0.85  # Netflix's renewalPercentThreshold
EXPECTED_CLIENT_RENEWAL_INTERVAL_SECS = 30  # Netflix's expectedClientRenewalIntervalSeconds
RENEWAL_RATE_WINDOW_SECS = 60.0  # Netflix counts heartbeats per full minute (MeasuredRate)


class RenewOutcome(Enum):
    RENEWED = "renewed"
    NOT_FOUND = "not registered"
    STATUS_UNKNOWN = "status is UNKNOWN, the client must register again"


def effective_status(requested: str, override: str | None, existing: str | None) -> str:
    """Netflix's rule chain: DownOrStarting, OverrideExists, LeaseExists, else as requested."""
    if requested not in (UP, OUT_OF_SERVICE):
        return requested
    if override is not None:
        return override
    if existing in (UP, OUT_OF_SERVICE):
        return existing
    return requested


def eviction_limit(size: int) -> int:
    """How many expired instances one eviction run may remove from a registry of ``size``."""
    return size - int(size * RENEWAL_PERCENT_THRESHOLD)


def renewal_threshold(expected_clients: int) -> int:
    """Netflix's numberOfRenewsPerMinThreshold for that many instances sending heartbeats."""
    per_minute = 60.0 / EXPECTED_CLIENT_RENEWAL_INTERVAL_SECS
    return int(expected_clients * per_minute * RENEWAL_PERCENT_THRESHOLD)


class RenewalRate:
    """Heartbeats counted per window; reads give the last complete one (Netflix's MeasuredRate)."""

    def __init__(self, start: float, window_secs: float = RENEWAL_RATE_WINDOW_SECS) -> None:
        self._start = start
        self._window = window_secs
        self._bucket = 0
        self._current = 0
        self._last = 0

    def increment(self, now: float) -> None:
        self._roll(now)
        self._current += 1

    def last_window(self, now: float) -> int:
        self._roll(now)
        return self._last

    def _roll(self, now: float) -> None:
        bucket = int((now - self._start) // self._window)
        if bucket > self._bucket:
            self._last = self._current if bucket == self._bucket + 1 else 0
            self._current = 0
            self._bucket = bucket


class Registry:
    """Thread-safe store. Every read returns copies, so callers never see later changes.

    Listeners are told the app name after each change a listing would show (Netflix invalidates
    its response cache at the same points); they run outside the registry's lock.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        lease_expiry: LeaseExpiry = "netflix",
        self_preservation: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._apps: dict[str, dict[str, Instance]] = {}
        self._overrides: dict[tuple[str, str], str] = {}
        self._clock = clock
        self._lease_expiry = lease_expiry
        self._self_preservation = self_preservation
        self._renewals = RenewalRate(clock())
        self._rng = rng or random.Random()
        self._listeners: list[Callable[[str], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def register(self, instance: Instance) -> None:
        with self._lock:
            self._register(copy.deepcopy(instance))
        self._changed(instance.app)

    def cancel(self, app: str, instance_id: str) -> bool:
        with self._lock:
            removed = self._remove(app, instance_id)
        if removed:
            self._changed(app)
        return removed

    def renew(self, app: str, instance_id: str) -> RenewOutcome:
        """A heartbeat. Expired but not evicted instances are renewed too, as Netflix does."""
        with self._lock:
            instance = self._get(app, instance_id)
            if instance is None:
                return RenewOutcome.NOT_FOUND
            override = self._overrides.get((app, instance_id))
            status = effective_status(instance.status, override, instance.status)
            if status == UNKNOWN:
                return RenewOutcome.STATUS_UNKNOWN
            instance.status = status  # Netflix sets it without telling its cache
            self._renewals.increment(self._clock())
            self._renew(instance.lease)
            return RenewOutcome.RENEWED

    def is_client_newer(self, app: str, instance_id: str, client_dirty_ts: int) -> bool:
        """Whether a heartbeat's lastDirtyTimestamp is newer than the registry's (then: 404)."""
        with self._lock:
            instance = self._visible(app, instance_id)
            return instance is not None and client_dirty_ts > instance.last_dirty_ts

    def set_status(
        self, app: str, instance_id: str, status: str, client_dirty_ts: str | None
    ) -> bool:
        """PUT .../status: records an override; setting the current status changes nothing.

        A malformed ``client_dirty_ts`` raises ValueError after the override is recorded, where
        Netflix fails (it answers 500 and keeps the half-made change).
        """
        with self._lock:
            instance = self._get(app, instance_id)
            if instance is None:
                return False
            self._renew(instance.lease)
            if instance.status == status:
                return True
            if status == UP:
                self._service_up(instance.lease, self.now_ms())
            self._overrides[(app, instance_id)] = status
            instance.overridden_status = status
            instance.status = status
            self._modified(instance, client_dirty_ts)
        self._changed(app)
        return True

    def delete_status_override(
        self, app: str, instance_id: str, status: str, client_dirty_ts: str | None
    ) -> bool:
        """DELETE .../status: drops the override and sets ``status``; a no-op without one."""
        with self._lock:
            instance = self._get(app, instance_id)
            if instance is None:
                return False
            self._renew(instance.lease)
            if self._overrides.pop((app, instance_id), None) is None:
                return True
            instance.overridden_status = UNKNOWN
            instance.status = status
            self._modified(instance, client_dirty_ts)
        self._changed(app)
        return True

    def merge_metadata(self, app: str, instance_id: str, items: dict[str, str]) -> bool:
        """PUT .../metadata: merges, then re-registers the instance as Netflix does."""
        with self._lock:
            instance = self._get(app, instance_id)
            if instance is None:
                return False
            updated = copy.deepcopy(instance)
            updated.metadata.update(items)
            self._register(updated)
        self._changed(app)
        return True

    def evict(self, additional_ms: int = 0) -> list[tuple[str, str]]:
        """One eviction run; returns the (app, id) removed. ``additional_ms`` extends every lease
        (Netflix's compensation for a run that came late)."""
        with self._lock:
            now = self.now_ms()
            if not self._lease_expiration_enabled():
                return []
            expired = [
                (app, instance_id)
                for app, instances in self._apps.items()
                for instance_id, instance in instances.items()
                if self._expired(instance.lease, now, additional_ms)
            ]
            size = sum(len(instances) for instances in self._apps.values())
            chosen = self._rng.sample(expired, min(len(expired), eviction_limit(size)))
            for app, instance_id in chosen:
                self._remove(app, instance_id)
        for app in sorted({app for app, _ in chosen}):
            self._changed(app)
        return chosen

    def applications(self) -> list[tuple[str, list[Instance]]]:
        """Every app with its instances, expired ones included (as Netflix lists them)."""
        with self._lock:
            return [(app, self._sorted_copies(app)) for app in sorted(self._apps)]

    def application(self, app: str) -> list[Instance] | None:
        with self._lock:
            return self._sorted_copies(app) if app in self._apps else None

    def instance(self, app: str, instance_id: str) -> Instance | None:
        """The instance as a single-instance read sees it: None once its lease expired."""
        with self._lock:
            return copy.deepcopy(self._visible(app, instance_id))

    def find_instance(self, instance_id: str) -> Instance | None:
        """The instance with this id in any app (GET /instances/{id})."""
        with self._lock:
            for app in sorted(self._apps):
                found = self._visible(app, instance_id)
                if found is not None:
                    return copy.deepcopy(found)
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
        if override is not None:
            instance.overridden_status = override
        instance.status = effective_status(
            instance.status, override, existing.status if existing else None
        )
        instance.lease = Lease(
            renewal_interval_secs=instance.lease.renewal_interval_secs,
            duration_secs=instance.lease.duration_secs,
            registration_ts=now,
            last_update_ts=now,
            service_up_ts=existing.lease.service_up_ts if existing else 0,
        )
        if instance.status == UP:
            self._service_up(instance.lease, now)
        instance.action_type = ADDED
        instance.last_updated_ts = now
        self._apps.setdefault(instance.app, {})[instance.instance_id] = instance

    def _renew(self, lease: Lease) -> None:
        now = self.now_ms()
        doubled = self._lease_expiry == "netflix"
        lease.last_update_ts = now + (lease.duration_secs * 1000 if doubled else 0)

    def _service_up(self, lease: Lease, now: int) -> None:
        if lease.service_up_ts == 0:
            lease.service_up_ts = now

    def _modified(self, instance: Instance, client_dirty_ts: str | None) -> None:
        if client_dirty_ts is not None:
            dirty = java_long(client_dirty_ts)  # raises after the change, as Netflix does
            if dirty > instance.last_dirty_ts:
                instance.last_dirty_ts = dirty
        instance.action_type = MODIFIED
        instance.last_updated_ts = self.now_ms()

    def _expired(self, lease: Lease, now: int, additional_ms: int = 0) -> bool:
        return now > lease.last_update_ts + lease.duration_secs * 1000 + additional_ms

    def _lease_expiration_enabled(self) -> bool:
        if not self._self_preservation:
            return True
        # Netflix counts the instances that should send heartbeats at registration, cancel and
        # every 15 minutes; here they are simply the instances registered now.
        size = sum(len(instances) for instances in self._apps.values())
        threshold = renewal_threshold(size)
        return threshold > 0 and self._renewals.last_window(self._clock()) > threshold

    def _visible(self, app: str, instance_id: str) -> Instance | None:
        instance = self._get(app, instance_id)
        if (
            instance is not None
            and self._lease_expiration_enabled()
            and self._expired(instance.lease, self.now_ms())
        ):
            return None
        return instance

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

    def _changed(self, app: str) -> None:
        for listener in self._listeners:
            listener(app)


class Evictor:
    """Background thread that runs :meth:`Registry.evict` every ``interval_secs``."""

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
        last_run: float | None = None
        while not self._stopped.wait(self._interval):
            now = time.monotonic()
            late = 0.0 if last_run is None else max(0.0, now - last_run - self._interval)
            last_run = now
            for app, instance_id in self._registry.evict(int(late * 1000)):
                log.info("evicted %s/%s: lease expired", app, instance_id)
