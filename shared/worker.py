"""Run an RQ worker pool member: a SimpleWorker, which runs jobs in its own process (no fork per job)."""

from __future__ import annotations

import os
import socket

import redis
from rq import Queue, SimpleWorker


def run_worker(queue: Queue, connection: redis.Redis, component: str) -> None:
    """Work on `queue` until SIGTERM or SIGINT (RQ finishes the current job, then returns)."""
    worker = SimpleWorker([queue], connection=connection,
                          name=f"{component}.{socket.gethostname()}.{os.getpid()}")
    worker.work(logging_level=None)
