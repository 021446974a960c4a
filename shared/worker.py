"""Running one member of a worker pool (registrar, heartbeater): an RQ SimpleWorker, which runs jobs in
its own process (no fork per job), plus one periodic task in a background thread.

RQ's work loop rides out Redis errors only while it waits for a job; one anywhere else (finishing a job
during a failover longer than a Redis command waits, say) ends it. The process then starts a new worker
after a pause, so only SIGTERM or SIGINT ends the pool member.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass
from itertools import count
from types import FrameType
from typing import Callable, Generic, Sequence, TypeVar

import redis
from rq import Queue, SimpleWorker

from shared import defaults, logs
from shared.config import EurekaConfig
from shared.connection import connect
from shared.eureka import EurekaClient
from shared.periodic import every
from shared.startup import wait_for
from shared.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
S = TypeVar("S", bound=EurekaConfig)


@dataclass(frozen=True)
class Connections(Generic[S]):
    """What a worker process talks to: its settings, Redis (as a store, and raw for RQ) and Eureka."""

    settings: S
    store: Store
    rq: redis.Redis
    eureka: EurekaClient

    @classmethod
    def open(cls, settings: S) -> Connections[S]:
        return cls(settings, Store(connect(settings)), connect(settings, decode=False),
                   EurekaClient.from_settings(settings))


class JobContext(Generic[S, T]):
    """What a pool's jobs work with: `build` applied to the process's connections.

    `python -m <component>` installs it at start; in a plain `rq worker` process it is built from the
    environment on first use.
    """

    def __init__(self, load_settings: Callable[[Sequence[str]], S], build: Callable[[Connections[S]], T]) -> None:
        self._load_settings = load_settings
        self._build = build
        self._value: T | None = None

    def install(self, connections: Connections[S]) -> T:
        self._value = self._build(connections)
        return self._value

    def get(self) -> T:
        if self._value is None:
            return self.install(Connections.open(self._load_settings([])))
        return self._value


def serve(component: str, settings: S, context: JobContext[S, T], queue_name: str,
          periodic: Callable[[T, Queue], object], interval: float) -> None:
    """Wait for Redis and Eureka, install the jobs' context, run `periodic(context, queue)` every
    `interval` seconds, and work on `queue_name` until SIGTERM or SIGINT (the current job finishes)."""
    logs.setup(component, settings.log_level)
    connections = Connections.open(settings)
    wait_for("Redis", connections.store.redis.ping, settings)
    wait_for("Eureka", connections.eureka.applications, settings)
    service = context.install(connections)

    queue = Queue(queue_name, connection=connections.rq)
    stop = threading.Event()
    every(interval, lambda: periodic(service, queue), f"{component}-periodic", stop)
    log.info("%s started: Eureka %s", component, ", ".join(server.url for server in connections.eureka.servers))
    try:
        _work_until_stopped(component, queue, stop)
    finally:
        stop.set()


class _PoolWorker(SimpleWorker):
    """A SimpleWorker that remembers being asked to stop, which tells its end apart from RQ giving up."""

    stop_requested = False

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        super().request_stop(signum, frame)


def _work_until_stopped(component: str, queue: Queue, stop: threading.Event) -> None:
    for run in count(1):
        name = f"{component}.{socket.gethostname()}.{os.getpid()}" + (f".{run}" if run > 1 else "")
        worker = _PoolWorker([queue], connection=queue.connection, name=name)
        try:
            worker.work(logging_level=None)
        except redis.RedisError as err:  # starting, or recording its end, needs Redis too
            log.error("RQ worker %s failed: %s", name, err)
        # RQ's signal handlers belong to the worker that ended; a stop now ends the pause instead.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        if worker.stop_requested:
            return
        log.error("RQ worker %s ended on a Redis error; starting another in %.0fs", name,
                  defaults.WORKER_RESTART_SECONDS)
        if stop.wait(defaults.WORKER_RESTART_SECONDS):
            return
