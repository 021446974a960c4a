"""RQ entry points of the registrar pool (see shared.queues for how they are enqueued)."""

from __future__ import annotations

from registrar.cleanup import remove_dangling
from registrar.reconcile import Reconciler
from shared import config
from shared.worker import JobContext

context: JobContext[Reconciler] = JobContext(config.load_registrar, Reconciler)


def reconcile_source(source: str, force: bool = False) -> None:
    context.get().reconcile(source, force)


def cleanup_host(host: str) -> None:
    reconciler = context.get()
    remove_dangling(host, reconciler.store, reconciler.eureka)
