"""The RQ queues and the jobs on them: with the wanted states in Redis (`shared.store`), the contract
between the watcher and the worker pools.

A container's change reaches the registrars on their fast lane (`registrar.fastlane`), not as a job.
Reconcile jobs are the path that never loses one: a change no registrar applied within a few seconds
(the sweep), a forced re-registration, a claimant whose instance was freed.

Jobs carry identifiers only (a source, instance keys, a host name), never records or credentials: a
worker reads the current state from Redis when it runs, so a late or repeated job cannot apply stale data.
Their descriptions name what a person looks for in the RQ dashboard ("reconcile web-1 on host-a").

At most one reconcile job per source waits in the queue (`Store.claim_job` decides, and the job releases
its claim when it starts), and heartbeat jobs expire once their renewal interval has passed: an Eureka
outage of an hour leaves O(sources) jobs, not one per event.
"""

from __future__ import annotations

import uuid

import redis
from rq import Queue
from rq.job import Job

from shared import defaults, keys
from shared.store import Store

REGISTRAR_QUEUE = "registrar"
HEARTBEAT_QUEUE = "heartbeat"

RECONCILE_JOB = "registrar.jobs.reconcile_source"
CLEANUP_JOB = "registrar.jobs.cleanup_host"
HEARTBEAT_JOB = "heartbeater.jobs.heartbeat"

# Finished jobs stay a minute (the dashboard shows what ran lately): RQ keeps one in the round trip that
# ends it, where deleting one at once costs it several more.
RESULT_TTL = 60
FAILURE_TTL = 24 * 3600


def new_job_id() -> str:
    return uuid.uuid4().hex


def registrar_queue(connection: redis.Redis) -> Queue:
    return Queue(REGISTRAR_QUEUE, connection=connection)


def queue_keys(connection: redis.Redis) -> dict[str, dict[str, str]]:
    """Each queue's Redis keys, as RQ names them, by job state: queued (a list), started and failed (registries)."""
    found = {}
    for name in (REGISTRAR_QUEUE, HEARTBEAT_QUEUE):
        queue = Queue(name, connection=connection)
        found[name] = {"queued": queue.key, "started": queue.started_job_registry.key,
                       "failed": queue.failed_job_registry.key}
    return found


def enqueue_reconcile(queue: Queue, source: str, container_name: str, job_id: str, *, force: bool = False) -> Job:
    """Ask a registrar to make Eureka match `source`'s wanted state (`force`: re-register even if
    Redis says it is registered already)."""
    host, container_id = keys.split_source(source)
    name = container_name.lstrip("/") or container_id[:12]
    return queue.enqueue(RECONCILE_JOB, source, force, job_id=job_id, job_timeout=defaults.JOB_TIMEOUT_SECONDS,
                         result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL,
                         description=f"{'re-register' if force else 'reconcile'} {name} on {host}")


def requeue_reconcile(store: Store, queue: Queue, source: str) -> None:
    """Enqueue a reconcile of `source`, unless one is already waiting in the queue."""
    job_id = new_job_id()
    if store.claim_job(keys.reconcile_job_name(source), job_id):
        state, _ = store.read_state(source)
        enqueue_reconcile(queue, source, state.container_name if state else "", job_id)


def enqueue_cleanup(queue: Queue, host: str, job_id: str) -> Job:
    """Ask a registrar to delete the Eureka instances `host` registered for containers Redis does not
    know (-cleanup)."""
    return queue.enqueue(CLEANUP_JOB, host, job_id=job_id, job_timeout=defaults.JOB_TIMEOUT_SECONDS,
                         result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL, description=f"cleanup {host}")


def enqueue_heartbeats(queue: Queue, instance_keys: list[str], expires_after: float,
                       due: list[float] | None = None) -> Job:
    """Renew `instance_keys` (due at the Redis times `due`, to measure how late they are); a job still queued
    after `expires_after` seconds is dropped (their next turn has come by then)."""
    first = instance_keys[0] if instance_keys else ""
    more = f" and {len(instance_keys) - 1} more" if len(instance_keys) > 1 else ""
    due_ms = None if due is None else [round(time, 3) for time in due]
    return queue.enqueue(HEARTBEAT_JOB, instance_keys, due_ms, ttl=max(1, int(expires_after)),
                         job_timeout=defaults.JOB_TIMEOUT_SECONDS, result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL,
                         description=f"heartbeat {first}{more}")
