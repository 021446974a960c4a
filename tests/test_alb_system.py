"""Services behind AWS load balancers through the whole system (SPEC section 5): real dockerd containers carrying
the ECS agent's labels, watcher, registrar and heartbeater processes, the dev Eureka behind a recording proxy,
moto behind the counting stand-in, and the EC2 metadata stand-in.

Each way of finding the ALB gives the right record, read back from Eureka; two hosts with containers behind one
ALB renew it once per interval; the last container stopping anywhere deletes it within 2 s; its status follows
target health; 50 containers behind one ALB cost AWS a handful of requests per interval, not one per container.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Iterator

import docker
import pytest
import redis
from docker.models.containers import Container
from rq import Worker

from shared import defaults, keys
from shared.store import Store
from tests.aws import ecs_labels, web_service
from tests.conftest import (FAST_LEASE, HOST_IP, Components, publish_running, run_web, start_system,
                            start_watcher)
from tests.faults.proxies import EurekaProxy
from tests.imds import MetadataService
from tests.support import DevEureka, DockerEngine, free_port, holds_for, wait_until

CHECK_INTERVAL = 1
# Renewals every second, the ALB's health and existence checked every second.
ALB_ENV = {"REGISTRATOR_ALB_CHECK_INTERVAL": str(CHECK_INTERVAL), "HEARTBEAT_TICK": "0.1"}
LOOKUP = {"SERVICE_EUREKA_LOOKUP_ELBV2_ENDPOINT": "true", **FAST_LEASE}


@pytest.fixture
def imds(aws: SimpleNamespace) -> Iterator[MetadataService]:
    """The EC2 metadata stand-in, for a host that is an instance in moto."""
    with MetadataService() as service:
        service.metadata["instance-id"] = aws.world.instance()
        yield service


@pytest.fixture
def alb_system(aws: SimpleNamespace, imds: MetadataService, components: Components, eureka: DevEureka,
               eureka_proxy: EurekaProxy, docker_engine: DockerEngine, docker_client: docker.DockerClient,
               redis_client: redis.Redis, redis_url: str) -> SimpleNamespace:
    """The whole system, for host `host-a`, with AWS (the stand-in) configured for its processes."""
    env = {"EUREKA_URL": eureka_proxy.url, "DOCKER_HOST": docker_engine.host, **ALB_ENV}
    watcher = start_system(components, env, redis_url, *host_args("host-a", imds))
    return SimpleNamespace(env=env, watcher=watcher, eureka=eureka, proxy=eureka_proxy, docker=docker_client,
                           redis=redis_client, components=components, imds=imds, world=aws.world,
                           stand_in=aws.stand_in)


def host_args(host: str, imds: MetadataService) -> tuple[str, ...]:
    return "-hostname", host, "-ip", HOST_IP, "-ec2-metadata-url", imds.url


def run_behind(system: SimpleNamespace, name: str, port: int, labels: dict[str, str] | None = None,
               **environment: str) -> Container:
    return run_web(system.docker, name, port, labels=labels or {}, environment={**LOOKUP, **environment})


def alb(system: SimpleNamespace, app: str, instance_id: str) -> dict | None:
    return system.eureka.instance(app, instance_id)


def renewals(proxy: EurekaProxy, app: str, instance_id: str) -> list[float]:
    """When heartbeats of the instance reached Eureka."""
    path = f"/eureka/apps/{app}/{instance_id}"
    return [at for at, method, request, _ in proxy.requests if method == "PUT" and request.split("?")[0] == path]


def test_ecs_labels_host_instance_and_explicit_names_each_give_their_alb_record(alb_system: SimpleNamespace) -> None:
    system, world = alb_system, alb_system.world
    web = web_service(world)
    api_lb, api_dns = world.load_balancer("api")
    api_group = world.target_group("api")
    world.listener(api_lb, 9090, (api_group, 1))
    api_port = free_port()
    world.register(api_group, system.imds.metadata["instance-id"], api_port)  # this host, this port
    shop_lb, _ = world.load_balancer("shop")
    shop_group = world.target_group("shop")
    world.listener(shop_lb, 80, (shop_group, 1))

    web_port = free_port()
    run_behind(system, "web1", web_port, ecs_labels(web.cluster, web.task))
    run_behind(system, "api1", api_port, SERVICE_NAME="api")
    run_web(system.docker, "shop1", free_port(), environment={
        "SERVICE_NAME": "shop", "SERVICE_EUREKA_ELBV2_HOSTNAME": "Shop.Example.com",
        "SERVICE_EUREKA_ELBV2_PORT": "443", "SERVICE_EUREKA_ELBV2_TARGETGROUP": shop_group,
        "SERVICE_EUREKA_METADATA_BRANCH": "main", **FAST_LEASE})

    expected = {("WEB", web.dns_name.lower(), 8080), ("API", api_dns.lower(), 9090), ("SHOP", "shop.example.com", 443)}
    for app, dns_name, port in sorted(expected):
        instance = wait_until(lambda: alb(system, app, f"{dns_name}_{port}"), 15, f"the ALB record of {app}")
        assert (instance["hostName"], instance["ipAddr"], instance["vipAddress"]) == (dns_name,) * 3
        assert instance["port"]["$"] == port
        assert instance["dataCenterInfo"]["metadata"]["instance-id"] == f"{dns_name}_{port}"
        assert instance["metadata"]["has-elbv2"] == "true"
        assert instance["metadata"]["elbv2-endpoint"] == f"{dns_name}_{port}"
        assert not {"container-id", "container-name", "docker-host", "is-container"} & set(instance["metadata"])
        assert instance["leaseInfo"]["renewalIntervalInSecs"] == 1
    assert alb(system, "WEB", f"{web.dns_name.lower()}_8080")["status"] == "STARTING", "no target in its group"
    assert alb(system, "API", f"{api_dns.lower()}_9090")["status"] == "UP", "moto: this running instance is healthy"
    assert alb(system, "SHOP", "shop.example.com_443")["metadata"]["branch"] == "main"
    assert system.eureka.instance("WEB", f"{HOST_IP}_{web_port}") is None, "the containers are not registered"
    assert system.eureka.instance("API", f"{HOST_IP}_{api_port}") is None

    # A container registered itself too names its ALB.
    both_port = free_port()
    run_behind(system, "web2", both_port, ecs_labels(web.cluster, web.task),
               SERVICE_EUREKA_ELBV2_ONLY_REGISTRATION="false")
    own = wait_until(lambda: system.eureka.instance("WEB", f"{HOST_IP}_{both_port}"), 10, "web2's own record")
    assert own["metadata"]["elbv2-endpoint"] == f"{web.dns_name.lower()}_8080"
    assert own["metadata"]["has-elbv2"] == "true" and own["metadata"]["container-name"] == "/web2"


def test_two_hosts_one_renewal_per_interval_and_the_last_container_stopping_deletes_it(
        alb_system: SimpleNamespace) -> None:
    """Both watchers see both containers: four members, two heartbeaters and two registrars, one renewal."""
    system = alb_system
    web = web_service(system.world)
    [second_task] = system.world.run_tasks("prod", web.task_definition, "service:web")
    start_watcher(system.components, system.env, *host_args("host-b", system.imds), name="watcher-b")
    system.components.start("heartbeater", name="heartbeater-2", env=system.env)
    system.components.start("registrar", name="registrar-2", env=system.env)
    containers = [run_behind(system, f"web{number}", free_port(), ecs_labels(web.cluster, task))
                  for number, task in enumerate((web.task, second_task))]
    key = keys.instance_key("WEB", web.endpoint.instance_id)
    wait_until(lambda: len(system.redis.smembers(keys.alb_members(key))) == 4, 15, "four members")
    wait_until(lambda: alb(system, "WEB", web.endpoint.instance_id), 5, "the ALB record")

    window = 6.0
    began = time.time()
    time.sleep(window)
    seen = [at for at in renewals(system.proxy, "WEB", web.endpoint.instance_id) if began <= at < began + window]
    gaps = [later - earlier for earlier, later in zip(seen, seen[1:])]
    # One per interval (1 s; due times looked at every 0.1 s), not one per member, host or heartbeater: those
    # would come in bunches, milliseconds apart.
    assert window / 1.5 - 1 <= len(seen) <= window + 1, seen
    assert min(gaps) > 0.2, f"two renewals {min(gaps):.2f}s apart: {seen}"

    containers[0].kill()
    holds_for(lambda: alb(system, "WEB", web.endpoint.instance_id), 2, "the ALB kept for the other container")
    stopped = time.monotonic()
    containers[1].kill()
    wait_until(lambda: alb(system, "WEB", web.endpoint.instance_id) is None, 2, "the ALB deleted")
    print(f"ALB deleted {time.monotonic() - stopped:.2f}s after its last container was killed")
    holds_for(lambda: alb(system, "WEB", web.endpoint.instance_id) is None, 2, "the ALB staying deleted")
    assert system.redis.smembers(keys.alb_members(key)) == set()


def test_status_follows_target_health(alb_system: SimpleNamespace) -> None:
    system = alb_system
    web = web_service(system.world)
    health = system.stand_in.target_health[web.target_group] = [(web.instance, 32768, "initial")]
    run_behind(system, "web1", free_port(), ecs_labels(web.cluster, web.task))
    wait_until(lambda: (alb(system, "WEB", web.endpoint.instance_id) or {}).get("status") == "STARTING", 15,
               "STARTING while no target is healthy")
    for state, status in (("healthy", "UP"), ("unhealthy", "DOWN"), ("healthy", "UP")):
        health[0] = (web.instance, 32768, state)
        # The health answer is kept 0.9 s, the next renewal comes within 1.1 s.
        wait_until(lambda: alb(system, "WEB", web.endpoint.instance_id)["status"] == status, 5 * CHECK_INTERVAL,
                   f"{status} once the target is {state}")
    registrations = [request for _, method, request, _ in system.proxy.requests if method == "POST"]
    assert registrations == ["/eureka/apps/WEB"], "status changes, not registrations"


def test_fifty_containers_behind_one_alb_cost_aws_a_handful_of_requests_per_interval(
        aws: SimpleNamespace, components: Components, eureka: DevEureka, redis_client: redis.Redis,
        redis_url: str) -> None:
    """Fifty containers on five hosts (their states published as the watchers publish them, without Docker),
    two registrars, two heartbeaters; AWS calls counted at the stand-in over five intervals."""
    web = web_service(aws.world)
    tasks = [web.task, *aws.world.run_tasks("prod", web.task_definition, "service:web", count=49)]
    env = {"EUREKA_URL": eureka.url, **ALB_ENV}
    for pool in ("registrar", "heartbeater"):
        for number in range(2):
            components.start(pool, name=f"{pool}-{number}", env=env)
    wait_until(lambda: len(Worker.all(connection=redis.Redis.from_url(redis_url))) == 4, 20, "four workers")
    store = Store(redis_client)
    for number, task in enumerate(tasks):
        publish_running(store, f"host-{number % 5}", number, "web", 32768 + number,
                        {"eureka_lookup_elbv2_endpoint": "true", "eureka_leaseinfo_renewalintervalinsecs": "1",
                         "eureka_leaseinfo_durationinsecs": "3", **ecs_labels(web.cluster, task)})
    key = keys.instance_key("WEB", web.endpoint.instance_id)
    wait_until(lambda: len(store.alb_members(key)) == 50, 30, "fifty members")
    wait_until(lambda: eureka.instance("WEB", web.endpoint.instance_id), 5, "the ALB record")
    setup = aws.stand_in.total()

    intervals = 5
    time.sleep(intervals * CHECK_INTERVAL)
    calls = dict(aws.stand_in.calls)
    renewing = aws.stand_in.total() - setup
    print(f"AWS requests: {setup} to find the ALB for 50 containers, {renewing} over {intervals} intervals: {calls}")
    # Finding it: a task's service answers for the service's other tasks, so only the lookups already under way
    # when the first answer came ask for their task's; the wiring is asked once.
    lookups_at_once = 2 * defaults.ALB_LOOKUP_THREADS
    assert calls["DescribeTasks"] <= lookups_at_once and calls["ListTasks"] <= lookups_at_once
    assert calls["DescribeServices"] <= 2 and calls["DescribeTargetGroups"] <= 2 and calls["DescribeListeners"] <= 2
    # Then health and existence, about once per interval each (answers kept 0.9 of one), for the whole fleet.
    assert renewing <= 2 * (intervals / 0.9 + 2), calls

