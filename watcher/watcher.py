"""The per-host watcher: follows Docker, publishes each container's wanted state, vouches for liveness.

Threads:
- events: follows the Docker event stream; when it breaks (daemon restarted, socket gone) it
  reconnects with backoff and asks for a full re-sync, so nothing that happened meanwhile is missed.
- main: handles one work item at a time (an event or a re-sync). Each item inspects the container
  *now*, so the published state is always the latest Docker knows, whatever order events came in.
- liveness: every -ttl-refresh seconds renews the liveness entry of each container still vouched for
  and still running. If Docker does not answer, nothing is renewed and the entries expire.
- resync (with -resync): periodically queues a full re-sync.
- ip-lookup (with -ip-lookup-source): every -ip-lookup-interval seconds looks up this host's IP; a new
  one is handed to the main thread, which re-syncs the host so every service moves to it.

With -cleanup, every re-sync ends with a cleanup job for the registrars, which remove the Eureka
instances this host registered for containers Redis no longer knows.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import docker
import requests
from rq import Queue

from shared import keys, queues
from shared.config import WatcherConfig
from shared.registration import wants_ec2_metadata
from shared.models import ContainerState, Ec2Metadata, ServiceRecord
from shared.periodic import every
from shared.store import Store
from watcher import hostip
from watcher.ec2 import Ec2MetadataClient, Ec2MetadataError
from watcher.services import CONTAINER_NETWORK_PREFIX, Derivation, Rules, derive_services, network_mode
from watcher.state import container_state, is_terminating_signal

log = logging.getLogger(__name__)

HANDLED_ACTIONS = frozenset({
    "start", "restart", "die", "stop", "kill", "destroy", "pause", "unpause", "health_status", "rename",
    "update",
})
# A published state no registrar applied within this time is enqueued again by the registrars.
SWEEP_AFTER_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 10.0
NO_SERVICES = Derivation((), ())


@dataclass(frozen=True)
class Resync:
    force: bool


@dataclass(frozen=True)
class NewHostIp:
    ip: str


@dataclass(frozen=True)
class Event:
    container_id: str
    action: str
    attributes: dict[str, str] = field(default_factory=dict)


def resolve_host_ip(hostname: str) -> str | None:
    try:
        return socket.gethostbyname(hostname)
    except OSError as err:
        log.error("hostname %r does not resolve (%s): ports bound to all interfaces need -ip", hostname, err)
        return None


class Watcher:
    def __init__(self, settings: WatcherConfig, docker_client: docker.DockerClient, store: Store,
                 registrar_queue: Queue, looked_up_ip: str | None = None) -> None:
        """`looked_up_ip`: this host's IP from -ip-lookup-source at startup (None when not used or failed)."""
        self.settings = settings
        self.docker = docker_client
        self.store = store
        self.queue = registrar_queue
        self.rules = Rules(hostname=settings.hostname, forced_ip=looked_up_ip or settings.ip,
                           internal=settings.internal, use_ip_from_label=settings.use_ip_from_label or None,
                           tags=settings.tags, require_label=settings.require_label,
                           name_from_image=settings.name_from_image)
        self.ec2 = Ec2MetadataClient(settings.ec2_metadata_url)
        self.stop = threading.Event()
        self._work: queue.Queue[Resync | NewHostIp | Event] = queue.Queue()
        self._stopping: set[str] = set()
        self._vouched: set[str] = set()
        self._lock = threading.Lock()
        self._resolved_host_ip: str | None = None

    def run(self) -> None:
        threading.Thread(target=self._follow_events, name="docker-events", daemon=True).start()
        every(self.settings.ttl_refresh, self.renew_liveness, "liveness", self.stop)
        if self.settings.resync:
            every(self.settings.resync, lambda: self._work.put(Resync(force=False)), "resync", self.stop)
        if self.settings.ip_lookup_source:
            every(self.settings.ip_lookup_interval, self.check_host_ip, "ip-lookup", self.stop)
        backoff = 1.0
        while not self.stop.is_set():
            try:
                item = self._work.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._handle(item)
                backoff = 1.0
            except Exception:  # noqa: BLE001 - Redis or Docker trouble: retry the whole host later
                log.exception("could not handle %s; full re-sync in %.0fs", item, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                self._work.put(Resync(force=True))

    def _handle(self, item: Resync | NewHostIp | Event) -> None:
        if isinstance(item, Resync):
            self.resync(force=item.force)
        elif isinstance(item, NewHostIp):
            log.info("this host's IP is now %s (was %s): re-syncing every container",
                     item.ip, self.rules.forced_ip or "the hostname's")
            self.rules = replace(self.rules, forced_ip=item.ip)
            self.resync(force=False)
        else:
            self.on_event(item)

    def check_host_ip(self) -> None:
        """Look the host's IP up again; a new one is queued for the main thread (a failure keeps the old)."""
        try:
            ip = hostip.look_up(self.settings.ip_lookup_source or "")
        except hostip.IpLookupError as err:
            log.warning("IP lookup failed, keeping the current IP: %s", err)
            return
        if ip != self.rules.forced_ip:
            self._work.put(NewHostIp(ip))

    def _follow_events(self) -> None:
        backoff, first = 1.0, True
        while not self.stop.is_set():
            try:
                stream = self.docker.events(decode=True, filters={"type": "container"})
            except (docker.errors.DockerException, requests.RequestException) as err:
                log.warning("cannot follow Docker events (%s); retrying in %.0fs", err, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            log.info("following Docker events; full re-sync queued")
            # Queued after the stream is open, so anything that happens from here on is seen twice at
            # worst, never missed.
            self._work.put(Resync(force=first))
            first, backoff = False, 1.0
            try:
                for raw in stream:
                    actor = raw.get("Actor") or {}
                    self._work.put(Event(actor.get("ID") or raw.get("id", ""),
                                         (raw.get("Action") or raw.get("status") or "").split(":")[0],
                                         dict(actor.get("Attributes") or {})))
            except Exception as err:  # noqa: BLE001 - any break of the stream means reconnect
                log.warning("Docker event stream broke: %s", err)
            finally:
                stream.close()
            log.warning("Docker event stream ended; reconnecting")

    def on_event(self, event: Event) -> None:
        if event.action not in HANDLED_ACTIONS or not event.container_id:
            return
        container_id = event.container_id
        log.debug("event %s %s", event.action, container_id[:12])
        if event.action == "kill" and is_terminating_signal(event.attributes.get("signal")):
            self._stopping.add(container_id)
        elif event.action in ("start", "restart"):
            self._stopping.discard(container_id)
        if event.action == "destroy":
            self._stopping.discard(container_id)
            self._publish(container_id, None, force=False)
            return
        self.refresh(container_id)
        if event.action == "die":
            self._stopping.discard(container_id)

    def resync(self, force: bool) -> None:
        """Publish the state of every container on the host, and forget those that no longer exist."""
        self._resolved_host_ip = self.settings.ip or resolve_host_ip(self.settings.hostname)
        present = [entry["Id"] for entry in self.docker.api.containers(all=True)]
        for container_id in present:
            self.refresh(container_id, force=force)
        known = {keys.split_source(source)[1] for source in self.store.host_sources(self.settings.hostname)}
        for container_id in known - set(present):
            self._publish(container_id, None, force=force)
        log.info("re-synced %d containers", len(present))
        if self.settings.cleanup:
            queues.enqueue_cleanup(self.queue, self.settings.hostname)

    def refresh(self, container_id: str, force: bool = False) -> None:
        try:
            container = self.docker.api.inspect_container(container_id)
        except docker.errors.NotFound:
            log.info("container %s no longer exists: its services go", container_id[:12])
            self._publish(container_id, None, force=force)
            return
        except (docker.errors.DockerException, requests.RequestException) as err:
            log.warning("cannot inspect container %s (%s): no longer vouching for it", container_id[:12], err)
            self._withdraw(container_id)
            return
        # An exited container has no services: nothing to derive, nothing to complain about.
        derivation = NO_SERVICES
        if (container.get("State") or {}).get("Running"):
            derivation = derive_services(container, self.rules, self._resolved_host_ip,
                                         self._network_container(container))
        state = container_state(container, derivation.services, host=self.settings.hostname,
                                stopping=container_id in self._stopping, deregister=self.settings.deregister,
                                ec2=self._ec2_metadata(derivation.services))
        if self._publish(container_id, state, force=force) or force:
            for problem in derivation.problems:
                log.error("%s", problem)

    def _ec2_metadata(self, services: tuple[ServiceRecord, ...]) -> Ec2Metadata | None:
        """The host's EC2 metadata when a service asks for it; None (already logged) when unavailable."""
        if not any(wants_ec2_metadata(record) for record in services):
            return None
        try:
            return self.ec2.metadata()
        except Ec2MetadataError:
            return None

    def renew_liveness(self) -> None:
        running = {entry["Id"] for entry in self.docker.api.containers()}
        with self._lock:
            sources = [keys.source(self.settings.hostname, container_id) for container_id in self._vouched & running]
            intact = self.store.renew_liveness(self.settings.hostname, sources, self.settings.ttl)
        if sources and not intact:
            log.warning("Redis lost this host's container states (restarted empty or flushed): full re-sync")
            self._work.put(Resync(force=True))

    def _network_container(self, container: dict[str, Any]) -> dict[str, Any] | None:
        """The inspect document of the container whose network `container` shares, if it does and can be
        inspected (derive_services reports it when it cannot)."""
        mode = network_mode(container)
        if not mode.startswith(CONTAINER_NETWORK_PREFIX):
            return None
        try:
            return self.docker.api.inspect_container(mode[len(CONTAINER_NETWORK_PREFIX):])
        except (docker.errors.DockerException, requests.RequestException) as err:
            log.warning("container %s: cannot inspect the container whose network it shares: %s",
                        container["Id"][:12], err)
            return None

    def _publish(self, container_id: str, state: ContainerState | None, *, force: bool) -> bool:
        source = keys.source(self.settings.hostname, container_id)
        with self._lock:
            changed = self.store.publish_state(source, state, ttl=self.settings.ttl, now=time.time(),
                                               sweep_after=SWEEP_AFTER_SECONDS)
            if state is not None and state.vouched:
                self._vouched.add(container_id)
            else:
                self._vouched.discard(container_id)
        if changed or force:
            queues.enqueue_reconcile(self.queue, source, force=force)
        return changed

    def _withdraw(self, container_id: str) -> None:
        with self._lock:
            self._vouched.discard(container_id)
            self.store.drop_liveness(keys.source(self.settings.hostname, container_id))
