"""`python -m heartbeater`: one member of the heartbeater worker pool.

A ticker thread claims the instances whose heartbeat is due (atomically, so any number of
heartbeaters share the work without double renewals) and enqueues them in batches; the worker runs
those batches.
"""

from __future__ import annotations

import logging
import threading
from typing import Sequence

from heartbeater import jobs
from heartbeater.heartbeat import Heartbeater
from shared import config, logs, queues
from shared.eureka import EurekaClient
from shared.periodic import every
from shared.startup import wait_for
from shared.store import Store, connect
from shared.worker import run_worker

log = logging.getLogger("heartbeater")


def main(argv: Sequence[str] | None = None) -> None:
    settings = config.load_heartbeater(argv)
    logs.setup("heartbeater", settings.log_level)
    client = connect(settings.redis_url)
    wait_for("Redis", client.ping, settings)
    eureka = EurekaClient.from_settings(settings)
    wait_for("Eureka", eureka.applications, settings)

    heartbeater = Heartbeater(Store(client), eureka)
    jobs.install(heartbeater)
    rq_connection = connect(settings.redis_url, decode=False)
    queue = queues.heartbeat_queue(rq_connection)

    def tick() -> None:
        while batch := heartbeater.due(settings.batch_size):
            queues.enqueue_heartbeats(queue, batch)
            if len(batch) < settings.batch_size:
                break

    stop = threading.Event()
    every(settings.tick, tick, "heartbeat-ticker", stop)
    log.info("heartbeater started: Eureka %s", ", ".join(server.url for server in eureka.servers))
    try:
        run_worker(queue, rq_connection, "heartbeater")
    finally:
        stop.set()


if __name__ == "__main__":
    main()
