"""ALB lookups that never hold up a reconcile job.

A lookup whose answers are all in the fleet's cache takes milliseconds: the job has them at once
(`cached`). One that must ask AWS can take seconds (a cold cache, throttling, timeouts): the job hands it to
this process's lookup threads (`ask`) and goes on at once, its container left pending, and the registrar
worker moves to the next job; once AWS has answered, a callback has the container reconciled again, the
answers now in the cache. The same lookup asked by several jobs at once runs once.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Sequence

from registrar.albs.cache import CachedDirectory
from registrar.albs.directory import NotCached
from registrar.albs.resolver import AlbResolver, Unknown
from shared import defaults
from shared.alb import AlbEndpoint, AlbIntent, AlbLookup, ExplicitAlb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Found:
    endpoint: AlbEndpoint
    healthy_targets: int | None  # None: not known now


Answer = Found | Unknown
Question = tuple[AlbIntent, str | None]  # the intent, and the EC2 instance id of the container's host
# What a lookup depends on: the intent's target, and the host's instance id when it needs one.
_Key = tuple[AlbLookup | ExplicitAlb, str | None]


class Lookups:
    def __init__(self, resolver: AlbResolver, *, threads: int = defaults.ALB_LOOKUP_THREADS) -> None:
        """`resolver` asks through the fleet's cache (`registrar.albs.alb_resolver`)."""
        assert isinstance(resolver.directory, CachedDirectory)
        self.resolver = resolver
        self._cache_only = AlbResolver(resolver.directory.cache_only(), budget_seconds=resolver.budget_seconds)
        self._threads = threads
        self._work: queue.SimpleQueue[tuple[_Key, Question, Future[Answer]]] = queue.SimpleQueue()
        self._running: dict[_Key, Future[Answer]] = {}
        self._lock = threading.Lock()
        self._started = False

    def cached(self, questions: Sequence[Question]) -> list[Answer] | None:
        """The answer to each question when the fleet's cache holds all it takes; None when AWS must be asked.
        (A health answer the cache lacks is left unknown.)"""
        try:
            return [_look_up(self._cache_only, *question) for question in questions]
        except NotCached:
            return None

    def ask(self, questions: Sequence[Question], then: Callable[[list[Answer]], None]) -> None:
        """Look the questions up on the lookup threads (AWS asked where the cache lacks an answer) and call
        `then(answers)` from one of them once every answer came."""
        futures = [self._submit(question) for question in questions]
        left = [len(futures)]
        counting = threading.Lock()

        def one_done(_: Future[Answer]) -> None:
            with counting:
                left[0] -= 1
                if left[0]:
                    return
            try:
                then([future.result() for future in futures])
            except Exception:  # noqa: BLE001 - the sweep retries what this could not hand on
                log.exception("ALB lookup failed or its answer could not be handed on; the sweep tries again")

        for future in futures:
            future.add_done_callback(one_done)

    def _submit(self, question: Question) -> Future[Answer]:
        intent, host_instance_id = question
        key = (intent.target, host_instance_id if intent.needs_host_instance_id else None)
        with self._lock:
            if not self._started:
                for number in range(self._threads):
                    threading.Thread(target=self._serve, name=f"alb-lookup-{number}", daemon=True).start()
                self._started = True
            future = self._running.get(key)
            if future is None:
                future = self._running[key] = Future()
                self._work.put((key, question, future))
            return future

    def _serve(self) -> None:
        while True:
            key, question, future = self._work.get()
            try:
                future.set_result(_look_up(self.resolver, *question))
            except BaseException as err:  # noqa: BLE001 - handed to whoever waits for the answer
                future.set_exception(err)
            finally:
                with self._lock:
                    self._running.pop(key, None)


def _look_up(resolver: AlbResolver, intent: AlbIntent, host_instance_id: str | None) -> Answer:
    found = resolver.resolve(intent, host_instance_id)
    if isinstance(found, Unknown):
        return found
    try:
        healthy = resolver.healthy_targets(found)
    except NotCached:
        healthy = None
    return Found(found, None if isinstance(healthy, Unknown) else healthy)
