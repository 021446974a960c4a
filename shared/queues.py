"""The RQ queues and the jobs on them: the only contract between the watcher and the worker pools.

Jobs carry identifiers only (a source, instance keys, a host name), never records or credentials: a
worker reads the current state from Redis when it runs, so a late or repeated job cannot apply stale data.
"""

from __future__ import annotations

import redis
from rq import Queue
from rq.job import Job

REGISTRAR_QUEUE = "registrar"
HEARTBEAT_QUEUE = "heartbeat"

RECONCILE_JOB = "registrar.jobs.reconcile_source"
CLEANUP_JOB = "registrar.jobs.cleanup_host"
HEARTBEAT_JOB = "heartbeater.jobs.heartbeat"

JOB_TIMEOUT = 120
RESULT_TTL = 300
FAILURE_TTL = 24 * 3600


def registrar_queue(connection: redis.Redis) -> Queue:
    return Queue(REGISTRAR_QUEUE, connection=connection)


def enqueue_reconcile(queue: Queue, source: str, *, force: bool = False) -> Job:
    """Ask a registrar to make Eureka match `source`'s wanted state (`force`: re-register even if
    Redis says it is registered already)."""
    return queue.enqueue(RECONCILE_JOB, source, force, job_timeout=JOB_TIMEOUT, result_ttl=RESULT_TTL,
                         failure_ttl=FAILURE_TTL, description=f"reconcile {source}")


def enqueue_cleanup(queue: Queue, host: str) -> Job:
    """Ask a registrar to delete the Eureka instances `host` registered for containers Redis does not
    know (-cleanup)."""
    return queue.enqueue(CLEANUP_JOB, host, job_timeout=JOB_TIMEOUT, result_ttl=RESULT_TTL,
                         failure_ttl=FAILURE_TTL, description=f"cleanup {host}")


def enqueue_heartbeats(queue: Queue, instance_keys: list[str]) -> Job:
    return queue.enqueue(HEARTBEAT_JOB, instance_keys, job_timeout=JOB_TIMEOUT, result_ttl=0,
                         failure_ttl=FAILURE_TTL, description=f"heartbeat {len(instance_keys)} instances")
