"""ALB lookups off the reconcile job's thread, so that no job waits on AWS.

A lookup whose answers are all in the fleet's cache takes milliseconds; one that must ask AWS can take
seconds (a cold cache, throttling, timeouts). A reconcile job hands its lookups to this process's lookup
threads and waits for them only briefly (`defaults.ALB_LOOKUP_WAIT_SECONDS`). When they are not done by
then, the job leaves its container pending and the registrar's worker goes on with the next job; once they
are done, a callback has the container reconciled again, its answers now in the cache. The same lookup
asked by several jobs at once runs once.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Callable, Sequence

from registrar.albs.resolver import AlbResolver, Unknown
from shared import defaults
from shared.alb import AlbEndpoint, AlbIntent, AlbLookup, ExplicitAlb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Found:
    endpoint: AlbEndpoint
    healthy_targets: int | None  # None: AWS did not say now


Answer = Found | Unknown
# What a lookup depends on: the intent's target, and the host's EC2 instance id when it needs one.
_Question = tuple[AlbLookup | ExplicitAlb, str | None]


class Lookups:
    def __init__(self, resolver: AlbResolver, *, wait_seconds: float = defaults.ALB_LOOKUP_WAIT_SECONDS,
                 threads: int = defaults.ALB_LOOKUP_THREADS) -> None:
        self.resolver = resolver
        self.wait_seconds = wait_seconds
        self._threads = threads
        self._work: queue.SimpleQueue[tuple[_Question, AlbIntent, Future[Answer]]] = queue.SimpleQueue()
        self._running: dict[_Question, Future[Answer]] = {}
        self._lock = threading.Lock()
        self._started = False

    def find(self, intents: Sequence[tuple[AlbIntent, str | None]],
             later: Callable[[list[Answer]], None]) -> list[Answer] | None:
        """The answer to each (intent, host instance id), when all come within the wait; else None, and
        `later(answers)` is called from a lookup thread once they have all come."""
        futures = [self._submit(intent, host_instance_id) for intent, host_instance_id in intents]
        _, not_done = wait(futures, timeout=self.wait_seconds)
        if not not_done:
            return [future.result() for future in futures]
        _when_all_done(futures, lambda: later([future.result() for future in futures]))
        return None

    def _submit(self, intent: AlbIntent, host_instance_id: str | None) -> Future[Answer]:
        host_instance_id = host_instance_id if intent.needs_host_instance_id else None
        question = (intent.target, host_instance_id)
        with self._lock:
            if not self._started:
                for number in range(self._threads):
                    threading.Thread(target=self._serve, name=f"alb-lookup-{number}", daemon=True).start()
                self._started = True
            future = self._running.get(question)
            if future is None:
                future = self._running[question] = Future()
                self._work.put((question, intent, future))
            return future

    def _serve(self) -> None:
        while True:
            question, intent, future = self._work.get()
            try:
                future.set_result(self._look_up(intent, question[1]))
            except BaseException as err:  # noqa: BLE001 - handed to whoever waits for the answer
                future.set_exception(err)
            finally:
                with self._lock:
                    self._running.pop(question, None)

    def _look_up(self, intent: AlbIntent, host_instance_id: str | None) -> Answer:
        found = self.resolver.resolve(intent, host_instance_id)
        if isinstance(found, Unknown):
            return found
        healthy = self.resolver.healthy_targets(found)
        return Found(found, None if isinstance(healthy, Unknown) else healthy)


def _when_all_done(futures: list[Future[Answer]], action: Callable[[], None]) -> None:
    """Call `action` once every one of `futures` is done (at once if they are), unless one failed."""
    left = [len(futures)]
    lock = threading.Lock()

    def one_done(_: Future[Answer]) -> None:
        with lock:
            left[0] -= 1
            if left[0]:
                return
        failed = [future.exception() for future in futures if future.exception() is not None]
        if failed:
            log.error("ALB lookup failed; the sweep tries again: %r", failed[0])
            return
        try:
            action()
        except Exception:  # noqa: BLE001 - the sweep retries what this could not hand on
            log.exception("could not hand on the answer of an ALB lookup; the sweep tries again")

    for future in futures:
        future.add_done_callback(one_done)
