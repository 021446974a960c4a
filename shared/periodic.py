"""Run a function every few seconds in a background thread, surviving its failures."""

from __future__ import annotations

import logging
import threading
from typing import Callable

from shared.health import Pulse

log = logging.getLogger(__name__)


def every(seconds: float, action: Callable[[], object], name: str, stop: threading.Event,
          pulse: Pulse | None = None) -> threading.Thread:
    """Start a daemon thread that calls `action` every `seconds` until `stop` is set. An exception is
    logged and the next round happens as planned. `pulse` beats at the end of every round (for /healthz:
    a round that never ends means the thread is stuck)."""

    def loop() -> None:
        while not stop.wait(seconds):
            try:
                action()
            except Exception:  # noqa: BLE001 - a failed round must not end the loop
                log.exception("%s failed; trying again in %ss", name, seconds)
            if pulse is not None:
                pulse.beat()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread
