"""The registrars' fast lane: every change a watcher publishes is also pushed on a Redis list
(`Store.publish_state`), and each registrar takes changes from it in a thread of its own and reconciles
them at once.

RQ spends several round trips taking and preparing a job before it runs: on a busy host, milliseconds of
every registration and deregistration. The lane skips them. A change stays pending until it is applied,
so one the lane did not apply (no registrar taking from it, Eureka unavailable, a registrar lost mid-way,
the lane trimmed) becomes an RQ job when the registrars' sweep finds it a few seconds later: that is the
path that never loses a change (retried with backoff, shown in the RQ dashboard). Both take the source's
lock and read the state as it is then, so either order ends the same (see `registrar.reconcile`).
"""

from __future__ import annotations

import logging
import threading

from registrar.reconcile import Reconciler
from shared import defaults, logs, metrics
from shared.health import Pulse

log = logging.getLogger(__name__)


def take_one(reconciler: Reconciler, wait: float = defaults.FAST_LANE_WAIT_SECONDS) -> str | None:
    """Reconcile the change that has waited longest on the lane, waiting up to `wait` seconds for one.
    Returns its source (None: no change came)."""
    source = reconciler.store.take_fast_lane(wait)
    if source is not None:
        try:
            metrics.run_job("reconcile-fast-lane", lambda: reconciler.reconcile(source))
        except Exception:  # noqa: BLE001 - still pending: the sweep enqueues it as a job
            log.exception("fast lane: reconciling %s failed; the sweep enqueues it again", source,
                          extra=logs.about(source=source))
    return source


def follow(reconciler: Reconciler, stop: threading.Event, pulse: Pulse) -> None:
    """Take changes from the lane until `stop` is set; `pulse` beats after each wait or change."""
    while not stop.is_set():
        try:
            take_one(reconciler)
        except Exception as err:  # noqa: BLE001 - Redis unavailable: changes wait in the lane or their jobs
            log.warning("fast lane: cannot take the next change (%s); trying again in %.0fs", err,
                        defaults.FAST_LANE_ERROR_PAUSE_SECONDS)
            stop.wait(defaults.FAST_LANE_ERROR_PAUSE_SECONDS)
        pulse.beat()
