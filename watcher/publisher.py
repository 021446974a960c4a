"""Publishing each container's wanted state: inspect, derive its services, publish (the registrars take
each change from their fast lane; a forced re-registration is an RQ job).

Owns what the watcher knows about each container between events: its name, its stop signal, the phase
it was last published in, and the set of containers being stopped (kept in Redis too, so a restarted
watcher still knows a hung stop is a stop).

Events that need no inspect are handled from that knowledge alone: a `die` event carries the exit
code, so the container's records go without waiting for Docker (which answers inspects slowly while
it tears a container down); a `kill` with the container's stop signal marks it DOWN from its last
published state. Everything else inspects the container *now*, so the published state is the latest
Docker knows, whatever order events came in. An inspect that fails raises `InspectFailed`: the caller
retries it with backoff, and until one succeeds nothing about the container changes (it is withdrawn
only when Docker says it is gone or not healthy; if Docker stops answering altogether, the liveness
renewal, which lists containers, stops too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from rq import Queue

from shared import keys, logs, metrics, queues
from shared.config import WatcherConfig
from shared.models import ContainerState, Ec2Metadata, InstanceStatus, Phase, ServiceRecord
from shared.alb import needs_host_instance_id
from shared.registration import wants_ec2_metadata
from shared.store import Store
from watcher import hostip
from watcher.ec2 import Ec2MetadataClient, Ec2MetadataError
from watcher.engine import ContainerNotFound, DockerEngine, DockerError
from watcher.events import Event
from watcher.liveness import Liveness
from watcher.services import CONTAINER_NETWORK_PREFIX, Derivation, Rules, derive_services, network_mode
from watcher.state import (DEFAULT_STOP_SIGNAL, container_state, exited_state, is_running, stop_signal,
                           stops_container)

log = logging.getLogger(__name__)

# A published state no registrar applied within this time is enqueued as a reconcile job by the registrars.
SWEEP_AFTER_SECONDS = 5.0
NO_SERVICES = Derivation((), ())
INSPECTED_ACTIONS = frozenset({"start", "restart", "pause", "unpause", "health_status", "rename", "update"})


class InspectFailed(Exception):
    def __init__(self, container_id: str, reason: str) -> None:
        super().__init__(f"cannot inspect container {container_id[:12]}: {reason}")
        self.container_id = container_id


@dataclass(frozen=True)
class _Known:
    name: str
    stop_signal: int
    state: ContainerState


class Publisher:
    def __init__(self, settings: WatcherConfig, host: str, engine: DockerEngine, store: Store,
                 registrar_queue: Queue, liveness: Liveness, rules: Rules, ec2: Ec2MetadataClient) -> None:
        self.settings = settings
        self.host = host
        self.docker = engine
        self.store = store
        self.queue = registrar_queue
        self.liveness = liveness
        self.rules = rules
        self.ec2 = ec2
        self.resolved_host_ip: str | None = None
        self._known: dict[str, _Known] = {}
        self._stopping = store.stopping(host)

    def published_phases(self) -> dict[str, Phase]:
        known = self._known.copy()  # one step under the GIL: the liveness thread asks while events are handled
        return {container_id: entry.state.phase for container_id, entry in known.items()}

    def on_event(self, event: Event) -> None:
        """Publish what `event` changes. Raises InspectFailed."""
        container_id, action = event.container_id, event.action
        name = event.attributes.get("name", "")
        log.debug("event %s %s (%s)", action, name, container_id[:12],
                  extra=logs.about(source=keys.source(self.host, container_id), container_name=name))
        if action == "kill":
            known = self._known.get(container_id)
            if known is None:
                self.refresh(container_id, event_time=event.time)
            elif stops_container(event.attributes.get("signal"), known.stop_signal):
                self._set_stopping(container_id, True)
                if known.state.phase is Phase.RUNNING:
                    down = replace(known.state, status=InstanceStatus.DOWN)
                    self._publish(container_id, down, known.stop_signal, event_time=event.time)
        elif action == "die":
            known = self._known.get(container_id)
            name = known.name if known else "/" + event.attributes.get("name", container_id[:12])
            exit_code = event.attributes.get("exitCode", "0")
            state = exited_state(host=self.host, container_id=container_id, container_name=name,
                                 exit_code=int(exit_code) if exit_code.isdigit() else 0,
                                 deregister=self.settings.deregister)
            self._publish(container_id, state, known.stop_signal if known else DEFAULT_STOP_SIGNAL,
                          event_time=event.time)
            self._set_stopping(container_id, False)  # after the publish: a dead container's flag is moot
        elif action == "destroy":
            self._set_stopping(container_id, False)
            self._publish(container_id, None, DEFAULT_STOP_SIGNAL, event_time=event.time)
        elif action == "stop":
            # Follows `die`, which already published the exit; only a missed `die` leaves work here.
            known = self._known.get(container_id)
            if known is None or known.state.phase is Phase.RUNNING:
                self.refresh(container_id, event_time=event.time)
        elif action in INSPECTED_ACTIONS:
            if action in ("start", "restart"):
                self._set_stopping(container_id, False)
            self.refresh(container_id, event_time=event.time)

    def resync(self, force: bool) -> list[str]:
        """Publish the state of every container on the host, and forget those that no longer exist.
        Returns the ids of the containers that could not be inspected (to retry). Raises Docker's and
        Redis's errors when listing fails."""
        metrics.RESYNCS.inc()
        self.resolved_host_ip = self.settings.ip or hostip.resolve(self.host)
        present = [entry["Id"] for entry in self.docker.containers()]
        failed = []
        for container_id in present:
            try:
                self.refresh(container_id, force=force)
            except InspectFailed as err:
                log.warning("%s; retrying", err)
                failed.append(container_id)
        known = {keys.split_source(source)[1] for source in self.store.host_sources(self.host)} | set(self._known)
        for container_id in known - set(present):
            self._publish(container_id, None, DEFAULT_STOP_SIGNAL, force=force)
        self._stopping &= set(present)
        log.info("re-synced %d containers", len(present))
        return failed

    def request_cleanup(self) -> None:
        """Ask the registrars to delete what this host left in Eureka for containers Redis does not know."""
        job_id = queues.new_job_id()
        if self.store.claim_job(keys.cleanup_job_name(self.host), job_id):
            queues.enqueue_cleanup(self.queue, self.host, job_id)

    def refresh(self, container_id: str, *, force: bool = False, event_time: float | None = None) -> None:
        """Inspect the container now and publish its state. Raises InspectFailed."""
        try:
            container = self.docker.inspect(container_id)
        except ContainerNotFound:
            log.info("container %s no longer exists: its services go", container_id[:12],
                     extra=logs.about(source=keys.source(self.host, container_id)))
            self._set_stopping(container_id, False)
            self._publish(container_id, None, DEFAULT_STOP_SIGNAL, force=force, event_time=event_time)
            return
        except DockerError as err:
            raise InspectFailed(container_id, str(err)) from None
        # A container that is not running has no services: nothing to derive, nothing to complain about.
        derivation = NO_SERVICES
        if is_running(container):
            derivation = derive_services(container, self.rules, self.resolved_host_ip,
                                         self._network_container(container))
        state = container_state(container, derivation.services, host=self.host,
                                stopping=container_id in self._stopping, deregister=self.settings.deregister,
                                ec2=self._ec2_metadata(derivation.services))
        if self._publish(container_id, state, stop_signal(container), force=force, event_time=event_time) or force:
            for problem in derivation.problems:
                log.error("%s", problem, extra=logs.about(source=keys.source(self.host, container_id),
                                                          container_name=state.container_name))

    def _set_stopping(self, container_id: str, stopping: bool) -> None:
        if stopping == (container_id in self._stopping):
            return
        self.store.set_stopping(self.host, container_id, stopping)
        if stopping:
            self._stopping.add(container_id)
        else:
            self._stopping.discard(container_id)

    def _ec2_metadata(self, services: tuple[ServiceRecord, ...]) -> Ec2Metadata | None:
        """The host's EC2 metadata when a service asks for it (auto-populate, or the ALB lookup without ECS
        labels); None (already logged) when unavailable."""
        if not any(wants_ec2_metadata(record) or needs_host_instance_id(record) for record in services):
            return None
        try:
            return self.ec2.metadata()
        except Ec2MetadataError:
            return None

    def _network_container(self, container: dict[str, Any]) -> dict[str, Any] | None:
        """The inspect document of the container whose network `container` shares, if it does and can be
        inspected (derive_services reports it when it cannot)."""
        mode = network_mode(container)
        if not mode.startswith(CONTAINER_NETWORK_PREFIX):
            return None
        try:
            return self.docker.inspect(mode[len(CONTAINER_NETWORK_PREFIX):])
        except DockerError as err:
            log.warning("container %s: cannot inspect the container whose network it shares: %s",
                        container["Id"][:12], err, extra=logs.about(source=keys.source(self.host, container["Id"]),
                                                                    container_name=container.get("Name")))
            return None

    def _publish(self, container_id: str, state: ContainerState | None, container_stop_signal: int, *,
                 force: bool = False, event_time: float | None = None) -> bool:
        source = keys.source(self.host, container_id)
        vouched = state is not None and state.vouched
        job_id = queues.new_job_id() if force else ""
        with self.liveness.lock:
            published = self.store.publish_state(source, state, ttl=self.settings.ttl, sweep_after=SWEEP_AFTER_SECONDS,
                                                 force=force, job_id=job_id, event_time=event_time)
            self.liveness.note(container_id, vouched, published)
        metrics.STATES_PUBLISHED.labels("changed" if published.changed else "unchanged").inc()
        if state is None:
            self._known.pop(container_id, None)
        else:
            self._known[container_id] = _Known(state.container_name, container_stop_signal, state)
        if force:
            name = state.container_name if state is not None else container_id[:12]
            queues.enqueue_reconcile(self.queue, source, name, job_id, force=True)
        return published.changed
