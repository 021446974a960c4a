"""Faults around AWS load balancers: the last watcher vouching for an ALB killed, the load balancer deleted,
AWS throttling and slow.

Invariants: an ALB's record is in Eureka, with the status its target health calls for, exactly while at least
one live, vouched-for container points at it and its load balancer exists; it goes at once when that ends
(at the next renewal for what no container event tells: a dead watcher, a deleted load balancer) and is never
renewed after; AWS trouble keeps only the containers that need AWS waiting, never the others.
"""

from __future__ import annotations

import statistics
import time
from types import SimpleNamespace

import docker
import pytest
import redis
from rq import Worker

from registrar.albs import alb_resolver
from registrar.albs.resolver import AlbResolver
from shared import keys
from shared.store import Store
from tests.aws import ecs_error, ecs_labels, web_service
from tests.conftest import (FAST_LEASE, HOST_IP, Components, publish_running, run_web, start_system,
                            start_watcher)
from tests.faults.convergence import wait_converged
from tests.faults.proxies import DockerProxy, EurekaProxy
from tests.support import DevEureka, free_port, holds_for, wait_until

CHECK_INTERVAL = 1
ALB_ENV = {"REGISTRATOR_ALB_CHECK_INTERVAL": str(CHECK_INTERVAL), "HEARTBEAT_TICK": "0.1"}
# The liveness TTL (3 s), then the next renewal (1 s, its due time looked at every 0.1 s), and 3 s to spare.
DEAD_WATCHERS_BOUND = 3 + 1 + 3
# The existence answer is kept 0.9 of a check interval; the next renewal after it asks again.
DELETED_LOAD_BALANCER_BOUND = CHECK_INTERVAL + 1 + 1
# Rounds of the throttling test, with and without a lookup waiting on AWS.
ROUNDS = 5


@pytest.fixture
def albs(aws: SimpleNamespace, redis_client: redis.Redis) -> AlbResolver:
    """The checker's resolver (the stand-in, the fleet's cache)."""
    return alb_resolver(redis_client, check_interval=CHECK_INTERVAL, budget_seconds=30)


@pytest.fixture
def alb_faults(aws: SimpleNamespace, albs: AlbResolver, components: Components, eureka: DevEureka,
               docker_client: docker.DockerClient, docker_proxy: DockerProxy, eureka_proxy: EurekaProxy,
               redis_client: redis.Redis, redis_url: str) -> SimpleNamespace:
    env = {"EUREKA_URL": eureka_proxy.url, "DOCKER_HOST": docker_proxy.host, **ALB_ENV}
    watcher = start_system(components, env, redis_url, "-hostname", "host-a", "-ip", HOST_IP)
    web = web_service(aws.world)
    return SimpleNamespace(env=env, watcher=watcher, eureka=eureka, eureka_proxy=eureka_proxy, docker=docker_client,
                           redis=redis_client, components=components, world=aws.world, stand_in=aws.stand_in,
                           albs=albs, web=web, key=keys.instance_key("WEB", web.endpoint.instance_id))


def run_behind_web(system: SimpleNamespace, name: str) -> None:
    run_web(system.docker, name, free_port(), labels=ecs_labels(system.web.cluster, system.web.task),
            environment={"SERVICE_EUREKA_LOOKUP_ELBV2_ENDPOINT": "true", **FAST_LEASE})


def alb_requests(system: SimpleNamespace, method: str, since: float = 0.0) -> int:
    path = f"/eureka/apps/WEB/{system.web.endpoint.instance_id}"
    return sum(1 for at, seen, request, _ in system.eureka_proxy.requests
               if at >= since and seen == method and request.split("?")[0] == path)


def test_the_last_watcher_killed_lets_its_alb_go_by_liveness(alb_faults: SimpleNamespace) -> None:
    """Both watchers vouch for the container behind the ALB; killing one changes nothing, killing the second
    deletes the record at the next renewal after the liveness TTL; a watcher back registers it again."""
    system = alb_faults
    watcher_b = start_watcher(system.components, system.env, "-hostname", "host-b", "-ip", HOST_IP,
                              name="watcher-b")
    run_behind_web(system, "web1")
    wait_converged(system.redis, system.eureka, 15, "the start", expect={system.key}, albs=system.albs)
    wait_until(lambda: len(system.redis.smembers(keys.alb_members(system.key))) == 2, 5, "both hosts members")

    system.watcher.kill9()
    holds_for(lambda: system.eureka.instance("WEB", system.web.endpoint.instance_id), 3 + 2,
              "the ALB kept while host b vouches")
    watcher_b.kill9()
    killed = time.time()
    wait_converged(system.redis, system.eureka, DEAD_WATCHERS_BOUND, "both watchers killed", expect=set(),
                   albs=system.albs)
    assert system.eureka.instance("WEB", system.web.endpoint.instance_id) is None
    assert alb_requests(system, "DELETE", since=killed) == 1, "deleted, not left to lease expiry"
    holds_for(lambda: alb_requests(system, "PUT", since=time.time() - 0.5) == 0, 2, "no renewal any more")

    start_watcher(system.components, system.env, "-hostname", "host-a", "-ip", HOST_IP, name="watcher-a2")
    wait_converged(system.redis, system.eureka, 10, "a watcher back", expect={system.key}, albs=system.albs)


def test_a_deleted_load_balancer_leaves_eureka_within_a_check_interval(alb_faults: SimpleNamespace) -> None:
    system = alb_faults
    run_behind_web(system, "web1")
    wait_converged(system.redis, system.eureka, 15, "the start", expect={system.key}, albs=system.albs)

    system.world.delete_load_balancer(system.web.load_balancer)
    deleted = time.time()
    wait_until(lambda: system.eureka.instance("WEB", system.web.endpoint.instance_id) is None,
               DELETED_LOAD_BALANCER_BOUND, "the ALB record deleted")
    print(f"ALB record deleted {time.time() - deleted:.2f}s after its load balancer")
    wait_converged(system.redis, system.eureka, 1, "the load balancer deleted", expect=set(), albs=system.albs)
    gone = time.time()
    holds_for(lambda: alb_requests(system, "PUT", since=gone) == 0 and alb_requests(system, "POST", since=gone) == 0,
              3 * CHECK_INTERVAL, "never renewed or registered again")
    assert system.redis.smembers(keys.alb_members(system.key)) == set()


def test_aws_throttling_and_slow_keeps_waiting_only_the_containers_behind_an_alb(
        aws: SimpleNamespace, albs: AlbResolver, components: Components, eureka: DevEureka,
        eureka_proxy: EurekaProxy, redis_client: redis.Redis, redis_url: str) -> None:
    """One registrar worker; each round publishes a container behind the ALB, then a plain one at once (as
    watchers would, straight into Redis). AWS throttles and then takes 1.5 s to answer: the plain
    container's registration must come no more than 100 ms later than when nothing waits on AWS."""
    env = {"EUREKA_URL": eureka_proxy.url, **ALB_ENV}
    components.start("registrar", env=env)
    components.start("heartbeater", env=env)
    wait_until(lambda: len(Worker.all(connection=redis.Redis.from_url(redis_url))) == 2, 20, "the workers")
    web = web_service(aws.world)
    tasks = aws.world.run_tasks("prod", web.task_definition, "service:web", count=ROUNDS)
    store = Store(redis_client)

    def plain_registered_after(number: int, behind_alb: str | None) -> float:
        """Seconds from publishing plain container `number` to its registration reaching Eureka."""
        if behind_alb:
            publish_running(store, "host-a", number, "web", 1,
                            {"eureka_lookup_elbv2_endpoint": "true", **ecs_labels(web.cluster, behind_alb)})
        published = time.time()
        publish_running(store, "host-a", number + 100, "plain", 18000 + number, {})
        wait_until(lambda: eureka.instance("PLAIN", f"10.0.0.5_{18000 + number}"), 10, "the plain registration")
        arrived = [at for at, method, path, _ in eureka_proxy.requests if method == "POST" and path.endswith("/PLAIN")]
        return arrived[-1] - published

    baseline = [plain_registered_after(number, None) for number in range(ROUNDS)]
    aws.stand_in.script["DescribeTasks"] = [ecs_error("ThrottlingException", "Rate exceeded")] * 2
    aws.stand_in.delays["DescribeTasks"] = 1.5
    waiting = [plain_registered_after(number, task) for number, task in zip(range(ROUNDS, 2 * ROUNDS), tasks)]
    print(f"plain registrations: {baseline} alone, {waiting} behind an ALB lookup waiting on AWS")
    assert min(waiting) - min(baseline) < 0.1
    assert statistics.median(waiting) - statistics.median(baseline) < 0.1
    assert eureka.instance("WEB", web.endpoint.instance_id) is None, "still waiting for AWS"

    # The waiting containers are tried again: once AWS answers, the ALB is registered for them.
    wait_until(lambda: eureka.instance("WEB", web.endpoint.instance_id), 30, "the ALB once AWS answered")
    wait_until(lambda: len(store.alb_members(keys.instance_key("WEB", web.endpoint.instance_id))) == ROUNDS, 30,
               "every container behind it a member")

