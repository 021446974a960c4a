"""Every Prometheus metric of the system, declared in one place: components only increment, set or observe.

Each component serves its own registry (`registry_for`) on -metrics-port (see `shared/health.py`): the
metrics it updates and those of its Python process (memory, CPU, garbage collection). Labels name a kind,
an action or an outcome, never a container or an instance: a label value per container would make a new
time series for every container that ever ran.

What Redis holds (queue depth, states pending, instances registered) is read when Prometheus scrapes, as
`rq info` reads `q.count`, and only by the worker pools: a watcher on every host would read the same numbers
once per host. The registrar's AWS counters (`registrar/albs/stats.py`) are read at scrape time too.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator, Mapping, Protocol

import redis
from prometheus_client import (CollectorRegistry, Counter, Gauge, GCCollector, Histogram, PlatformCollector,
                               ProcessCollector, disable_created_metrics)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared import keys

log = logging.getLogger(__name__)

# Counters get no `_created` series: nothing here needs to know when a counter appeared.
disable_created_metrics()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)

# --- watcher ------------------------------------------------------------------------------------
DOCKER_EVENTS = Counter("registrator_docker_events", "Docker container events the watcher received, by action",
                        ["action"], registry=None)
STATES_PUBLISHED = Counter(
    "registrator_states_published",
    "Container states the watcher published to Redis, by outcome: changed (a reconcile follows) or unchanged",
    ["outcome"], registry=None)
LIVENESS_ENTRIES = Gauge("registrator_liveness_entries",
                         "Containers this watcher vouches for: liveness entries it renewed at its last renewal",
                         registry=None)
LIVENESS_RENEWALS = Counter("registrator_liveness_renewals",
                            "Liveness renewals (every -ttl-refresh) of this watcher, by outcome: ok, failed",
                            ["outcome"], registry=None)
RESYNCS = Counter("registrator_resyncs", "Full re-syncs of this watcher's host (start, Docker back, Redis lost "
                  "data, -resync)", registry=None)

# --- worker pools -------------------------------------------------------------------------------
JOBS = Counter(
    "registrator_jobs",
    "Jobs run, by kind (reconcile, cleanup, heartbeat, and reconcile-fast-lane: a change taken from the "
    "registrars' fast lane, not an RQ job) and outcome: done; retried (ended without finishing, and tried again "
    "later: a wanted state left pending for the sweep, a heartbeat batch cut short because Eureka is "
    "unavailable); failed (raised an error: see RQ's failed job registry, or for the fast lane the registrar's log)",
    ["kind", "outcome"], registry=None)
STATES_REQUEUED = Counter("registrator_states_requeued",
                          "Wanted states the registrars' sweep enqueued again because none was applied in time",
                          registry=None)
EVENT_TO_EUREKA = Histogram(
    "registrator_event_to_eureka_seconds",
    "From a Docker event to the Eureka write that applied it, by action (register, status, deregister): the "
    "event's time on the Docker host's clock, the answer's on the registrar's, so any difference between the "
    "two clocks is part of it", ["action"], buckets=LATENCY_BUCKETS, registry=None)
HEARTBEATS = Counter(
    "registrator_heartbeats",
    "Heartbeats, by outcome: renewed; not_found (Eureka answered 404, so the instance was registered again); "
    "not_vouched (no liveness entry: not renewed, left to expire); failed; skipped (Eureka unavailable: the "
    "rest of the batch waits for its next turn)", ["outcome"], registry=None)
HEARTBEATS_MISSED = Counter(
    "registrator_heartbeats_missed",
    "Renewals sent later than a tenth of their instance's renewal interval, plus the ticker's step (-tick), "
    "after they were due", registry=None)
HEARTBEAT_LATENESS = Histogram("registrator_heartbeat_lateness_seconds",
                               "How long after it was due each renewal was sent (times from Redis)",
                               buckets=LATENESS_BUCKETS, registry=None)

JOB_OUTCOMES = ("done", "retried", "failed")
# Label values known in advance, so that their series exist (at 0) from the start.
_KNOWN_LABELS: Mapping[str, tuple[tuple[Counter | Histogram, tuple[tuple[str, ...], ...]], ...]] = {
    "watcher": ((STATES_PUBLISHED, (("changed",), ("unchanged",))), (LIVENESS_RENEWALS, (("ok",), ("failed",)))),
    "registrar": ((JOBS, tuple((kind, outcome) for kind in ("reconcile", "cleanup") for outcome in JOB_OUTCOMES)),
                  (EVENT_TO_EUREKA, (("register",), ("status",), ("deregister",)))),
    "heartbeater": ((JOBS, tuple(("heartbeat", outcome) for outcome in JOB_OUTCOMES)),
                    (HEARTBEATS, tuple((outcome,) for outcome in
                                       ("renewed", "not_found", "not_vouched", "failed", "skipped")))),
}
_COMPONENT_METRICS: Mapping[str, tuple[Collector, ...]] = {
    "watcher": (DOCKER_EVENTS, STATES_PUBLISHED, LIVENESS_ENTRIES, LIVENESS_RENEWALS, RESYNCS),
    "registrar": (JOBS, STATES_REQUEUED, EVENT_TO_EUREKA),
    "heartbeater": (JOBS, HEARTBEATS, HEARTBEATS_MISSED, HEARTBEAT_LATENESS),
}


def registry_for(component: str, *collectors: Collector) -> CollectorRegistry:
    """What `component` serves on /metrics: its metrics, its process's, and `collectors`."""
    registry = CollectorRegistry(auto_describe=True)
    for metric, label_sets in _KNOWN_LABELS.get(component, ()):
        for labels in label_sets:
            metric.labels(*labels)
    for collector in (*_COMPONENT_METRICS[component], *collectors):
        registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def run_job(kind: str, work: Callable[[], bool]) -> bool:
    """Run a job's `work` (True: it finished what it had to do) and count its outcome."""
    try:
        finished = work()
    except BaseException:
        JOBS.labels(kind, "failed").inc()
        raise
    JOBS.labels(kind, "done" if finished else "retried").inc()
    return finished


class RedisCollector(Collector):
    """The system's backlog as Redis holds it, read at scrape time (a few commands in one round trip, no
    writes): jobs per RQ queue and state, changes on the fast lane, wanted states pending, registered
    instances, watcher hosts."""

    def __init__(self, client: redis.Redis, queue_keys: Mapping[str, Mapping[str, str]]) -> None:
        """`queue_keys`: queue name -> {"queued": list key, "started": registry key, "failed": registry key}."""
        self.client = client
        self.queue_keys = queue_keys

    def collect(self) -> Iterator[Metric]:
        pipe = self.client.pipeline(transaction=False)
        for queue_keys in self.queue_keys.values():
            for state, key in queue_keys.items():
                pipe.llen(key) if state == "queued" else pipe.zcard(key)
        pipe.llen(keys.FAST_LANE)
        pipe.zcard(keys.PENDING)
        pipe.zcard(keys.HEARTBEAT_DUE)
        pipe.zcard(keys.HOSTS)
        try:
            counts = iter(pipe.execute())
        except redis.RedisError as err:
            log.debug("metrics: cannot read Redis: %s", err)
            return
        jobs = GaugeMetricFamily("registrator_queue_jobs", "Jobs in each RQ queue, by state: queued (waiting for a "
                                 "worker), started (running), failed (kept in the failed job registry)",
                                 labels=["queue", "state"])
        for queue, queue_keys in self.queue_keys.items():
            for state in queue_keys:
                jobs.add_metric([queue, state], next(counts))
        yield jobs
        yield GaugeMetricFamily("registrator_fast_lane_changes", "Container changes waiting on the registrars' fast "
                                "lane", value=next(counts))
        yield GaugeMetricFamily("registrator_states_pending", "Wanted container states no registrar has applied "
                                "yet (on the fast lane, waiting for a job, or for a retry)", value=next(counts))
        yield GaugeMetricFamily("registrator_instances_registered", "Eureka instances the registrars registered "
                                "and the heartbeaters renew", value=next(counts))
        yield GaugeMetricFamily("registrator_hosts", "Docker hosts whose watcher Redis knows", value=next(counts))


class AwsCounts(Protocol):
    def snapshot(self) -> Mapping[str, Mapping[str, int]]: ...


class AwsCollector(Collector):
    """The registrar's AWS traffic (`registrar/albs/stats.py`): requests by operation, ALB questions answered
    from the fleet-wide cache or not, failures by kind."""

    def __init__(self, stats: AwsCounts) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        counts = self.stats.snapshot()
        calls = CounterMetricFamily("registrator_aws_calls", "Requests sent to AWS, retries included, by operation",
                                    labels=["operation"])
        _add(calls, [((operation,), count) for operation, count in counts["calls"].items()])
        yield calls
        cache = CounterMetricFamily("registrator_aws_cache", "ALB questions, by question and outcome: hit "
                                    "(answered from the cache in Redis), miss (AWS asked)",
                                    labels=["question", "outcome"])
        _add(cache, [((question, "hit"), count) for question, count in counts["cache_hits"].items()])
        _add(cache, [((question, "miss"), count) for question, count in counts["cache_misses"].items()])
        yield cache
        errors = CounterMetricFamily("registrator_aws_errors", "Failed AWS questions, by kind (those refused while "
                                     "the fleet backs off included)", labels=["kind"])
        _add(errors, [((kind,), count) for kind, count in counts["errors"].items()])
        yield errors


def _add(family: CounterMetricFamily, samples: Iterable[tuple[tuple[str, ...], int]]) -> None:
    for labels, value in samples:
        family.add_metric(list(labels), value)
