"""Counters of this process's AWS traffic, in one place for the metrics endpoint to read
(`shared.metrics.AwsCollector`)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class AwsStats:
    # Requests sent to AWS by operation, retries included: what AWS rate-limits.
    calls: Counter[str] = field(default_factory=Counter)
    # Questions of `AlbDirectory` answered from the Redis cache, or not, by question.
    cache_hits: Counter[str] = field(default_factory=Counter)
    cache_misses: Counter[str] = field(default_factory=Counter)
    # Failed questions by `ErrorKind`, those refused during a backoff included.
    errors: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def call(self, operation: str) -> None:
        self._add(self.calls, operation)

    def hit(self, question: str) -> None:
        self._add(self.cache_hits, question)

    def miss(self, question: str) -> None:
        self._add(self.cache_misses, question)

    def error(self, kind: str) -> None:
        self._add(self.errors, kind)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """A copy of every counter, taken at once."""
        with self._lock:
            return {"calls": dict(self.calls), "cache_hits": dict(self.cache_hits),
                    "cache_misses": dict(self.cache_misses), "errors": dict(self.errors)}

    def _add(self, counter: Counter[str], key: str) -> None:
        with self._lock:
            counter[key] += 1


STATS = AwsStats()
