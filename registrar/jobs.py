"""RQ entry points of the registrar pool (see shared.queues for how they are enqueued)."""

from __future__ import annotations

from rq import get_current_job

from registrar.albs import alb_resolver
from registrar.cleanup import remove_dangling
from registrar.reconcile import Reconciler
from shared import config, keys, metrics, queues
from shared.config import RegistrarConfig
from shared.models import state_reader
from shared.worker import Connections, JobContext


def build(connections: Connections[RegistrarConfig]) -> Reconciler:
    settings = connections.settings
    state_reader()
    return Reconciler(connections.store, connections.eureka, queues.registrar_queue(connections.rq),
                      min_renewal=settings.min_renewal_interval,
                      resolver=alb_resolver(connections.store.redis, check_interval=settings.alb_check_interval))


context: JobContext[RegistrarConfig, Reconciler] = JobContext(config.load_registrar, build)


def reconcile_source(source: str, force: bool = False) -> None:
    job = get_current_job()
    metrics.run_job("reconcile", lambda: context.get().run_job(source, force, job.id if job else ""))


def cleanup_host(host: str) -> None:
    metrics.run_job("cleanup", lambda: _cleanup(host))


def _cleanup(host: str) -> bool:
    reconciler = context.get()
    job = get_current_job()
    reconciler.store.release_job(keys.cleanup_job_name(host), job.id if job else "")
    remove_dangling(host, reconciler.store, reconciler.eureka)
    return True
