"""RQ entry points of the registrar pool (see shared.queues for how they are enqueued)."""

from __future__ import annotations

from registrar.cleanup import remove_dangling
from registrar.reconcile import Reconciler
from shared import config
from shared.eureka import EurekaClient
from shared.store import Store, connect

_reconciler: Reconciler | None = None


def install(reconciler: Reconciler) -> None:
    """Give the jobs of this process their Redis and Eureka clients (done by `python -m registrar`)."""
    global _reconciler
    _reconciler = reconciler


def _current() -> Reconciler:
    # A plain `rq worker` process gets its clients from the environment on first use.
    if _reconciler is None:
        settings = config.load_registrar([])
        install(Reconciler(Store(connect(settings.redis_url)),
                           EurekaClient.from_settings(settings)))
    assert _reconciler is not None
    return _reconciler


def reconcile_source(source: str, force: bool = False) -> None:
    _current().reconcile(source, force)


def cleanup_host(host: str) -> None:
    reconciler = _current()
    remove_dangling(host, reconciler.store, reconciler.eureka)
