"""RQ entry points of the heartbeater pool (see shared.queues for how they are enqueued)."""

from __future__ import annotations

from heartbeater.heartbeat import Heartbeater
from registrar.albs import alb_resolver
from shared import config, metrics, queues
from shared.config import HeartbeaterConfig
from shared.worker import Connections, JobContext


def build(connections: Connections[HeartbeaterConfig]) -> Heartbeater:
    settings = connections.settings
    resolver = alb_resolver(connections.store.redis, check_interval=settings.alb_check_interval)
    return Heartbeater(connections.store, connections.eureka, queues.registrar_queue(connections.rq), settings.tick,
                       resolver)


context: JobContext[HeartbeaterConfig, Heartbeater] = JobContext(config.load_heartbeater, build)


def heartbeat(instance_keys: list[str], due: list[float] | None = None) -> None:
    metrics.run_job("heartbeat", lambda: context.get().beat(instance_keys, due))
