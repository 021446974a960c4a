"""Finding the ALB in front of a service, against moto in server mode (SPEC section 5): every lookup path,
weighted forwards, several listeners, rules, explicit endpoints, health and deleted load balancers."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import redis

from registrar.albs import alb_resolver
from registrar.albs.resolver import AlbResolver, Unknown
from shared.alb import AlbEndpoint, alb_status
from shared.models import InstanceStatus
from tests.aws import explicit, lookup, web_service
from tests.support import wait_until

CHECK_INTERVAL = 1.0
# Lookups here are not about the time budget (test_alb_cache.py is): one that a busy machine makes slow
# must not turn into Unknown.
BUDGET = 30.0


@pytest.fixture
def resolver(aws: SimpleNamespace, redis_client: redis.Redis) -> AlbResolver:
    return alb_resolver(redis_client, check_interval=CHECK_INTERVAL, budget_seconds=BUDGET)


@pytest.fixture
def web(aws: SimpleNamespace) -> SimpleNamespace:
    return web_service(aws.world)


def test_ecs_labels_lead_through_the_task_group_to_service_target_group_listener_and_dns(
        resolver: AlbResolver, web: SimpleNamespace, aws: SimpleNamespace) -> None:
    found = resolver.resolve(lookup(cluster=web.cluster, task_arn=web.task, ecs_container_name="app"))
    assert found == web.endpoint
    assert aws.stand_in.calls["DescribeTasks"] == 1


def test_named_ecs_service_needs_no_task_lookup(resolver: AlbResolver, web: SimpleNamespace,
                                                aws: SimpleNamespace) -> None:
    found = resolver.resolve(lookup(cluster="prod", ecs_service="web", task_arn=web.task))
    assert found == web.endpoint
    assert aws.stand_in.calls["DescribeTasks"] == 0 and aws.stand_in.calls["DescribeServices"] == 1


def test_the_entry_for_this_container_and_port_is_chosen(resolver: AlbResolver, aws: SimpleNamespace) -> None:
    world = aws.world
    load_balancer, dns_name = world.load_balancer("shop")
    site, api, admin = world.target_group("site"), world.target_group("api"), world.target_group("admin")
    world.listener(load_balancer, 80, (site, 1))
    world.listener(load_balancer, 8080, (api, 1))
    world.listener(load_balancer, 9090, (admin, 1))
    world.cluster("prod")
    task_definition = world.task_definition("shop", ("site", 80), ("api", 80))
    world.service("prod", "shop", task_definition, (site, "site", 80), (api, "api", 80), (admin, "api", 9000))
    [task] = world.run_tasks("prod", task_definition, "service:shop")

    def port_of(container: str, container_port: int) -> int:
        found = resolver.resolve(lookup(cluster="prod", task_arn=task, ecs_container_name=container,
                                        container_port=container_port))
        assert isinstance(found, AlbEndpoint) and found.dns_name == dns_name, found
        return found.port

    assert (port_of("site", 80), port_of("api", 80), port_of("api", 9000)) == (80, 8080, 9090)
    missing = resolver.resolve(lookup(cluster="prod", task_arn=task, ecs_container_name="api", container_port=81))
    assert isinstance(missing, Unknown)
    assert missing.reason == "ECS service shop has no load balancer for container api port 81"


def test_weighted_forward_and_several_listeners(resolver: AlbResolver, aws: SimpleNamespace) -> None:
    world = aws.world
    load_balancer, dns_name = world.load_balancer("canary")
    blue, green, other = world.target_group("blue"), world.target_group("green"), world.target_group("other")
    world.listener(load_balancer, 80, (other, 1))
    world.listener(load_balancer, 8443, (blue, 9), (green, 1))
    world.listener(load_balancer, 8080, (green, 1))
    world.cluster("prod")
    task_definition = world.task_definition("canary", ("app", 80))
    world.service("prod", "blue", task_definition, (blue, "app", 80))
    world.service("prod", "green", task_definition, (green, "app", 80))

    blue_found = resolver.resolve(lookup(cluster="prod", ecs_service="blue"))
    green_found = resolver.resolve(lookup(cluster="prod", ecs_service="green"))
    assert blue_found == AlbEndpoint(dns_name=dns_name, port=8443, target_group_arn=blue,
                                     load_balancer_arn=load_balancer)
    # Forwarded to by two listeners: the lower port, every time.
    assert green_found == AlbEndpoint(dns_name=dns_name, port=8080, target_group_arn=green,
                                      load_balancer_arn=load_balancer)


def test_a_target_group_forwarded_to_by_a_rule(resolver: AlbResolver, aws: SimpleNamespace) -> None:
    world = aws.world
    load_balancer, dns_name = world.load_balancer("paths")
    site, api = world.target_group("site"), world.target_group("api")
    listener = world.listener(load_balancer, 443, (site, 1))
    world.rule(listener, "/api/*", api)
    world.cluster("prod")
    task_definition = world.task_definition("api", ("app", 80))
    world.service("prod", "api", task_definition, (api, "app", 80))
    assert resolver.resolve(lookup(cluster="prod", ecs_service="api")) == AlbEndpoint(
        dns_name=dns_name, port=443, target_group_arn=api, load_balancer_arn=load_balancer)


def test_without_ecs_labels_the_target_holding_this_host_and_port(resolver: AlbResolver, web: SimpleNamespace,
                                                                 aws: SimpleNamespace) -> None:
    world = aws.world
    other_instance = world.instance()
    world.register(web.target_group, web.instance, 32768)
    # Not in the running: a target group no load balancer uses, and a target on another instance.
    unused = world.target_group("unused")
    world.register(unused, web.instance, 32769)
    world.register(unused, other_instance, 32768)
    assert resolver.resolve(lookup(), host_instance_id=web.instance) == web.endpoint
    for host, port in ((web.instance, 32769), (other_instance, 32768)):
        missing = resolver.resolve(lookup(host_port=port), host_instance_id=host)
        assert missing == Unknown(f"no target group has instance {host} port {port} as a target",
                                  missing.retry_after)
    no_instance = resolver.resolve(lookup())
    assert isinstance(no_instance, Unknown) and "EC2 instance id" in no_instance.reason


def test_explicit_endpoint_finds_its_load_balancer_through_the_target_group(
        resolver: AlbResolver, web: SimpleNamespace, aws: SimpleNamespace) -> None:
    named = resolver.resolve(explicit(web.dns_name, 443, web.target_group))
    assert named == replace(web.endpoint, port=443)
    # A name of one's own for the load balancer (a CNAME) is fine while one load balancer sends to the group.
    cname = resolver.resolve(explicit("web.example.com", 80, web.target_group))
    assert cname == AlbEndpoint(dns_name="web.example.com", port=80, target_group_arn=web.target_group,
                                load_balancer_arn=web.load_balancer)
    # Two load balancers send to the group: only the one named will do.
    second, second_dns = aws.world.load_balancer("web-2")
    aws.world.listener(second, 80, (web.target_group, 1))
    unused = aws.world.target_group("spare")
    aws.world.listener(second, 81, (unused, 1))
    ambiguous = AlbResolver(resolver.directory.directory, budget_seconds=BUDGET)  # straight to AWS: the group changed
    assert ambiguous.resolve(explicit(second_dns, 80, web.target_group)).load_balancer_arn == second
    unclear = ambiguous.resolve(explicit("web.example.com", 80, web.target_group))
    assert isinstance(unclear, Unknown) and "several load balancers" in unclear.reason
    gone = web.target_group.replace("/web/", "/gone/")
    assert resolver.resolve(explicit(web.dns_name, 80, gone)).reason == (
        f"target group {gone} (eureka_elbv2_targetgroup) does not exist")


@pytest.mark.parametrize(("group", "reason"), [
    ("family:web", "was not started by an ECS service"),
    ("service:nothing", "ECS service nothing is not active in cluster prod"),
])
def test_tasks_outside_a_known_service(resolver: AlbResolver, web: SimpleNamespace, aws: SimpleNamespace,
                                       group: str, reason: str) -> None:
    [task] = aws.world.run_tasks("prod", web.task_definition, group)
    found = resolver.resolve(lookup(cluster="prod", task_arn=task))
    assert isinstance(found, Unknown) and reason in found.reason, found


def test_deleted_load_balancer_is_noticed_within_one_check_interval(
        resolver: AlbResolver, web: SimpleNamespace, aws: SimpleNamespace) -> None:
    endpoint = resolver.resolve(lookup(cluster="prod", task_arn=web.task))
    assert resolver.exists(endpoint) is True
    aws.world.delete_load_balancer(web.load_balancer)
    wait_until(lambda: resolver.exists(endpoint) is False, CHECK_INTERVAL + 0.5, "the deletion to be noticed")
    assert aws.stand_in.calls["DescribeLoadBalancers"] <= 1 + 3  # the lookup's, then at most one per interval
    assert aws.stand_in.calls["DescribeTargetGroups"] == 1
    # The cached wiring of the target group still names the deleted load balancer: never found again.
    again = resolver.resolve(lookup(cluster="prod", task_arn=web.task))
    assert again == Unknown(f"no load balancer listener forwards to target group {web.target_group}",
                            again.retry_after)


def test_status_follows_target_health_in_moto(resolver: AlbResolver, web: SimpleNamespace,
                                              aws: SimpleNamespace) -> None:
    statuses = [None]

    def next_status() -> InstanceStatus:
        healthy = resolver.healthy_targets(web.endpoint)
        assert isinstance(healthy, int)
        statuses.append(alb_status(healthy, statuses[-1]))
        return statuses[-1]

    assert next_status() is InstanceStatus.STARTING  # no target yet
    aws.world.register(web.target_group, web.instance, 32768)
    wait_until(lambda: next_status() is InstanceStatus.UP, CHECK_INTERVAL + 1, "a healthy target")
    aws.world.stop(web.instance)  # moto: a stopped instance's target is "unused"
    wait_until(lambda: next_status() is InstanceStatus.DOWN, CHECK_INTERVAL + 1, "no healthy target")
    calls = aws.stand_in.calls["DescribeTargetHealth"]
    assert next_status() is InstanceStatus.DOWN and aws.stand_in.calls["DescribeTargetHealth"] == calls


def test_only_healthy_targets_count(resolver: AlbResolver, web: SimpleNamespace, aws: SimpleNamespace) -> None:
    aws.stand_in.target_health[web.target_group] = [
        (web.instance, 32768, "initial"), (web.instance, 32769, "unhealthy"), (web.instance, 32770, "draining"),
        (web.instance, 32771, "unavailable")]
    assert resolver.healthy_targets(web.endpoint) == 0
    aws.stand_in.target_health[web.target_group].append((web.instance, 32772, "healthy"))
    wait_until(lambda: resolver.healthy_targets(web.endpoint) == 1, CHECK_INTERVAL + 1, "the healthy target")
