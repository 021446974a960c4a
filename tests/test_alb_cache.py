"""The fleet-wide cache of AWS answers, and AWS failing (SPEC section 5): how many requests reach AWS
(counted at the loopback stand-in in front of moto), throttling and 5xx retried later with backoff and
logged once, nothing raised to the caller, no credential in any log line."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
import redis

from registrar.albs import cache
from registrar.albs.boto import Boto3Directory
from registrar.albs.cache import CachedDirectory
from registrar.albs.resolver import AlbResolver, Unknown
from registrar.albs.stats import AwsStats
from shared import aws as shared_aws
from shared import defaults, keys
from shared.alb import AlbEndpoint
from tests.aws import CREDENTIALS, REGION, ecs_error, elb_error, lookup, server_error, web_service
from tests.support import wait_until


@pytest.fixture
def web(aws: SimpleNamespace) -> SimpleNamespace:
    return web_service(aws.world)


@pytest.fixture
def stats() -> AwsStats:
    return AwsStats()


def worker(redis_url: str, stats: AwsStats, check_interval: float = 1.0, budget_seconds: float = 30.0) -> AlbResolver:
    """What one registrar worker builds: its own Redis connection, AWS clients and cache front. The time
    budget is long but where a test is about it: a busy machine must not turn slow lookups into Unknown."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    directory = CachedDirectory(client, Boto3Directory(stats=stats), check_interval=check_interval, stats=stats)
    return AlbResolver(directory, budget_seconds=budget_seconds)


def aws_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "registrar.albs.cache" and record.levelno == logging.ERROR]


def test_fifty_containers_behind_one_alb_cost_a_handful_of_requests_per_interval(
        aws: SimpleNamespace, web: SimpleNamespace, redis_url: str, stats: AwsStats) -> None:
    """Five workers with cold caches resolve 50 containers (tasks of one service) and ask for the ALB's
    health and existence for each of them, every interval, five intervals long."""
    interval = 2.0
    tasks = [web.task, *aws.world.run_tasks("prod", web.task_definition, "service:web", count=49)]
    workers = [worker(redis_url, stats, check_interval=interval) for _ in range(5)]
    results: list[object] = []
    results_lock = threading.Lock()

    def container(number: int) -> None:
        resolver = workers[number % len(workers)]
        intent = lookup(cluster=web.cluster, task_arn=tasks[number], ecs_container_name="app")
        endpoint = resolver.resolve(intent)
        assert isinstance(endpoint, AlbEndpoint)
        answers = (endpoint, resolver.healthy_targets(endpoint), resolver.exists(endpoint))
        with results_lock:
            results.append(answers)

    began = time.monotonic()
    round_start = began - interval
    for _ in range(5):  # each round at least an interval after the one before
        round_start = max(round_start + interval, time.monotonic())
        time.sleep(max(0.0, round_start - time.monotonic()))
        with ThreadPoolExecutor(len(workers)) as pool:
            list(pool.map(container, range(len(tasks))))
    # Health and existence answers are kept a little less than an interval: at most one request per that
    # long, however many containers and workers ask; answers that are kept longer are asked again.
    at_most = 1 + int((time.monotonic() - began) / (interval * defaults.AWS_CHECK_FRESHNESS))

    assert results == [(web.endpoint, 0, True)] * 250
    calls = aws.stand_in.calls
    assert 2 <= calls["DescribeTargetHealth"] <= at_most
    assert 1 + 2 <= calls["DescribeLoadBalancers"] <= 1 + at_most  # the lookup's, then existence
    # Once for the whole service (the first answer about one task names the service's other tasks), or
    # once per worker at most: a worker waits only so long for another one's answer (a cold worker on a
    # busy machine can be slow to give it), and then asks itself.
    for operation in ("DescribeTasks", "ListTasks", "DescribeServices", "DescribeTargetGroups", "DescribeListeners"):
        assert 1 <= calls[operation] <= len(workers), operation
    assert aws.stand_in.total() <= 5 * len(workers) + 1 + 2 * at_most
    assert stats.calls == calls  # this process's counters saw every request


def test_workers_asking_the_same_question_at_once_ask_aws_once(aws: SimpleNamespace, web: SimpleNamespace,
                                                               redis_url: str, stats: AwsStats) -> None:
    aws.stand_in.delays["DescribeServices"] = 0.5
    workers = [worker(redis_url, stats) for _ in range(4)]
    with ThreadPoolExecutor(len(workers)) as pool:
        found = list(pool.map(lambda resolver: resolver.resolve(lookup(cluster="prod", ecs_service="web")), workers))
    assert found == [web.endpoint] * len(workers)
    assert aws.stand_in.calls["DescribeServices"] == 1
    assert stats.cache_misses["service_target_groups"] == len(workers)  # the others waited for the answer


def test_an_answer_kept_between_a_workers_read_and_its_lock_is_not_asked_again(
        aws: SimpleNamespace, web: SimpleNamespace, redis_url: str, stats: AwsStats,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The order forced: the first worker reads the cache and finds nothing; the second asks AWS, keeps the
    answer and lets go of the lock; only then does the first take the lock."""
    late, quick = (CachedDirectory(redis.Redis.from_url(redis_url, decode_responses=True), Boto3Directory(stats=stats),
                                   stats=stats) for _ in range(2))
    target_group = web.endpoint.target_group_arn
    read_cache = late._cached
    reads = []

    def miss_while_the_other_worker_fills(question, key):  # type: ignore[no-untyped-def]
        reads.append(key)
        if len(reads) == 1:
            assert quick.healthy_target_count(target_group) == 0
            return False, None
        return read_cache(question, key)

    monkeypatch.setattr(late, "_cached", miss_while_the_other_worker_fills)
    assert late.healthy_target_count(target_group) == 0
    assert len(reads) == 2
    assert aws.stand_in.calls["DescribeTargetHealth"] == 1
    assert not redis.Redis.from_url(redis_url).exists(keys.aws_answer_lock("healthy_target_count", target_group))


def test_throttling_is_retried_later_logged_once_and_never_raised(
        aws: SimpleNamespace, web: SimpleNamespace, redis_url: str, stats: AwsStats,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    first_pause = defaults.AWS_BACKOFF_FIRST_SECONDS
    throttled = ecs_error("ThrottlingException", "Rate exceeded")
    # Long check intervals: the other service below needs nothing but the cache.
    first, second = worker(redis_url, stats, check_interval=60), worker(redis_url, stats, check_interval=60)
    web_intent = lookup(cluster="prod", ecs_service="web")
    # Another service whose answers the fleet already has: it must not wait for the throttled one.
    api_group = aws.world.target_group("api")
    aws.world.listener(web.load_balancer, 9000, (api_group, 1))
    aws.world.service("prod", "api", web.task_definition, (api_group, "app", 80))
    assert isinstance(first.resolve(lookup(cluster="prod", ecs_service="api")), AlbEndpoint)

    aws.stand_in.script["DescribeServices"] = [throttled] * 2  # both attempts of one call
    answer = first.resolve(web_intent)
    assert answer == Unknown("AWS did not answer (throttled): DescribeServices: ThrottlingException: Rate exceeded",
                             first_pause)
    assert aws.stand_in.calls["DescribeServices"] == 1 + 2

    # Other containers, on other workers, while it pauses: answered at once, AWS not asked, nothing logged.
    for resolver in (first, second) * 5:
        waiting = resolver.resolve(web_intent)
        assert isinstance(waiting, Unknown) and 0 < waiting.retry_after <= first_pause
        assert waiting.reason.startswith("AWS did not answer (throttled): DescribeServices: ThrottlingException")
    assert aws.stand_in.calls["DescribeServices"] == 1 + 2
    misses, requests = sum(stats.cache_misses.values()), aws.stand_in.total()
    assert isinstance(second.resolve(lookup(cluster="prod", ecs_service="api")), AlbEndpoint)
    assert (sum(stats.cache_misses.values()), aws.stand_in.total()) == (misses, requests), "all from the cache"

    # Due again, throttled again: a pause twice as long, and the same cause is not logged twice.
    aws.stand_in.script["DescribeServices"] = [throttled] * 2
    wait_until(lambda: second.resolve(web_intent).retry_after == 2 * first_pause, first_pause + 2,
               "the question to be asked again after its pause, and throttled again")
    assert aws.stand_in.calls["DescribeServices"] == 1 + 2 + 2
    assert aws_errors(caplog) == [
        "AWS DescribeServices: ThrottlingException: Rate exceeded (throttled); ALB lookups that need "
        f"service_target_groups pause {first_pause} s, longer while this lasts; logged again at most every "
        f"{defaults.AWS_LOG_REPEAT_SECONDS} s"]

    wait_until(lambda: first.resolve(web_intent) == web.endpoint, 2 * first_pause + 2, "AWS to answer again")
    assert "AWS answers service_target_groups again" in caplog.messages
    assert stats.errors["throttled"] >= 2 + 10


def test_a_slow_lookup_stops_at_its_budget_and_continues_at_the_next_attempt(
        aws: SimpleNamespace, web: SimpleNamespace, redis_url: str, stats: AwsStats) -> None:
    aws.stand_in.delays["DescribeServices"] = 0.6
    resolver = worker(redis_url, stats, budget_seconds=0.5)
    stopped = resolver.resolve(lookup(cluster="prod", ecs_service="web"))
    assert isinstance(stopped, Unknown) and stopped.retry_after == 0
    assert stopped.reason == ("the ALB lookup took over its 0.5 s; the answers so far are kept and the next attempt "
                              "continues from them")
    assert aws.stand_in.calls == {"DescribeServices": 1}
    wait_until(lambda: resolver.resolve(lookup(cluster="prod", ecs_service="web")) == web.endpoint, 10,
               "the next attempts to find the ALB")
    assert aws.stand_in.calls["DescribeServices"] == 1


def test_a_server_error_is_retried_within_the_call(aws: SimpleNamespace, web: SimpleNamespace, redis_url: str,
                                                   stats: AwsStats, caplog: pytest.LogCaptureFixture) -> None:
    aws.stand_in.script["DescribeTargetGroups"] = [server_error()]
    assert worker(redis_url, stats).resolve(lookup(cluster="prod", ecs_service="web")) == web.endpoint
    assert aws.stand_in.calls["DescribeTargetGroups"] == 2
    assert aws_errors(caplog) == []


def test_server_errors_that_last_become_unknown(aws: SimpleNamespace, web: SimpleNamespace, redis_url: str,
                                                stats: AwsStats) -> None:
    aws.stand_in.script["DescribeTargetHealth"] = [server_error()] * 2
    resolver = worker(redis_url, stats)
    answer = resolver.healthy_targets(web.endpoint)
    assert isinstance(answer, Unknown) and answer.reason.startswith("AWS did not answer (transient): "
                                                                    "DescribeTargetHealth: 500")
    wait_until(lambda: resolver.healthy_targets(web.endpoint) == 0, answer.retry_after + 2, "AWS to answer again")


def test_no_credential_in_logs_or_answers(aws: SimpleNamespace, web: SimpleNamespace, redis_url: str,
                                          stats: AwsStats, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key_id, token = CREDENTIALS["AWS_ACCESS_KEY_ID"], CREDENTIALS["AWS_SESSION_TOKEN"]
    quoting = elb_error("SignatureDoesNotMatch", f"The request signature we calculated does not match. "
                                                 f"Credential={key_id}/20260101; x-amz-security-token:{token}", 403)
    aws.stand_in.script["DescribeTargetGroups"] = [quoting]
    resolver = worker(redis_url, stats)
    refused = resolver.resolve(lookup(cluster="prod", ecs_service="web"))
    assert isinstance(refused, Unknown)
    assert refused.reason == "AWS did not answer (rejected): DescribeTargetGroups: SignatureDoesNotMatch"
    assert worker(redis_url, stats).healthy_targets(web.endpoint) == 0  # requests that succeed, logged at DEBUG
    logged = caplog.text + refused.reason
    assert aws.stand_in.calls["DescribeTargetHealth"] == 1 and "DescribeTargetGroups" in logged
    for secret in CREDENTIALS.values():
        assert secret not in logged


def test_access_denied_names_the_missing_permission(aws: SimpleNamespace, web: SimpleNamespace, redis_url: str,
                                                    stats: AwsStats) -> None:
    aws.stand_in.script["DescribeTasks"] = [ecs_error(
        "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/registrar is not authorized to "
        "perform: ecs:DescribeTasks", 400)]
    answer = worker(redis_url, stats).resolve(lookup(cluster="prod", task_arn=web.task))
    assert isinstance(answer, Unknown) and answer.reason.startswith(
        "AWS did not answer (rejected): DescribeTasks: AccessDeniedException: User: ")
    assert "not authorized to perform: ecs:DescribeTasks" in answer.reason


def test_without_a_region_lookups_are_unknown(aws: SimpleNamespace, redis_url: str, stats: AwsStats,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    answer = worker(redis_url, stats).resolve(lookup(cluster="prod", ecs_service="web"))
    assert isinstance(answer, Unknown)
    assert answer.reason.startswith("AWS did not answer (rejected): DescribeServices: NoRegionError: ")
    assert aws.stand_in.total() == 0


def test_not_there_is_kept_briefly(aws: SimpleNamespace, redis_url: str, stats: AwsStats,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defaults, "AWS_NOT_THERE_SECONDS", 1)
    load_balancer, dns_name = aws.world.load_balancer("late")
    group = aws.world.target_group("late")
    aws.world.cluster("prod")
    aws.world.service("prod", "late", aws.world.task_definition("late", ("app", 80)), (group, "app", 80))
    resolver = worker(redis_url, stats)
    assert isinstance(resolver.resolve(lookup(cluster="prod", ecs_service="late")), Unknown)
    aws.world.listener(load_balancer, 80, (group, 1))
    assert isinstance(resolver.resolve(lookup(cluster="prod", ecs_service="late")), Unknown)
    assert aws.stand_in.calls["DescribeTargetGroups"] == 1  # the "not there" answer, from the cache
    found = wait_until(lambda: isinstance(endpoint := resolver.resolve(lookup(cluster="prod", ecs_service="late")),
                                          AlbEndpoint) and endpoint, 3, "the new listener to be found")
    assert (found.dns_name, found.port) == (dns_name, 80)


def test_answers_of_another_cache_version_are_asked_again(aws: SimpleNamespace, web: SimpleNamespace,
                                                          redis_url: str, redis_client: redis.Redis,
                                                          stats: AwsStats) -> None:
    redis_client.set(keys.aws_answer("load_balancer_exists", web.load_balancer),
                     json.dumps({"v": cache.CACHE_VERSION + 1, "answer": False}))
    assert worker(redis_url, stats).exists(web.endpoint) is True
    assert aws.stand_in.calls["DescribeLoadBalancers"] == 1
    assert stats.cache_misses["load_balancer_exists"] == 1


def test_clients_take_the_standard_aws_configuration(aws: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    client = shared_aws.client("elbv2")
    assert client.meta.region_name == REGION  # AWS_REGION wins over AWS_DEFAULT_REGION
    assert client.meta.endpoint_url == aws.stand_in.url  # AWS_ENDPOINT_URL, honoured by botocore
    config = client.meta.config
    assert config.retries == {"mode": "adaptive", "total_max_attempts": defaults.AWS_ATTEMPTS}
    assert (config.connect_timeout, config.read_timeout) == (defaults.AWS_CONNECT_TIMEOUT_SECONDS,
                                                             defaults.AWS_READ_TIMEOUT_SECONDS)
    monkeypatch.delenv("AWS_REGION")
    assert shared_aws.client("ecs").meta.region_name == "eu-west-1"
