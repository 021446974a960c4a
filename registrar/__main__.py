"""`python -m registrar`: one member of the registrar worker pool.

Runs reconcile and cleanup jobs from the `registrar` queue and, in a background thread, re-enqueues
sources whose wanted state has waited too long to be applied (a failed job, a worker that died mid-job).
"""

from __future__ import annotations

import logging
from typing import Sequence

from rq import Queue

from registrar import jobs
from registrar.reconcile import Reconciler
from shared import config, queues
from shared.worker import serve

log = logging.getLogger("registrar")

SWEEP_INTERVAL_SECONDS = 2.0


def requeue_pending(reconciler: Reconciler, queue: Queue) -> None:
    for source in reconciler.sweep_pending():
        log.info("re-enqueueing %s: its wanted state is not applied yet", source)
        queues.enqueue_reconcile(queue, source)


def main(argv: Sequence[str] | None = None) -> None:
    serve("registrar", config.load_registrar(argv), jobs.context, queues.REGISTRAR_QUEUE, requeue_pending,
          SWEEP_INTERVAL_SECONDS)


if __name__ == "__main__":
    main()
