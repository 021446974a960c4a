"""Running one member of a worker pool (registrar, heartbeater): an RQ SimpleWorker, which runs jobs in
its own process (no fork per job), plus one periodic task in a background thread, and /healthz and
/metrics on -metrics-port.

RQ's work loop rides out Redis errors only while it waits for a job; one anywhere else (finishing a job
during a failover longer than a Redis command waits, say) ends it. The process then starts a new worker
after a pause, so only SIGTERM or SIGINT ends the pool member.

Healthy (/healthz) means: Redis answers, an RQ worker loop runs and its current job (if any) has not
outlived its timeout, and the periodic task's last round ended recently (a round stuck longer than a job
may run means the sweep or the ticker is stuck).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from itertools import count
from types import FrameType
from typing import Any, Callable, Generic, Sequence, TypeVar

import redis
from prometheus_client.registry import Collector
from redis.client import Pipeline
from rq import Queue, SimpleWorker
from rq.job import Job

from shared import defaults, health, logs, metrics, queues
from shared.config import EurekaConfig
from shared.connection import connect
from shared.eureka import EurekaClient
from shared.health import Check, Pulse
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
          periodic: Callable[[T, Queue], object], interval: float, collectors: Sequence[Collector] = (),
          fast_lane: Callable[[T, threading.Event, Pulse], object] | None = None) -> None:
    """Wait for Redis and Eureka, install the jobs' context, run `periodic(context, queue)` every
    `interval` seconds, and work on `queue_name` until SIGTERM or SIGINT (the current job finishes).
    With `fast_lane`, also run `fast_lane(context, stop, pulse)` in a thread of its own: it works until
    `stop` is set, and its pulse beats at least every `defaults.FAST_LANE_WAIT_SECONDS` while it is not
    busy. /metrics shows `component`'s metrics, the queues' backlog and `collectors`."""
    logs.setup(component, settings.log_level, settings.log_format)
    connections = Connections.open(settings)
    registry = metrics.registry_for(component, metrics.RedisCollector(connections.store.redis,
                                                                      queues.queue_keys(connections.rq)),
                                    *collectors)
    endpoint = health.serve(component, settings.metrics_address, settings.metrics_port, registry)
    wait_for("Redis", connections.store.redis.ping, settings)
    wait_for("Eureka", connections.eureka.applications, settings)
    service = context.install(connections)

    queue = Queue(queue_name, connection=connections.rq)
    stop = threading.Event()
    pulse = Pulse()
    every(interval, lambda: periodic(service, queue), f"{component}-periodic", stop, pulse)
    lane, lane_pulse = None, Pulse()
    if fast_lane is not None:
        lane = threading.Thread(target=fast_lane, args=(service, stop, lane_pulse), name=f"{component}-fast-lane",
                                daemon=True)
        lane.start()
    log.info("%s started: Eureka %s", component, ", ".join(server.url for server in connections.eureka.servers))
    current = _CurrentWorker()

    def checks() -> list[Check]:
        found = [health.check_answers("redis", connections.store.redis.ping), current.check(),
                 health.check_recent(f"{component}-periodic", pulse, interval + defaults.PERIODIC_STUCK_SECONDS,
                                     "last round ended")]
        if lane is not None:
            found.append(health.check_recent(f"{component}-fast-lane", lane_pulse, defaults.FAST_LANE_WAIT_SECONDS
                                             + defaults.JOB_TIMEOUT_SECONDS + defaults.STUCK_MARGIN_SECONDS,
                                             "last change taken or waited for"))
        return found

    if endpoint is not None:
        endpoint.checks = checks
    try:
        _work_until_stopped(component, queue, stop, current)
    finally:
        stop.set()
        if lane is not None:  # its current change, if any, ends first (or is left pending for the sweep)
            lane.join(defaults.STUCK_MARGIN_SECONDS)


class _PoolWorker(SimpleWorker):
    """A SimpleWorker that remembers being asked to stop, which tells its end apart from RQ giving up, and
    tells /healthz whether its loop runs and how long its current job has run. Its heartbeat (two commands,
    sent before and after every job) takes one round trip."""

    stop_requested = False
    _working = False
    _job: tuple[float, Job] | None = None

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        super().request_stop(signum, frame)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        self._working = True
        try:
            return super().work(*args, **kwargs)
        finally:
            self._working = False

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        with self.connection.pipeline(transaction=False) as batch:
            super().heartbeat(timeout, batch)
            batch.execute()

    def execute_job(self, job: Job, queue: Queue) -> None:
        self._job = (time.monotonic(), job)
        try:
            super().execute_job(job, queue)
        finally:
            self._job = None

    def check(self) -> Check:
        if not self._working:
            return Check("rq-worker", False, f"worker {self.name} is not running")
        current = self._job
        if current is None:
            return Check("rq-worker", True, f"{self.name} waiting for jobs on {', '.join(self.queue_names())}")
        started, job = current
        running = time.monotonic() - started
        timeout = job.timeout or defaults.JOB_TIMEOUT_SECONDS
        stuck = running > timeout + defaults.STUCK_MARGIN_SECONDS
        return Check("rq-worker", not stuck, f"{self.name} running {job.description!r} for {running:.1f}s "
                     f"(timeout {timeout}s{'; stuck' if stuck else ''})")


class _CurrentWorker:
    """The pool member's RQ worker of the moment (a new one follows one that RQ ended), for /healthz."""

    worker: _PoolWorker | None = None

    def check(self) -> Check:
        worker = self.worker
        return Check("rq-worker", False, "no RQ worker started yet") if worker is None else worker.check()


def _work_until_stopped(component: str, queue: Queue, stop: threading.Event, current: _CurrentWorker) -> None:
    for run in count(1):
        name = f"{component}.{socket.gethostname()}.{os.getpid()}" + (f".{run}" if run > 1 else "")
        worker = current.worker = _PoolWorker([queue], connection=queue.connection, name=name)
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
