"""Heartbeats at scale: synthetic instances in Redis, renewed by the real heartbeater workers.

The instances are written through the project's `Store` exactly as a watcher and a registrar write a
real container's: the container's wanted state with a liveness entry (`publish_state`), its reconcile job
started (`release_job`), the registered instance with its heartbeat schedule (`track`), the state marked
applied (`mark_applied`). No containers exist: nothing but the heartbeaters touches them, and their
liveness entries live longer than the bench.

The bench sets the heartbeat schedule itself (the due times in `reg:hb:due`): all instances are parked
far in the future, and a phase makes its own set due when it wants (all at once, or spread over an
interval). Between phases the heartbeat queue is emptied and the workers let finish, so each phase
renews only its own instances. The sets grow (1k, 10k, 30k, then all in the steady state).
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import redis

from bench.parts import Parts, cpu_seconds, pid, rss_bytes
from shared import keys, queues
from shared.connection import connect
from shared.models import ContainerState, InstanceStatus, Phase, ServiceRecord
from shared.registration import registration
from shared.store import Store
from tests.support import wait_until

# Longer than any bench: the synthetic containers stay vouched for without a watcher renewing them.
LIVENESS_TTL_SECONDS = 6 * 3600
SWEEP_AFTER_SECONDS = 10.0
INSTANCES_PER_HOST = 300
APPS = 500
PARKED_SECONDS = 86400
SEED_CHUNK = 500


@dataclass(frozen=True)
class Synthetic:
    key: str
    source: str
    state: ContainerState
    document: dict[str, Any]
    interval: int

    @property
    def path(self) -> str:
        """The path of its renewals at Eureka."""
        app, instance_id = keys.split_instance_key(self.key)
        return f"/eureka/apps/{app}/{instance_id}"


def synthetic(index: int, interval: int) -> Synthetic:
    """Instance `index`: a container with one published port on one of many hosts, in one of many apps."""
    host = f"bench-host-{index // INSTANCES_PER_HOST}"
    container_id = hashlib.sha256(str(index).encode()).hexdigest()
    ip = f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"
    attrs = {} if interval == 30 else {"eureka_leaseinfo_renewalintervalinsecs": str(interval)}
    record = ServiceRecord(service_id=f"{host}:bench-hb-{index}:80", name=f"bench-hb{index % APPS}", ip=ip,
                           port=20000 + index % 20000, exposed_port=80, protocol="tcp", host_ip=ip, attrs=attrs,
                           container_id=container_id, container_name=f"/bench-hb-{index}")
    state = ContainerState(host=host, container_id=container_id, container_name=record.container_name,
                           phase=Phase.RUNNING, status=InstanceStatus.UP, services=(record,))
    built = registration(record, state.status, host=host)
    if built.problems:
        raise RuntimeError(f"synthetic instance {index}: {built.problems}")
    return Synthetic(keys.instance_key(built.app, built.instance_id), keys.source(host, container_id), state,
                     built.document, built.renewal_interval)


def seed(store: Store, instances: list[Synthetic]) -> None:
    """Publish, register and apply every instance as the watcher and a registrar would; then park its
    heartbeats (a chunk at a time, before the first of them comes due)."""
    for first in range(0, len(instances), SEED_CHUNK):
        chunk = instances[first:first + SEED_CHUNK]
        for instance in chunk:
            # Forced, as a watcher's re-sync: not on the registrars' fast lane (the bench registers it itself),
            # and with no job enqueued, the job flag is released at once.
            job_id = f"bench-seed-{instance.source}"
            store.publish_state(instance.source, instance.state, ttl=LIVENESS_TTL_SECONDS,
                                sweep_after=SWEEP_AFTER_SECONDS, force=True, job_id=job_id)
            store.release_job(keys.reconcile_job_name(instance.source), job_id)
            store.track(instance.key, instance.source, instance.document, instance.interval)
            if not store.mark_applied(instance.source, "1"):
                raise RuntimeError(f"{instance.source}: its state changed while seeding")
        schedule(store.redis, chunk, lambda index: time.time() + PARKED_SECONDS)


def schedule(client: redis.Redis, instances: list[Synthetic], due: Callable[[int], float]) -> None:
    """Make instance i's next heartbeat due at `due(i)` (Redis time: this machine's clock)."""
    client.zadd(keys.HEARTBEAT_DUE, {instance.key: due(index) for index, instance in enumerate(instances)})


class Renewals:
    """Arrival times (seconds) of the renewals of the bench's instances, by instance path."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.by_path: dict[str, list[float]] = defaultdict(list)

    def update(self) -> None:
        for arrival, method, path in self.parts.eureka.fetch():
            if method == "PUT" and path.startswith("/eureka/apps/BENCH-HB"):
                self.by_path[path].append(arrival / 1e9)


class Counters:
    """CPU of the heartbeaters, of Redis and of the recording Eureka, and Redis commands, at one moment."""

    def __init__(self, parts: Parts) -> None:
        self.at = time.time()
        self.heartbeaters = sum(cpu_seconds(pid(process)) for process in parts.heartbeaters)
        self.redis = parts.redis_cpu_seconds()
        self.eureka = cpu_seconds(pid(parts.eureka.process))
        self.commands = sum(parts.command_counts().values())


class HeartbeatBench:
    def __init__(self, parts: Parts, count: int, interval: int) -> None:
        self.parts = parts
        self.store = Store(connect(SimpleNamespace(redis_url=parts.redis_server.url, redis_sentinel_password=None)))
        self.renewals = Renewals(parts)
        self.instances = [synthetic(index, interval) for index in range(count)]
        self.interval = interval

    def seed(self) -> dict[str, Any]:
        """All instances, parked. Redis memory before and after gives the bytes one instance costs."""
        before, started = self.parts.redis_memory(), time.monotonic()
        seed(self.store, self.instances)
        elapsed = time.monotonic() - started
        after = self.parts.redis_memory()
        return {"instances": len(self.instances), "seconds": elapsed,
                "redis_bytes_per_instance": (after - before) / len(self.instances)}

    def _settle(self) -> None:
        """Park every instance, drop queued heartbeat jobs and let the running ones finish."""
        schedule(self.parts.redis, self.instances, lambda index: time.time() + PARKED_SECONDS)
        self.parts.queue(queues.HEARTBEAT_QUEUE).empty()
        wait_until(lambda: self.parts.quiet(queues.HEARTBEAT_QUEUE), 60, "heartbeat jobs to finish", interval=0.05)

    def cycle(self, count: int) -> dict[str, Any]:
        """`count` instances due at once: how long the pool takes for `count` renewals, and what they cost."""
        self._settle()
        instances = self.instances[:count]
        paths = [instance.path for instance in instances]
        before = Counters(self.parts)
        schedule(self.parts.redis, instances, lambda index: before.at)

        def renewed() -> list[float] | None:
            self.renewals.update()
            arrivals = sorted(arrival for path in paths for arrival in self.renewals.by_path.get(path, ())
                              if arrival >= before.at)
            return arrivals if len(arrivals) >= count else None

        arrivals = wait_until(renewed, 60 + count / 50, f"{count} renewals", interval=0.5)[:count]
        after = Counters(self.parts)
        distinct = sum(any(before.at <= arrival <= arrivals[-1] for arrival in self.renewals.by_path.get(path, ()))
                       for path in paths)
        return {"instances": count, "cycle_s": arrivals[-1] - arrivals[0], "distinct_renewed": distinct,
                **_costs(before, after, count)}

    def steady(self, window_cycles: int, tolerance: float) -> dict[str, Any]:
        """Every instance due once per interval, spread evenly, for `window_cycles` intervals."""
        self._settle()
        count = len(self.instances)
        start = time.time() + 1
        due = {instance.path: start + index * self.interval / count for index, instance in enumerate(self.instances)}
        schedule(self.parts.redis, self.instances, lambda index: start + index * self.interval / count)
        time.sleep(max(0.0, start - time.time()))
        before = Counters(self.parts)
        end = start + window_cycles * self.interval
        while time.time() < end:
            time.sleep(min(1.0, max(0.0, end - time.time())))
            self.renewals.update()
        after = Counters(self.parts)
        self.renewals.update()
        heartbeater_rss = max(rss_bytes(pid(process)) for process in self.parts.heartbeaters)
        self._settle()
        arrivals = {path: [arrival for arrival in self.renewals.by_path.get(path, ()) if start <= arrival < end]
                    for path in due}
        renewed = sum(len(times) for times in arrivals.values())
        missed, lateness = missed_renewals(arrivals, due, self.interval, tolerance, end)
        return {"instances": count, "interval_s": self.interval, "window_s": end - start, "renewals": renewed,
                "renewals_per_s": renewed / (end - start), "needed_per_s": count / self.interval,
                "missed": missed, "tolerance_s": tolerance, "lateness_s": lateness,
                "eureka_busy_fraction": (after.eureka - before.eureka) / (after.at - before.at),
                "heartbeater_rss_bytes": heartbeater_rss, **_costs(before, after, renewed)}


def _costs(before: Counters, after: Counters, renewals: int) -> dict[str, float]:
    per = max(renewals, 1)
    return {
        "heartbeater_cpu_s": after.heartbeaters - before.heartbeaters,
        "heartbeater_cpu_ms_per_1000": (after.heartbeaters - before.heartbeaters) / per * 1e6,
        "redis_cpu_ms_per_1000": (after.redis - before.redis) / per * 1e6,
        "redis_commands_per_renewal": (after.commands - before.commands) / per,
    }


def missed_renewals(arrivals: dict[str, list[float]], first_due: dict[str, float], interval: float,
                    tolerance: float, end: float) -> tuple[int, list[float]]:
    """Renewals that came later than `interval + tolerance` after the one before (the first one: later than
    `tolerance` after it was due), and those still overdue at `end`; with the lateness of every renewal
    (seconds past the interval after the one before)."""
    missed, lateness = 0, []
    for path, due in first_due.items():
        previous = due - interval
        for arrival in sorted(arrivals.get(path, ())):
            late = arrival - previous - interval
            lateness.append(late)
            missed += late > tolerance
            previous = arrival
        missed += end - previous - interval > tolerance
    return missed, lateness
