"""Following the Docker event stream, reconnecting whenever it breaks or is found stalled.

Every (re)connection is followed by a full re-sync, queued once the stream is open: whatever happened
while it was down is seen twice at worst, never missed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from shared import defaults, metrics
from shared.health import Check
from watcher.engine import DockerEngine, DockerError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    container_id: str
    action: str
    attributes: dict[str, str] = field(default_factory=dict)
    # Docker's own timestamp of the event, in seconds (from `timeNano`).
    time: float | None = None


@dataclass(frozen=True)
class Resync:
    force: bool


def parse_event(raw: dict[str, Any]) -> Event:
    actor = raw.get("Actor") or {}
    time_nano = raw.get("timeNano")
    return Event(actor.get("ID") or raw.get("id", ""),
                 (raw.get("Action") or raw.get("status") or "").split(":")[0],
                 dict(actor.get("Attributes") or {}),
                 time_nano / 1e9 if isinstance(time_nano, int) else None)


class EventFollower:
    """Hands each event to `handle` on the following thread itself, and asks for a re-sync with `resync`
    (`Resync(force=True)` after the first connection) once each stream is open."""

    def __init__(self, engine: DockerEngine, handle: Callable[[Event], None], resync: Callable[[Resync], None],
                 stop: threading.Event) -> None:
        self.docker = engine
        self.handle = handle
        self.resync = resync
        self.stop = stop
        self._stream: Any = None
        self._trouble = "not connected yet"
        self._lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._follow, name="docker-events", daemon=True).start()

    def reconnect(self) -> None:
        """Drop the current stream (from any thread); the follower opens a new one and re-syncs."""
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    def check(self) -> Check:
        """For /healthz: whether the event stream is open now."""
        with self._lock:
            connected, trouble = self._stream is not None, self._trouble
        return Check("docker-events", connected, "following Docker events" if connected else trouble)

    def _follow(self) -> None:
        backoff, first = 1.0, True
        while not self.stop.is_set():
            try:
                stream = self.docker.events()
            except DockerError as err:
                with self._lock:
                    self._trouble = f"cannot follow Docker events: {err}"
                log.warning("cannot follow Docker events (%s); retrying in %.0fs", err, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, defaults.EVENTS_MAX_BACKOFF_SECONDS)
                continue
            with self._lock:
                self._stream = stream
            log.info("following Docker events; full re-sync queued")
            self.resync(Resync(force=first))
            first, backoff = False, 1.0
            try:
                for raw in stream:
                    event = parse_event(raw)
                    metrics.DOCKER_EVENTS.labels(event.action).inc()
                    self.handle(event)
            except Exception as err:  # noqa: BLE001 - any break of the stream means reconnect
                log.warning("Docker event stream broke: %s", err)
            finally:
                with self._lock:
                    self._stream = None
                    self._trouble = "the Docker event stream ended; reconnecting"
                stream.close()
            if not self.stop.is_set():
                log.warning("Docker event stream ended; reconnecting")
