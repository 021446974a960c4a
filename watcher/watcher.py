"""The per-host watcher's loop: Docker events and queued work items, handled one at a time.

Threads:
- events (`events.py`): follows the Docker event stream and handles each event itself, with
  `publisher.py`: a hand-over to another thread would cost every registration a thread wake-up.
  Reconnects and queues a full re-sync whenever the stream breaks.
- main: handles the queued work items (a re-sync, a retried inspect, a new host IP, a cleanup). One
  lock keeps it and the events thread to one item at a time. A failed inspect is retried with backoff;
  a failed re-sync too.
- liveness (`liveness.py`): every -ttl-refresh seconds renews the liveness entries, and from the same
  container listing notices a stalled event stream (`stall.py`) and Redis losing data.
- resync (with -resync): periodically queues a full re-sync. With -cleanup, every re-sync asks the
  registrars for a cleanup, and for a second one once Eureka's cached listings show what the first missed.
- ip-lookup (with -ip-lookup-source, `hostip.py`): a new IP is handed to the main thread, which
  re-syncs the host so every service moves to it.

Healthy (/healthz, `checks`) means doing its job: the Docker event stream is open, the last liveness
renewal succeeded within a few -ttl-refresh periods (Docker listed the containers and Redis took the
renewal), and Redis answers now.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Union

from shared import defaults, metrics
from shared.config import WatcherConfig
from shared.health import Check, Pulse, check_answers, check_recent
from shared.periodic import every
from watcher import hostip
from watcher.engine import DockerEngine
from watcher.events import Event, EventFollower, Resync
from watcher.liveness import IdentityLost, Liveness
from watcher.publisher import InspectFailed, Publisher
from watcher.stall import StallDetector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewHostIp:
    ip: str


@dataclass(frozen=True)
class Cleanup:
    """Ask the registrars for a -cleanup pass: the second of a re-sync's two (see registrar/cleanup.py)."""


@dataclass(frozen=True)
class Inspect:
    """Inspect a container again after a failed attempt (the `attempt`-th retry)."""
    container_id: str
    attempt: int


WorkItem = Union[Event, Resync, NewHostIp, Inspect, Cleanup]


class WorkQueue:
    """Work items in order, some held back until a later time (retries)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, WorkItem]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()

    def put(self, item: WorkItem, delay: float = 0.0) -> None:
        with self._ready:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), item))
            self._ready.notify()

    def get(self, timeout: float) -> WorkItem | None:
        with self._ready:
            deadline = time.monotonic() + timeout
            while True:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    return heapq.heappop(self._heap)[2]
                wait = deadline - now
                if self._heap:
                    wait = min(wait, self._heap[0][0] - now)
                if wait <= 0:
                    return None
                self._ready.wait(wait)


def retry_delay(attempt: int) -> float:
    return min(defaults.INSPECT_FIRST_RETRY_SECONDS * 2 ** attempt, defaults.INSPECT_MAX_RETRY_SECONDS)


class Watcher:
    def __init__(self, settings: WatcherConfig, engine: DockerEngine, publisher: Publisher,
                 liveness: Liveness) -> None:
        self.settings = settings
        self.docker = engine
        self.publisher = publisher
        self.liveness = liveness
        self.stop = threading.Event()
        self.work = WorkQueue()
        self.events = EventFollower(engine, self.handle, self.work.put, self.stop)
        self._handling = threading.Lock()
        self._failures = 0  # failed items in a row, for the re-sync's backoff
        self.stalls = StallDetector()
        self.failure: Exception | None = None
        self.renewed = Pulse()

    def checks(self) -> list[Check]:
        """What /healthz reports."""
        renewal_limit = defaults.LIVENESS_RENEWALS_MISSED_UNHEALTHY * self.settings.ttl_refresh
        found = [self.events.check(),
                 check_recent("liveness-renewal", self.renewed, renewal_limit, "liveness last renewed"),
                 check_answers("redis", self.publisher.store.redis.ping)]
        if self.failure is not None:
            found.append(Check("identity", False, str(self.failure)))
        return found

    def run(self) -> None:
        """Work until `stop` is set or the watcher must end (then `failure` says why)."""
        self.events.start()
        every(self.settings.ttl_refresh, self.renew_liveness, "liveness", self.stop)
        if self.settings.resync:
            every(self.settings.resync, lambda: self.work.put(Resync(force=False)), "resync", self.stop)
        if self.settings.ip_lookup_source:
            every(self.settings.ip_lookup_interval, self.check_host_ip, "ip-lookup", self.stop)
        while not self.stop.is_set():
            item = self.work.get(timeout=0.5)
            if item is not None:
                self.handle(item)

    def handle(self, item: WorkItem) -> None:
        """Handle one event or work item (from any thread, one at a time). A failed inspect is queued
        again with backoff; any other failure queues a full re-sync."""
        with self._handling:
            try:
                self._handle(item)
                if isinstance(item, Resync):
                    self._failures = 0
            except InspectFailed as err:
                attempt = item.attempt + 1 if isinstance(item, Inspect) else 0
                log.warning("%s; retrying in %.1fs", err, retry_delay(attempt))
                self.work.put(Inspect(err.container_id, attempt), retry_delay(attempt))
            except Exception:  # noqa: BLE001 - Redis or Docker trouble: try again later
                delay = retry_delay(self._failures)
                self._failures += 1
                log.exception("could not handle %s; full re-sync in %.1fs", item, delay)
                self.work.put(Resync(force=True), delay)

    def _handle(self, item: WorkItem) -> None:
        if isinstance(item, Event):
            self.publisher.on_event(item)
        elif isinstance(item, Inspect):
            self.publisher.refresh(item.container_id)
        elif isinstance(item, Resync):
            self._resync(item.force)
        elif isinstance(item, Cleanup):
            self.publisher.request_cleanup()
        else:
            log.info("this host's IP is now %s (was %s): re-syncing every container",
                     item.ip, self.publisher.rules.forced_ip or "the hostname's")
            self.publisher.rules = replace(self.publisher.rules, forced_ip=item.ip)
            self._resync(force=False)

    def _resync(self, force: bool) -> None:
        for container_id in self.publisher.resync(force=force):
            self.work.put(Inspect(container_id, 0), retry_delay(0))
        if self.settings.cleanup:
            self.publisher.request_cleanup()
            self.work.put(Cleanup(), defaults.EUREKA_LISTING_STALENESS_SECONDS)

    def renew_liveness(self) -> None:
        """Renew; re-sync when Redis lost data; reconnect and re-sync when the event stream stalled."""
        try:
            renewal = self.liveness.renew(self.docker)
        except IdentityLost as err:
            self.failure = err
            self.stop.set()
            return
        except Exception:
            metrics.LIVENESS_RENEWALS.labels("failed").inc()
            raise
        metrics.LIVENESS_RENEWALS.labels("ok").inc()
        self.renewed.beat()
        if not renewal.intact:
            log.warning("Redis lost changes this watcher published (restarted empty, flushed, rolled back or "
                        "failed over): publishing every container again")
            self.stalls.reset()
            self.work.put(Resync(force=True))
            return
        stalled = self.stalls.check(renewal.listing, self.publisher.published_phases())
        if stalled:
            log.warning("Docker event stream stalled: %d containers (%s) changed without an event for %ss; "
                        "reconnecting and re-syncing", len(stalled), ", ".join(sorted(c[:12] for c in stalled)),
                        self.settings.ttl_refresh)
            self.stalls.reset()
            self.events.reconnect()

    def check_host_ip(self) -> None:
        """Look the host's IP up again; a new one is queued for the main thread (a failure keeps the old)."""
        try:
            ip = hostip.look_up(self.settings.ip_lookup_source or "")
        except hostip.IpLookupError as err:
            log.warning("IP lookup failed, keeping the current IP: %s", err)
            return
        if ip != self.publisher.rules.forced_ip:
            self.work.put(NewHostIp(ip))
