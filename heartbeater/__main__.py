"""`python -m heartbeater`: one member of the heartbeater worker pool.

A background thread claims the instances whose heartbeat is due (atomically, so any number of
heartbeaters share the work without double renewals) and enqueues them in batches; the worker runs
those batches.
"""

from __future__ import annotations

from typing import Sequence

from rq import Queue

from heartbeater import jobs
from heartbeater.heartbeat import Heartbeater
from shared import config, queues
from shared.worker import serve


def main(argv: Sequence[str] | None = None) -> None:
    settings = config.load_heartbeater(argv)

    def enqueue_due(heartbeater: Heartbeater, queue: Queue) -> None:
        while True:
            claimed = heartbeater.due(settings.batch_size)
            if claimed.instance_keys:
                queues.enqueue_heartbeats(queue, claimed.instance_keys, expires_after=claimed.shortest_interval,
                                          due=claimed.due)
            if len(claimed.instance_keys) < settings.batch_size:
                break

    serve("heartbeater", settings, jobs.context, queues.HEARTBEAT_QUEUE, enqueue_due, settings.tick)


if __name__ == "__main__":
    main()
