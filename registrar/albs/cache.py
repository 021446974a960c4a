"""`AlbDirectory` answered from a Redis cache that every registrar worker on every host shares.

Each answer is kept for a time that fits how fast it can change (`shared.defaults`, AWS section): a task's
service never changes, a target group's listeners rarely, its health every check interval; "not there" is
kept briefly, since a new task, target or listener shows up within seconds. While one worker asks AWS for
an answer, the others wait for it (a short while) instead of asking too, so a fleet asks AWS each question
about once.

When AWS fails a question (throttling, 5xx, timeouts, refusals), that question pauses fleet-wide with
growing backoff: while it pauses, asking it raises `AwsLookupError` at once, with `retry_after` set, and no
request goes to AWS. Each cause is logged once, not once per container or worker. Every time here is a
Redis TTL, so no rule depends on the workers' clocks agreeing.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import redis
from pydantic import TypeAdapter

from registrar.albs.directory import (AlbDirectory, AwsLookupError, ErrorKind, InstanceTarget, NotCached,
                                     ServiceTargetGroup)
from registrar.albs.stats import STATS, AwsStats
from shared import defaults, keys
from shared.alb import AlbEndpoint

log = logging.getLogger(__name__)
T = TypeVar("T")

CACHE_VERSION = 1
FILL_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class _Question:
    name: str
    answer: TypeAdapter[Any]
    seconds: float


class CachedDirectory:
    """Answers from Redis; on a miss, from `directory` (AWS), then kept for the fleet. `client` decodes
    responses (`shared.store.connect`)."""

    def __init__(self, client: redis.Redis, directory: AlbDirectory, *,
                 check_interval: float = defaults.ALB_RENEWAL_INTERVAL_SECONDS, stats: AwsStats = STATS) -> None:
        self.redis = client
        self.directory = directory
        self.stats = stats
        self.check_interval = check_interval
        check_seconds = check_interval * defaults.AWS_CHECK_FRESHNESS
        self._task_service = _Question("task_service", TypeAdapter(str | None), defaults.AWS_TASK_SERVICE_SECONDS)
        self._service_tasks = _Question("service_tasks", TypeAdapter(tuple[str, ...]),
                                        defaults.AWS_NOT_THERE_SECONDS)
        self._service_target_groups = _Question("service_target_groups",
                                                TypeAdapter(tuple[ServiceTargetGroup, ...] | None),
                                                defaults.AWS_WIRING_SECONDS)
        self._target_group_endpoints = _Question("target_group_endpoints",
                                                 TypeAdapter(tuple[AlbEndpoint, ...] | None),
                                                 defaults.AWS_WIRING_SECONDS)
        self._instance_targets = _Question("instance_targets", TypeAdapter(tuple[InstanceTarget, ...]),
                                           defaults.AWS_INSTANCE_TARGETS_SECONDS)
        self._healthy_target_count = _Question("healthy_target_count", TypeAdapter(int | None), check_seconds)
        self._load_balancer_exists = _Question("load_balancer_exists", TypeAdapter(bool), check_seconds)

    def cache_only(self) -> CachedDirectory:
        """The same directory answering from the cache alone: what is not there raises `NotCached` at once
        (AWS is not asked, nor another worker's answer waited for)."""
        return _CacheOnly(self.redis, self.directory, check_interval=self.check_interval, stats=self.stats)

    def task_service(self, cluster: str, task_arn: str) -> str | None:
        return self._ask(self._task_service, (cluster, task_arn),
                         lambda: self._task_service_for_all(cluster, task_arn))

    def service_tasks(self, cluster: str, service: str) -> tuple[str, ...]:
        return self._ask(self._service_tasks, (cluster, service),
                         lambda: self.directory.service_tasks(cluster, service))

    def service_target_groups(self, cluster: str, service: str) -> tuple[ServiceTargetGroup, ...] | None:
        return self._ask(self._service_target_groups, (cluster, service),
                         lambda: self.directory.service_target_groups(cluster, service))

    def target_group_endpoints(self, target_group_arn: str) -> tuple[AlbEndpoint, ...] | None:
        return self._ask(self._target_group_endpoints, (target_group_arn,),
                         lambda: self.directory.target_group_endpoints(target_group_arn))

    def instance_targets(self) -> tuple[InstanceTarget, ...]:
        return self._ask(self._instance_targets, (), self.directory.instance_targets)

    def healthy_target_count(self, target_group_arn: str) -> int | None:
        return self._ask(self._healthy_target_count, (target_group_arn,),
                         lambda: self.directory.healthy_target_count(target_group_arn))

    def load_balancer_exists(self, load_balancer_arn: str) -> bool:
        return self._ask(self._load_balancer_exists, (load_balancer_arn,),
                         lambda: self.directory.load_balancer_exists(load_balancer_arn))

    def _task_service_for_all(self, cluster: str, task_arn: str) -> str | None:
        """The task's service; the service's other tasks are answered with it, so the containers of one
        service cost AWS two requests between them, not one each."""
        service = self.directory.task_service(cluster, task_arn)
        if service is None:
            return None
        try:
            siblings = self.service_tasks(cluster, service)
        except AwsLookupError:
            return service  # answering the others too only saves requests; this one is answered
        pipe = self.redis.pipeline(transaction=False)
        for sibling in siblings:
            if sibling != task_arn:
                pipe.set(keys.aws_answer(self._task_service.name, cluster, sibling),
                         _encode(self._task_service, service), px=_millis(self._task_service.seconds))
        pipe.execute()
        return service

    # --- the cache ------------------------------------------------------------------------------

    def _ask(self, question: _Question, args: tuple[str, ...], fetch: Callable[[], T]) -> T:
        key = keys.aws_answer(question.name, *args)
        found, answer = self._cached(question, key)
        if found:
            self.stats.hit(question.name)
            return answer
        self.stats.miss(question.name)
        self._refuse_while_paused(question)
        lock = keys.aws_answer_lock(question.name, *args)
        filling = bool(self.redis.set(lock, "1", nx=True, ex=defaults.AWS_FILL_LOCK_SECONDS))
        if filling:
            # Another worker may have kept its answer and let go of the lock since the read above.
            found, answer = self._cached(question, key)
            if found:
                self.redis.delete(lock)
                return answer
        else:
            found, answer = self._wait_for(question, key)
            if found:
                return answer
            self._refuse_while_paused(question)  # the other worker failed
        try:
            answer = fetch()
            seconds = question.seconds if _is_positive(answer) else min(question.seconds,
                                                                        defaults.AWS_NOT_THERE_SECONDS)
            self.redis.set(key, _encode(question, answer), px=_millis(seconds))
        except AwsLookupError as err:
            self._failed(question, err)
            raise
        finally:
            if filling:
                self.redis.delete(lock)
        self._answered(question)
        return answer

    def _cached(self, question: _Question, key: str) -> tuple[bool, Any]:
        raw = self.redis.get(key)
        if raw is None:
            return False, None
        try:
            entry = json.loads(raw)
            if entry.get("v") != CACHE_VERSION:
                return False, None  # written by another version of the registrar: ask again
            return True, question.answer.validate_python(entry["answer"])
        except (ValueError, KeyError, AttributeError):  # pydantic's ValidationError is a ValueError
            return False, None

    def _wait_for(self, question: _Question, key: str) -> tuple[bool, Any]:
        deadline = time.monotonic() + defaults.AWS_FILL_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(FILL_POLL_SECONDS)
            found, answer = self._cached(question, key)
            if found:
                return True, answer
        return False, None

    # --- backoff --------------------------------------------------------------------------------

    def _refuse_while_paused(self, question: _Question) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.aws_pause(question.name))
        pipe.pttl(keys.aws_pause(question.name))
        cause, millis = pipe.execute()
        if cause is None or millis <= 0:
            return
        failed = json.loads(cause)
        self.stats.error(failed["kind"])
        raise AwsLookupError(ErrorKind(failed["kind"]), failed["operation"], failed["code"],
                             "paused after that error", retry_after=millis / 1000)

    def _failed(self, question: _Question, err: AwsLookupError) -> None:
        """Pause the question fleet-wide, longer after each failure in a row; log the cause once."""
        self.stats.error(err.kind.value)
        failures_key = keys.aws_failures(question.name)
        failures = self.redis.incr(failures_key)
        delay = min(defaults.AWS_BACKOFF_MAX_SECONDS, defaults.AWS_BACKOFF_FIRST_SECONDS * 2 ** (failures - 1))
        err.retry_after = delay
        cause = json.dumps({"kind": err.kind.value, "operation": err.operation, "code": err.code})
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.aws_pause(question.name), cause, px=_millis(delay))
        # Forgotten after a calm while, so that the next failure starts the backoff from the beginning.
        pipe.expire(failures_key, delay + defaults.AWS_BACKOFF_MAX_SECONDS)
        pipe.set(keys.aws_logged(err.operation, err.code), "1", nx=True, ex=defaults.AWS_LOG_REPEAT_SECONDS)
        if pipe.execute()[-1]:
            log.error("AWS %s (%s); ALB lookups that need %s pause %s s, longer while this lasts; logged again "
                      "at most every %s s", err, err.kind.value, question.name, delay,
                      defaults.AWS_LOG_REPEAT_SECONDS)

    def _answered(self, question: _Question) -> None:
        if self.redis.delete(keys.aws_failures(question.name)):
            log.info("AWS answers %s again", question.name)


class _CacheOnly(CachedDirectory):
    def _ask(self, question: _Question, args: tuple[str, ...], fetch: Callable[[], T]) -> T:
        found, answer = self._cached(question, keys.aws_answer(question.name, *args))
        if not found:
            raise NotCached(question.name)
        self.stats.hit(question.name)
        return answer


def _is_positive(answer: Any) -> bool:
    return answer is not None and answer is not False and answer != ()


def _encode(question: _Question, answer: Any) -> str:
    return json.dumps({"v": CACHE_VERSION, "answer": question.answer.dump_python(answer, mode="json")})


def _millis(seconds: float) -> int:
    return max(1, int(seconds * 1000))
