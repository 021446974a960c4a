"""Running one member of a worker pool (registrar, heartbeater): an RQ SimpleWorker, which runs jobs in
its own process (no fork per job), plus one periodic task in a background thread."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Callable, Generic, Sequence, TypeVar

from rq import Queue, SimpleWorker

from shared import logs
from shared.config import RegistrarConfig
from shared.eureka import EurekaClient
from shared.periodic import every
from shared.startup import wait_for
from shared.store import Store, connect

log = logging.getLogger(__name__)
T = TypeVar("T")


class JobContext(Generic[T]):
    """What a pool's jobs work with: `build` applied to the process's Redis store and Eureka client.

    `python -m <component>` installs it at start; in a plain `rq worker` process it is built from the
    environment on first use.
    """

    def __init__(self, load_settings: Callable[[Sequence[str]], RegistrarConfig],
                 build: Callable[[Store, EurekaClient], T]) -> None:
        self._load_settings = load_settings
        self._build = build
        self._value: T | None = None

    def install(self, store: Store, eureka: EurekaClient) -> T:
        self._value = self._build(store, eureka)
        return self._value

    def get(self) -> T:
        if self._value is None:
            settings = self._load_settings([])
            return self.install(Store(connect(settings.redis_url)), EurekaClient.from_settings(settings))
        return self._value


def serve(component: str, settings: RegistrarConfig, context: JobContext[T], queue_name: str,
          periodic: Callable[[T, Queue], object], interval: float) -> None:
    """Wait for Redis and Eureka, install the jobs' context, run `periodic(context, queue)` every
    `interval` seconds, and work on `queue_name` until SIGTERM or SIGINT (the current job finishes)."""
    logs.setup(component, settings.log_level)
    client = connect(settings.redis_url)
    wait_for("Redis", client.ping, settings)
    eureka = EurekaClient.from_settings(settings)
    wait_for("Eureka", eureka.applications, settings)
    service = context.install(Store(client), eureka)

    rq_connection = connect(settings.redis_url, decode=False)
    queue = Queue(queue_name, connection=rq_connection)
    stop = threading.Event()
    every(interval, lambda: periodic(service, queue), f"{component}-periodic", stop)
    log.info("%s started: Eureka %s", component, ", ".join(server.url for server in eureka.servers))
    worker = SimpleWorker([queue], connection=rq_connection,
                          name=f"{component}.{socket.gethostname()}.{os.getpid()}")
    try:
        worker.work(logging_level=None)
    finally:
        stop.set()
