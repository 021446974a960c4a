"""RQ entry points of the heartbeater pool (see shared.queues for how they are enqueued)."""

from __future__ import annotations

from heartbeater.heartbeat import Heartbeater
from shared import config
from shared.eureka import EurekaClient
from shared.store import Store, connect

_heartbeater: Heartbeater | None = None


def install(heartbeater: Heartbeater) -> None:
    """Give the jobs of this process their Redis and Eureka clients (done by `python -m heartbeater`)."""
    global _heartbeater
    _heartbeater = heartbeater


def _current() -> Heartbeater:
    # A plain `rq worker` process gets its clients from the environment on first use.
    if _heartbeater is None:
        settings = config.load_heartbeater([])
        install(Heartbeater(Store(connect(settings.redis_url)),
                            EurekaClient.from_settings(settings)))
    assert _heartbeater is not None
    return _heartbeater


def heartbeat(instance_keys: list[str]) -> None:
    _current().beat(instance_keys)
