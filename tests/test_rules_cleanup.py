"""-cleanup's decisions (registrar/cleanup.py) on a real Redis, with an in-memory Eureka that can change
between the listing and the deletion, as a concurrent registration would make it."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest
import redis

from registrar.cleanup import container_id_if_from, remove_dangling
from shared import keys
from shared.models import ContainerState, InstanceStatus, Phase
from shared.store import Store

HOST = "host-a"
KNOWN, GONE = "a" * 64, "b" * 64


class MemoryEureka:
    """The part of EurekaClient cleanup uses; `before_read` runs before each single-instance read."""

    def __init__(self, instances: list[dict[str, Any]]) -> None:
        self.instances = {(item["app"], item["instanceId"]): item for item in instances}
        self.deleted: list[str] = []
        self.before_read: Callable[[], None] = lambda: None

    def applications(self) -> list[dict[str, Any]]:
        apps: dict[str, list[dict[str, Any]]] = {}
        for (app, _), item in self.instances.items():
            apps.setdefault(app, []).append(item)
        # A lone instance comes as an object, as in Netflix Eureka's JSON.
        return [{"name": app, "instance": items[0] if len(items) == 1 else items} for app, items in apps.items()]

    def instance(self, app: str, instance_id: str) -> dict[str, Any] | None:
        self.before_read()
        return self.instances.get((app, instance_id))

    def deregister(self, app: str, instance_id: str) -> bool:
        self.deleted.append(f"{app}/{instance_id}")
        return self.instances.pop((app, instance_id), None) is not None


def instance(app: str, instance_id: str, **metadata: str) -> dict[str, Any]:
    return {"app": app, "instanceId": instance_id, "metadata": metadata}


def publish(store: Store, container_id: str) -> None:
    state = ContainerState(host=HOST, container_id=container_id, container_name="/c", phase=Phase.RUNNING,
                           status=InstanceStatus.UP)
    store.publish_state(keys.source(HOST, container_id), state, ttl=30, now=time.time(), sweep_after=10)


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client)


def test_only_this_hosts_instances_of_unknown_containers_are_deleted(store: Store) -> None:
    publish(store, KNOWN)
    eureka = MemoryEureka([
        instance("WEB", "10.0.0.5_1", **{"docker-host": HOST, "container-id": GONE}),
        instance("WEB", "10.0.0.5_2", **{"docker-host": HOST, "container-id": KNOWN}),
        instance("WEB", "10.0.0.6_1", **{"docker-host": "host-b", "container-id": GONE}),
        instance("API", "10.0.0.7_1"),
        instance("ALB", "alb.example_443", **{"docker-host": HOST, "container-id": ""}),
    ])

    assert remove_dangling(HOST, store, eureka) == ["WEB/10.0.0.5_1"]
    assert eureka.deleted == ["WEB/10.0.0.5_1"]


def test_a_container_published_meanwhile_keeps_its_instance(store: Store) -> None:
    eureka = MemoryEureka([instance("WEB", "10.0.0.5_1", **{"docker-host": HOST, "container-id": GONE})])
    eureka.before_read = lambda: publish(store, GONE)

    assert remove_dangling(HOST, store, eureka) == []


def test_an_instance_registered_again_meanwhile_for_a_known_container_is_kept(store: Store) -> None:
    publish(store, KNOWN)
    eureka = MemoryEureka([instance("WEB", "10.0.0.5_1", **{"docker-host": HOST, "container-id": GONE})])

    def registered_again() -> None:
        eureka.instances[("WEB", "10.0.0.5_1")] = instance("WEB", "10.0.0.5_1", **{"docker-host": HOST,
                                                                                 "container-id": KNOWN})

    eureka.before_read = registered_again
    assert remove_dangling(HOST, store, eureka) == []


@pytest.mark.parametrize(("metadata", "container_id"), [
    ({"docker-host": HOST, "container-id": KNOWN}, KNOWN),
    ({"docker-host": "host-b", "container-id": KNOWN}, None),
    ({"docker-host": HOST}, None),
    ({"container-id": KNOWN}, None),
    ({}, None),
])
def test_container_id_if_from(metadata: dict[str, str], container_id: str | None) -> None:
    assert container_id_if_from({"metadata": metadata}, HOST) == container_id
