"""`python -m registrar`: one member of the registrar worker pool.

Runs reconcile and cleanup jobs from the `registrar` queue; reconciles the changes on the fast lane
(`registrar.fastlane`) as soon as they are published, in a thread of its own; and, in another, re-enqueues
sources whose wanted state has waited too long to be applied (a failed job, a worker that died mid-job,
Eureka unavailable), each with its own backoff, and forgets hosts whose watcher is gone for good.
"""

from __future__ import annotations

import logging
from typing import Sequence

from rq import Queue

from registrar import fastlane, jobs
from registrar.albs.stats import STATS as AWS_STATS
from registrar.hosts import forget_dead_hosts
from registrar.reconcile import Reconciler
from shared import config, defaults, logs, metrics, queues
from shared.worker import serve

log = logging.getLogger("registrar")


def main(argv: Sequence[str] | None = None) -> None:
    settings = config.load_registrar(argv)

    def periodic(reconciler: Reconciler, _: Queue) -> None:
        for source in reconciler.sweep_pending():
            metrics.STATES_REQUEUED.inc()
            log.info("%s: its wanted state is not applied yet; trying again", source, extra=logs.about(source=source))
        forget_dead_hosts(reconciler, settings.host_forget_margin)

    serve("registrar", settings, jobs.context, queues.REGISTRAR_QUEUE, periodic, defaults.SWEEP_INTERVAL_SECONDS,
          collectors=[metrics.AwsCollector(AWS_STATS)], fast_lane=fastlane.follow)


if __name__ == "__main__":
    main()
