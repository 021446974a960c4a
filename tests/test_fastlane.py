"""The registrars' fast lane on real Redis and the dev Eureka: a change is applied from the lane without an
RQ job; the lane and a job for the same source, in either order, write to Eureka once; the lane goes on
after Redis went away and came back."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest
import redis

from registrar import fastlane
from registrar.reconcile import Reconciler
from shared import keys, queues
from shared.eureka import EurekaClient
from shared.health import Pulse
from shared.models import ContainerState, InstanceStatus, Phase, ServiceRecord
from shared.store import Store
from tests.faults.proxies import EurekaProxy
from tests.support import DevEureka, RedisServer, wait_until

HOST = "host-a"
CONTAINER = "e" * 64
SOURCE = keys.source(HOST, CONTAINER)
INSTANCE = ("WEB", "10.1.2.3_18080")


def running(status: InstanceStatus = InstanceStatus.UP) -> ContainerState:
    record = ServiceRecord(service_id=f"{HOST}:web:80", name="web", ip="10.1.2.3", port=18080, exposed_port=80,
                           protocol="tcp", host_ip="10.1.2.3", container_id=CONTAINER, container_name="/web")
    return ContainerState(host=HOST, container_id=CONTAINER, container_name="/web", phase=Phase.RUNNING,
                          status=status, services=(record,))


def publish(store: Store, state: ContainerState) -> None:
    store.claim_host(HOST, "test-watcher", 30)
    store.publish_state(SOURCE, state, ttl=30, sweep_after=60)


def writes(proxy: EurekaProxy) -> list[tuple[str, str]]:
    return [(method, path) for _, method, path, _ in proxy.requests if method != "GET"]


@pytest.fixture
def reconciler(redis_client: redis.Redis, redis_url: str, eureka_proxy: EurekaProxy) -> Reconciler:
    return Reconciler(Store(redis_client), EurekaClient([eureka_proxy.url]),
                      queues.registrar_queue(redis.Redis.from_url(redis_url)))


def test_a_change_is_applied_from_the_lane_without_a_job(reconciler: Reconciler, eureka: DevEureka,
                                                         redis_client: redis.Redis) -> None:
    publish(reconciler.store, running())
    assert fastlane.take_one(reconciler, wait=1) == SOURCE
    assert eureka.instance(*INSTANCE)["status"] == "UP"
    assert redis_client.llen(keys.FAST_LANE) == 0 and redis_client.zcard(keys.PENDING) == 0
    assert reconciler.queue.count == 0
    assert fastlane.take_one(reconciler, wait=0.1) is None, "nothing more on the lane"


@pytest.mark.parametrize("first", ["the lane", "the job"])
def test_the_lane_and_a_job_for_the_same_change_write_once(first: str, reconciler: Reconciler,
                                                           eureka_proxy: EurekaProxy) -> None:
    publish(reconciler.store, running())
    fastlane.take_one(reconciler, wait=1)
    publish(reconciler.store, running(InstanceStatus.DOWN))
    queues.requeue_reconcile(reconciler.store, reconciler.queue, SOURCE)
    [job] = reconciler.queue.jobs
    before = len(writes(eureka_proxy))

    for step in ([first] + [other for other in ("the lane", "the job") if other != first]):
        if step == "the lane":
            assert fastlane.take_one(reconciler, wait=1) == SOURCE
        else:
            assert reconciler.run_job(*job.args, job.id)

    assert writes(eureka_proxy)[before:] == [("PUT", "/eureka/apps/WEB/10.1.2.3_18080/status?value=DOWN")]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_the_lane_goes_on_after_redis_went_away(own_redis: RedisServer, eureka: DevEureka,
                                                caplog: pytest.LogCaptureFixture) -> None:
    store = Store(redis.Redis.from_url(own_redis.url, decode_responses=True, socket_timeout=5))
    reconciler = Reconciler(store, EurekaClient([eureka.url]),
                            queues.registrar_queue(redis.Redis.from_url(own_redis.url)))
    stop, pulse = threading.Event(), Pulse()
    lane = threading.Thread(target=fastlane.follow, args=(reconciler, stop, pulse), daemon=True)
    lane.start()
    try:
        own_redis.stop()
        wait_until(lambda: "fast lane: cannot take the next change" in caplog.text, 10, "the lane to notice")
        own_redis.start()  # empty: the watcher publishes again
        publish(store, running())
        wait_until(lambda: eureka.instance(*INSTANCE), 10, "the change applied from the lane")
        assert store.redis.zcard(keys.PENDING) == 0
        assert pulse.age() < 5
    finally:
        stop.set()
        lane.join(10)
    assert not lane.is_alive()
