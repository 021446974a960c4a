"""Finding the ALB in front of a service, against moto in server mode (SPEC section 5): every lookup path,
weighted forwards, several listeners, rules, explicit endpoints, health and deleted load balancers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis

from registrar.albs import alb_resolver
from registrar.albs.resolver import AlbResolver, Unknown
from shared.alb import AlbEndpoint, AlbIntent, AlbLookup, ExplicitAlb, alb_status
from shared.models import InstanceStatus

CHECK_INTERVAL = 1.0


def lookup(**fields: object) -> AlbIntent:
    return AlbIntent(AlbLookup(**{"container_port": 80, "host_port": 32768, **fields}), only_registration=True)


def explicit(dns_name: str, port: int, target_group_arn: str) -> AlbIntent:
    return AlbIntent(ExplicitAlb(dns_name, port, target_group_arn), only_registration=True)


@pytest.fixture
def resolver(aws: SimpleNamespace, redis_client: redis.Redis) -> AlbResolver:
    return alb_resolver(redis_client, check_interval=CHECK_INTERVAL)


@pytest.fixture
def web(aws: SimpleNamespace) -> SimpleNamespace:
    """An ALB `web` whose listener on 8080 forwards to target group `web`, the target group of ECS service
    `web` (container `app`, port 80) in cluster `prod`, which runs one task on one instance."""
    world = aws.world
    instance = world.instance()
    load_balancer, dns_name = world.load_balancer("web")
    target_group = world.target_group("web")
    world.listener(load_balancer, 8080, (target_group, 1))
    cluster = world.cluster("prod", instance)
    task_definition = world.task_definition("web", ("app", 80))
    world.service("prod", "web", task_definition, (target_group, "app", 80))
    [task] = world.run_tasks("prod", task_definition, "service:web")
    return SimpleNamespace(instance=instance, load_balancer=load_balancer, dns_name=dns_name,
                           target_group=target_group, cluster=cluster, task_definition=task_definition, task=task,
                           endpoint=AlbEndpoint(dns_name=dns_name, port=8080, target_group_arn=target_group,
                                                load_balancer_arn=load_balancer))


def test_ecs_labels_lead_through_the_task_group_to_service_target_group_listener_and_dns(
        resolver: AlbResolver, web: SimpleNamespace, aws: SimpleNamespace) -> None:
    found = resolver.resolve(lookup(cluster=web.cluster, task_arn=web.task, ecs_container_name="app"))
    assert found == web.endpoint
    assert aws.stand_in.calls["DescribeTasks"] == 1
