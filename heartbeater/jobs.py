"""RQ entry points of the heartbeater pool (see shared.queues for how they are enqueued)."""

from __future__ import annotations

from heartbeater.heartbeat import Heartbeater
from shared import config
from shared.worker import JobContext

context: JobContext[Heartbeater] = JobContext(config.load_heartbeater, Heartbeater)


def heartbeat(instance_keys: list[str]) -> None:
    context.get().beat(instance_keys)
