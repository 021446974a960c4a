"""`AlbDirectory` answered from a Redis cache that every registrar worker on every host shares.

Each answer is kept for a time that fits how fast it can change: a task's service never changes, a
target group's listeners rarely, its health every check interval; "not there" is kept briefly, since a new
task, target or listener shows up within seconds. While one worker asks AWS for an answer, the others
wait for it (a short while) instead of asking too, so a fleet asks AWS each question about once.

When AWS fails a question (throttling, 5xx, timeouts, refusals), that question pauses fleet-wide with
growing backoff: until it is due again, asking it raises `AwsLookupError` at once, with `retry_at` set,
and no request goes to AWS. Each cause is logged once, not once per container or worker.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import redis
from pydantic import TypeAdapter

from registrar.albs.directory import AlbDirectory, AwsLookupError, ErrorKind, InstanceTarget, ServiceTargetGroup
from registrar.albs.stats import STATS, AwsStats
from shared import keys
from shared.alb import ALB_RENEWAL_INTERVAL, AlbEndpoint

log = logging.getLogger(__name__)
T = TypeVar("T")

CACHE_VERSION = 1
# A task belongs to one service for its whole life.
TASK_SERVICE_SECONDS = 3600
# How ECS services, target groups and listeners are wired: changed by deployments, rarely.
STRUCTURE_SECONDS = 60
# A fleet-wide scan of target groups for instance targets (the lookup without ECS labels).
INSTANCE_TARGETS_SECONDS = 30
# "Not there": a task, target or listener that is new appears in AWS within seconds.
NEGATIVE_SECONDS = 15
# Health and existence are asked once per check interval; kept a little less, so each interval asks again.
CHECK_FRESHNESS = 0.9
BACKOFF_FIRST_SECONDS = 2
BACKOFF_MAX_SECONDS = 60
# The same AWS error (operation and code) is logged again only after this long.
LOG_REPEAT_SECONDS = 300
# How long a worker waits for another one that is asking AWS the same question, and how long that one
# may take before others ask too.
FILL_WAIT_SECONDS = 2.0
FILL_LOCK_SECONDS = 30
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
                 check_interval: float = ALB_RENEWAL_INTERVAL, stats: AwsStats = STATS,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = client
        self.directory = directory
        self.stats = stats
        self.clock = clock
        check_seconds = check_interval * CHECK_FRESHNESS
        self._task_service = _Question("task_service", TypeAdapter(str | None), TASK_SERVICE_SECONDS)
        self._service_tasks = _Question("service_tasks", TypeAdapter(tuple[str, ...]), NEGATIVE_SECONDS)
        self._service_target_groups = _Question("service_target_groups",
                                                TypeAdapter(tuple[ServiceTargetGroup, ...] | None),
                                                STRUCTURE_SECONDS)
        self._target_group_endpoints = _Question("target_group_endpoints",
                                                 TypeAdapter(tuple[AlbEndpoint, ...] | None), STRUCTURE_SECONDS)
        self._instance_targets = _Question("instance_targets", TypeAdapter(tuple[InstanceTarget, ...]),
                                           INSTANCE_TARGETS_SECONDS)
        self._healthy_target_count = _Question("healthy_target_count", TypeAdapter(int | None), check_seconds)
        self._load_balancer_exists = _Question("load_balancer_exists", TypeAdapter(bool), check_seconds)

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
                         _encode(self._task_service, service), px=_millis(TASK_SERVICE_SECONDS))
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
        self._refuse_during_backoff(question)
        lock = keys.aws_answer_lock(question.name, *args)
        filling = bool(self.redis.set(lock, "1", nx=True, ex=FILL_LOCK_SECONDS))
        if not filling:
            found, answer = self._wait_for(question, key)
            if found:
                return answer
            self._refuse_during_backoff(question)  # the other worker failed
        try:
            answer = fetch()
            seconds = question.seconds if _is_positive(answer) else min(question.seconds, NEGATIVE_SECONDS)
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
        deadline = time.monotonic() + FILL_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(FILL_POLL_SECONDS)
            found, answer = self._cached(question, key)
            if found:
                return True, answer
        return False, None

    # --- backoff --------------------------------------------------------------------------------

    def _refuse_during_backoff(self, question: _Question) -> None:
        state = self.redis.hgetall(keys.aws_backoff(question.name))
        if state and float(state["until"]) > self.clock():
            self.stats.error(state["kind"])
            raise AwsLookupError(ErrorKind(state["kind"]), state["operation"], state["code"],
                                 "not asked again yet", retry_at=float(state["until"]))

    def _failed(self, question: _Question, err: AwsLookupError) -> None:
        """Pause the question fleet-wide, longer after each failure in a row; log the cause once."""
        self.stats.error(err.kind.value)
        key = keys.aws_backoff(question.name)
        failures = self.redis.hincrby(key, "failures", 1)
        delay = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** (failures - 1))
        err.retry_at = self.clock() + delay
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping={"until": err.retry_at, "kind": err.kind.value, "operation": err.operation,
                                "code": err.code})
        # Forgotten after a calm while, so the next failure starts the backoff from the beginning.
        pipe.expire(key, delay + BACKOFF_MAX_SECONDS)
        pipe.set(keys.aws_logged(err.operation, err.code), "1", nx=True, ex=LOG_REPEAT_SECONDS)
        if pipe.execute()[-1]:
            log.error("AWS %s (%s); ALB lookups that need %s pause %s s, longer while this lasts; logged again "
                      "at most every %s s", err, err.kind.value, question.name, delay, LOG_REPEAT_SECONDS)

    def _answered(self, question: _Question) -> None:
        if self.redis.delete(keys.aws_backoff(question.name)):
            log.info("AWS answers %s again", question.name)


def _is_positive(answer: Any) -> bool:
    return answer is not None and answer is not False and answer != ()


def _encode(question: _Question, answer: Any) -> str:
    return json.dumps({"v": CACHE_VERSION, "answer": question.answer.dump_python(answer, mode="json")})


def _millis(seconds: float) -> int:
    return max(1, int(seconds * 1000))
