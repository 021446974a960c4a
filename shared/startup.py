"""Startup: wait for a dependency with bounded retries (-retry-attempts, -retry-interval)."""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

from shared.config import CommonConfig

log = logging.getLogger(__name__)
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], config: CommonConfig) -> T:
    """Call `check` until it returns without raising and return its result; exit with status 1 when the
    attempts run out."""
    attempt = 0
    while True:
        try:
            return check()
        except Exception as err:  # noqa: BLE001 - any failure of the check means "not ready yet"
            attempt += 1
            if config.retry_attempts != -1 and attempt > config.retry_attempts:
                log.critical("giving up on %s after %d attempts: %s", what, attempt, err)
                raise SystemExit(1) from None
            log.warning("waiting for %s (attempt %d): %s", what, attempt, err)
            time.sleep(config.retry_interval_seconds)
