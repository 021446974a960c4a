"""`python -m registrar`: one member of the registrar worker pool.

Runs reconcile jobs from the `registrar` queue and, in a background thread, re-enqueues sources whose
wanted state has waited too long to be applied (a failed job, a worker that died mid-job).
"""

from __future__ import annotations

import logging
import threading
from typing import Sequence

from registrar import jobs
from registrar.reconcile import Reconciler
from shared import config, logs, queues
from shared.eureka import EurekaClient
from shared.periodic import every
from shared.startup import wait_for
from shared.store import Store, connect
from shared.worker import run_worker

log = logging.getLogger("registrar")

SWEEP_INTERVAL_SECONDS = 2.0


def main(argv: Sequence[str] | None = None) -> None:
    settings = config.load_registrar(argv)
    logs.setup("registrar", settings.log_level)
    client = connect(settings.redis_url)
    wait_for("Redis", client.ping, settings)
    eureka = EurekaClient.from_settings(settings)
    wait_for("Eureka", eureka.applications, settings)

    reconciler = Reconciler(Store(client), eureka)
    jobs.install(reconciler)
    rq_connection = connect(settings.redis_url, decode=False)
    queue = queues.registrar_queue(rq_connection)

    def sweep() -> None:
        for source in reconciler.sweep_pending():
            log.info("re-enqueueing %s: its wanted state is not applied yet", source)
            queues.enqueue_reconcile(queue, source)

    stop = threading.Event()
    every(SWEEP_INTERVAL_SECONDS, sweep, "pending-sweep", stop)
    log.info("registrar started: Eureka %s", ", ".join(server.url for server in eureka.servers))
    try:
        run_worker(queue, rq_connection, "registrar")
    finally:
        stop.set()


if __name__ == "__main__":
    main()
