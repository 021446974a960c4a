"""-cleanup's decisions (registrar/cleanup.py) on a real Redis and the dev Eureka over HTTP. The client
can run a step between the listing and the re-read of an instance, as a concurrent registration would.
The last test runs the dev Eureka with its response cache on, as Netflix's: listings lag behind."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis

from registrar.cleanup import container_id_if_from, remove_dangling
from shared import keys
from shared.eureka import EurekaClient
from shared.models import ContainerState, InstanceStatus, Phase
from shared.store import Store
from tests.support import DevEureka, wait_until

HOST = "host-a"
KNOWN, GONE = "a" * 64, "b" * 64


class SteppingEurekaClient(EurekaClient):
    """The real client; `before_read` runs before each single-instance read."""

    def __init__(self, url: str) -> None:
        super().__init__([url])
        self.before_read: Callable[[], None] = lambda: None

    def instance(self, app: str, instance_id: str) -> dict[str, Any] | None:
        self.before_read()
        return super().instance(app, instance_id)


def instance(app: str, instance_id: str, **metadata: str) -> dict[str, Any]:
    return {"instanceId": instance_id, "hostName": instance_id.split("_")[0], "app": app,
            "ipAddr": instance_id.split("_")[0], "status": "UP", "port": {"$": 80, "@enabled": "true"},
            "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
            "metadata": metadata}


def publish(store: Store, container_id: str) -> None:
    state = ContainerState(host=HOST, container_id=container_id, container_name="/c", phase=Phase.RUNNING,
                           status=InstanceStatus.UP)
    store.publish_state(keys.source(HOST, container_id), state, ttl=30, sweep_after=10)


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client)


@pytest.fixture
def client(eureka: DevEureka) -> SteppingEurekaClient:
    return SteppingEurekaClient(eureka.url)


ALL = {"WEB/10.0.0.5_1", "WEB/10.0.0.5_2", "WEB/10.0.0.6_1", "API/10.0.0.7_1", "ALB/10.0.0.8_443"}


def registered(client: EurekaClient, candidates: set[str] = ALL) -> set[str]:
    """Which of `candidates` Eureka holds, read per instance (listings come from its response cache)."""
    return {key for key in candidates if EurekaClient.instance(client, *key.split("/"))}


def test_only_this_hosts_instances_of_unknown_containers_are_deleted(store: Store,
                                                                      client: SteppingEurekaClient) -> None:
    publish(store, KNOWN)
    for item in (instance("WEB", "10.0.0.5_1", **{"docker-host": HOST, "container-id": GONE}),
                 instance("WEB", "10.0.0.5_2", **{"docker-host": HOST, "container-id": KNOWN}),
                 instance("WEB", "10.0.0.6_1", **{"docker-host": "host-b", "container-id": GONE}),
                 instance("API", "10.0.0.7_1"),
                 instance("ALB", "10.0.0.8_443", **{"docker-host": HOST, "container-id": ""})):
        client.register(item)

    assert remove_dangling(HOST, store, client) == ["WEB/10.0.0.5_1"]
    assert registered(client) == {"WEB/10.0.0.5_2", "WEB/10.0.0.6_1", "API/10.0.0.7_1", "ALB/10.0.0.8_443"}


def test_a_container_published_meanwhile_keeps_its_instance(store: Store, client: SteppingEurekaClient) -> None:
    client.register(instance("WEB", "10.0.0.5_1", **{"docker-host": HOST, "container-id": GONE}))
    client.before_read = lambda: publish(store, GONE)

    assert remove_dangling(HOST, store, client) == []
    assert registered(client) == {"WEB/10.0.0.5_1"}


def test_an_instance_registered_again_meanwhile_for_a_known_container_is_kept(
        store: Store, client: SteppingEurekaClient) -> None:
    publish(store, KNOWN)
    client.register(instance("WEB", "10.0.0.5_1", **{"docker-host": HOST, "container-id": GONE}))
    client.before_read = lambda: client.register(
        instance("WEB", "10.0.0.5_1", **{"docker-host": HOST, "container-id": KNOWN}))

    assert remove_dangling(HOST, store, client) == []
    assert registered(client) == {"WEB/10.0.0.5_1"}


@pytest.mark.parametrize(("metadata", "container_id"), [
    ({"docker-host": HOST, "container-id": KNOWN}, KNOWN),
    ({"docker-host": "host-b", "container-id": KNOWN}, None),
    ({"docker-host": HOST}, None),
    ({"container-id": KNOWN}, None),
    ({}, None),
])
def test_container_id_if_from(metadata: dict[str, str], container_id: str | None) -> None:
    assert container_id_if_from({"metadata": metadata}, HOST) == container_id


CACHE_SECONDS = 3.0


@pytest.fixture
def cached_eureka(tmp_path: Path) -> Iterator[DevEureka]:
    server = DevEureka(tmp_path, response_cache_seconds=CACHE_SECONDS, lease_expiry="netflix").start()
    yield server
    server.stop()


def test_a_second_pass_deletes_what_a_stale_listing_did_not_show(store: Store, cached_eureka: DevEureka) -> None:
    client = SteppingEurekaClient(cached_eureka.url)
    publish(store, KNOWN)
    while not 0.05 < time.time() % CACHE_SECONDS < 0.5:  # just after a cache refresh
        time.sleep(0.02)
    assert client.applications() == []  # the listing is cached as it is now: empty
    client.register(instance("WEB", "10.0.0.5_1", **{"docker-host": HOST, "container-id": GONE}))
    client.register(instance("WEB", "10.0.0.5_2", **{"docker-host": HOST, "container-id": KNOWN}))

    assert remove_dangling(HOST, store, client) == []
    assert cached_eureka.instance("WEB", "10.0.0.5_1") is not None  # the listing did not show it yet

    # The watcher asks for a second pass once the listing is old enough to show everything (35 s on Netflix).
    wait_until(lambda: len(client.applications()[0]["instance"]) == 2 if client.applications() else False,
               CACHE_SECONDS + 2, "the listing to show both instances")
    assert remove_dangling(HOST, store, client) == ["WEB/10.0.0.5_1"]
    assert cached_eureka.instance("WEB", "10.0.0.5_2") is not None
