"""One owner per Eureka instance, and the status Eureka ends with, with every job order forced.

The reconcile steps run in this process, in the order each test chooses (real Redis, the dev Eureka over
HTTP): two containers that derive the same instance, and a container replaced on the same host port while
the old one's "being stopped" left a DOWN override in Eureka.
"""

from __future__ import annotations

import logging

import pytest
import redis

from heartbeater.heartbeat import Heartbeater
from registrar.reconcile import Reconciler
from shared import keys, queues
from shared.eureka import EurekaClient
from shared.models import ContainerState, InstanceStatus, Phase, ServiceRecord
from shared.store import Store
from tests.support import DevEureka

INSTANCE = ("WEB", "10.1.2.3_18080")
KEY = keys.instance_key(*INSTANCE)


def running(host: str, container_id: str, status: InstanceStatus = InstanceStatus.UP) -> ContainerState:
    record = ServiceRecord(service_id=f"{host}:web:80", name="web", ip="10.1.2.3", port=18080, exposed_port=80,
                           protocol="tcp", host_ip="10.1.2.3", container_id=container_id,
                           container_name=f"/web-{container_id[:4]}")
    return ContainerState(host=host, container_id=container_id, container_name=f"/web-{container_id[:4]}",
                          phase=Phase.RUNNING, status=status, services=(record,))


def exited(host: str, container_id: str, *, keep: bool = False) -> ContainerState:
    return ContainerState(host=host, container_id=container_id, container_name=f"/web-{container_id[:4]}",
                          phase=Phase.EXITED, status=InstanceStatus.DOWN, keep_registered=keep)


OLD, NEW = "a" * 64, "b" * 64


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client)


def publish(store: Store, host: str, container_id: str, state: ContainerState | None) -> str:
    """What a watcher of `host` does; returns the source. Its liveness follows the state."""
    source = keys.source(host, container_id)
    store.claim_host(host, f"watcher-of-{host}", 30)
    store.publish_state(source, state, ttl=30, sweep_after=60)
    return source


def owner_in_eureka(eureka: DevEureka) -> str | None:
    instance = eureka.instance(*INSTANCE)
    return None if instance is None else instance["metadata"]["container-id"]


def test_the_first_owner_keeps_an_instance_a_second_container_claims(
        store: Store, reconciler: Reconciler, eureka: DevEureka, caplog: pytest.LogCaptureFixture) -> None:
    first = publish(store, "host-a", OLD, running("host-a", OLD))
    assert reconciler.reconcile(first)
    second = publish(store, "host-b", NEW, running("host-b", NEW))
    with caplog.at_level(logging.ERROR):
        assert not reconciler.reconcile(second), "refused: stays pending"
        assert not reconciler.reconcile(second)
    refusals = [record.getMessage() for record in caplog.records if "owns it" in record.getMessage()]
    assert len(refusals) == 1, "one error line, not one per retry"
    assert f"container web-bbbb ({NEW[:12]}) on host host-b" in refusals[0]
    assert f"container web-aaaa ({OLD[:12]}) on host host-a" in refusals[0]
    assert owner_in_eureka(eureka) == OLD
    assert store.redis.zscore(keys.PENDING, second) is not None

    # The second one goes away: the first one's record must stay.
    publish(store, "host-b", NEW, exited("host-b", NEW))
    assert reconciler.reconcile(second)
    assert owner_in_eureka(eureka) == OLD
    assert store.instance(KEY).source == first

    # A third claimant's refusal forgets the second, which no longer wants the instance.
    third = publish(store, "host-c", "c" * 64, running("host-c", "c" * 64))
    assert store.claimants([KEY]) == {KEY: {second}}
    assert not reconciler.reconcile(third)
    assert store.claimants([KEY]) == {KEY: {third}}


def test_a_refused_claimant_takes_over_when_the_owner_lets_go(
        store: Store, reconciler: Reconciler, eureka: DevEureka, redis_url: str) -> None:
    first = publish(store, "host-a", OLD, running("host-a", OLD))
    reconciler.reconcile(first)
    second = publish(store, "host-b", NEW, running("host-b", NEW))
    reconciler.reconcile(second)

    publish(store, "host-a", OLD, exited("host-a", OLD))
    assert reconciler.reconcile(first)
    queue = queues.registrar_queue(redis.Redis.from_url(redis_url))
    assert [job.args[0] for job in queue.jobs] == [second], "the claimant is enqueued at once"
    assert reconciler.reconcile(second)
    assert owner_in_eureka(eureka) == NEW
    assert eureka.instance(*INSTANCE)["status"] == "UP"


def test_the_owner_s_watcher_gone_its_next_skipped_heartbeat_frees_the_instance_at_once(
        store: Store, reconciler: Reconciler, eureka: DevEureka, redis_url: str) -> None:
    first = publish(store, "host-a", OLD, running("host-a", OLD))
    reconciler.reconcile(first)
    second = publish(store, "host-b", NEW, running("host-b", NEW))
    assert not reconciler.reconcile(second)
    queue = queues.registrar_queue(redis.Redis.from_url(redis_url))
    heartbeater = Heartbeater(store, EurekaClient([eureka.url]), queue)

    heartbeater.beat([KEY])  # the owner is still vouched for: renewed, nobody requeued
    assert queue.jobs == []
    store.redis.delete(keys.live(first))  # its liveness entry expired; its watcher may still come back
    heartbeater.beat([KEY])
    assert queue.jobs == []
    store.redis.delete(keys.host_watcher("host-a"))  # host A's watcher is gone too
    heartbeater.beat([KEY])
    assert [job.args[0] for job in queue.jobs] == [second], "the claimant, not its backoff, decides when"
    assert reconciler.reconcile(second)
    assert owner_in_eureka(eureka) == NEW


def test_the_owner_of_a_dead_host_no_longer_wants_its_instance(
        store: Store, reconciler: Reconciler, eureka: DevEureka) -> None:
    first = publish(store, "host-a", OLD, running("host-a", OLD))
    reconciler.reconcile(first)
    # Host A dies: its watcher's lease and liveness entries expire (an EC2 IP reused by a new host, say).
    store.redis.delete(keys.host_watcher("host-a"), keys.live(first))
    second = publish(store, "host-b", NEW, running("host-b", NEW))
    assert reconciler.reconcile(second)
    assert owner_in_eureka(eureka) == NEW
    assert store.tracked_instances(first) == {}


ORDERS = {
    # The new container's job runs while the old one is still being stopped, then the old one dies.
    "new job before the old one dies": ["reconcile new", "old dies", "reconcile old", "reconcile new"],
    "old job first": ["old dies", "reconcile old", "reconcile new"],
    "new job after the old one died, before its job": ["old dies", "reconcile new", "reconcile old"],
}


@pytest.mark.parametrize("keep", [False, True], ids=["deregister always", "on-success, failed exit"])
@pytest.mark.parametrize("order", list(ORDERS))
def test_a_replacement_on_the_same_port_ends_up_with_its_own_status(
        store: Store, reconciler: Reconciler, eureka: DevEureka, order: str, keep: bool) -> None:
    """The old container's `kill` set DOWN (an override Eureka keeps across re-registration); the new one
    on the same host port must end UP whichever job a registrar runs first."""
    old = publish(store, "host-a", OLD, running("host-a", OLD))
    reconciler.reconcile(old)
    publish(store, "host-a", OLD, running("host-a", OLD, InstanceStatus.DOWN))
    reconciler.reconcile(old)
    assert eureka.instance(*INSTANCE)["overriddenStatus"] == "DOWN"

    new = publish(store, "host-a", NEW, running("host-a", NEW))
    for step in ORDERS[order]:
        if step == "old dies":
            publish(store, "host-a", OLD, exited("host-a", OLD, keep=keep))
        else:
            reconciler.reconcile(new if step == "reconcile new" else old)

    instance = eureka.instance(*INSTANCE)
    assert instance["status"] == "UP"
    assert instance["metadata"]["container-id"] == NEW
    assert store.instance(KEY).source == new
    assert store.redis.zcard(keys.PENDING) == 0
