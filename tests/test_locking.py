"""The workers' Eureka-write locks on real Redis: waiting, renewal, loss, and sharing keys with redis-py's Lock;
and the instance lock a reconcile takes with its source lock when the container departs."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis.exceptions import LockNotOwnedError

from registrar.reconcile import Reconciler
from shared import keys
from shared.locking import Locks
from shared.models import ContainerState, InstanceStatus, Phase, ServiceRecord
from shared.store import Store
from tests.support import DevEureka, wait_until


@pytest.fixture
def locks(redis_client: redis.Redis) -> Locks:
    return Locks(Store(redis_client), eureka_timeout=1, eureka_servers=1)


def test_a_busy_lock_is_taken_within_milliseconds_of_its_release(locks: Locks, redis_client: redis.Redis) -> None:
    other = redis_client.lock("reg:lock:test", timeout=30)
    assert other.acquire(blocking=False)
    taken_at: list[float] = []

    def take() -> None:
        with locks.hold("reg:lock:test"):
            taken_at.append(time.monotonic())

    waiter = threading.Thread(target=take)
    waiter.start()
    time.sleep(0.3)
    assert not taken_at, "taken while another holder had it"
    released_at = time.monotonic()
    other.release()
    waiter.join(5)
    assert taken_at and taken_at[0] - released_at < 0.1
    assert not redis_client.exists("reg:lock:test"), "released on leaving"


def test_redis_py_locks_on_the_same_key_wait_for_it(locks: Locks, redis_client: redis.Redis) -> None:
    with locks.hold("reg:lock:test"):
        assert not redis_client.lock("reg:lock:test", timeout=30).acquire(blocking=False)


def test_taking_a_lock_renews_the_ones_held(locks: Locks, redis_client: redis.Redis) -> None:
    with locks.hold("reg:lock:outer"):
        redis_client.pexpire("reg:lock:outer", 1000)
        with locks.hold("reg:lock:inner"):
            assert redis_client.pttl("reg:lock:outer") > locks.seconds * 1000 - 1000
        redis_client.pexpire("reg:lock:outer", 1000)
        locks.renew()
        assert redis_client.pttl("reg:lock:outer") > locks.seconds * 1000 - 1000


def test_a_lost_lock_stops_the_holder(locks: Locks, redis_client: redis.Redis) -> None:
    with pytest.raises(LockNotOwnedError, match="reg:lock:outer"):
        with locks.hold("reg:lock:outer"):
            redis_client.set("reg:lock:outer", "someone else")  # it expired, and another worker took it
            with locks.hold("reg:lock:inner"):
                pytest.fail("took another lock after losing one")
    assert not redis_client.exists("reg:lock:inner")
    with pytest.raises(LockNotOwnedError, match="reg:lock:other"):
        with locks.hold("reg:lock:other"):
            redis_client.delete("reg:lock:other")
            locks.renew()
    assert redis_client.get("reg:lock:outer") == "someone else", "not released for its new holder"


# --- a reconcile's instance locks -------------------------------------------------------------------------

HOST, CONTAINER = "host-a", "c" * 64
SOURCE = keys.source(HOST, CONTAINER)


def web(phase: Phase, *ports: int) -> ContainerState:
    records = tuple(ServiceRecord(service_id=f"{HOST}:web:{port}", name="web", ip="10.1.2.3", port=port,
                                  exposed_port=80, protocol="tcp", host_ip="10.1.2.3", container_id=CONTAINER,
                                  container_name="/web") for port in ports)
    return ContainerState(host=HOST, container_id=CONTAINER, container_name="/web", phase=phase,
                          status=InstanceStatus.UP if phase is Phase.RUNNING else InstanceStatus.DOWN,
                          services=records if phase is Phase.RUNNING else ())


def registered(reconciler: Reconciler, *ports: int) -> list[str]:
    """The instance keys of a container running with `ports`, registered."""
    reconciler.store.publish_state(SOURCE, web(Phase.RUNNING, *ports), ttl=30, sweep_after=60)
    assert reconciler.reconcile(SOURCE)
    return sorted(keys.instance_key("WEB", f"10.1.2.3_{port}") for port in ports)


def test_a_departing_container_s_instance_is_locked_with_its_source(
        reconciler: Reconciler, redis_client: redis.Redis) -> None:
    store, source_lock = reconciler.store, keys.source_lock(SOURCE)
    instances = registered(reconciler, 18080, 18081)

    start = store.begin_reconcile(SOURCE, "", source_lock, "running", 5000)
    assert start is not None and start.prelocked is None, "a running container's instances are locked one by one"
    assert not redis_client.keys(keys.instance_lock("*"))
    assert store.release_lock(source_lock, "running")

    store.publish_state(SOURCE, web(Phase.EXITED), ttl=30, sweep_after=60)
    start = store.begin_reconcile(SOURCE, "", source_lock, "exited", 5000)
    assert start is not None and start.prelocked is not None
    locked = start.prelocked.instance
    assert locked.key in instances and start.tracked[locked.key] == locked and start.prelocked.token == "exited"
    assert redis_client.get(keys.instance_lock(locked.key)) == "exited"
    assert redis_client.keys(keys.instance_lock("*")) == [keys.instance_lock(locked.key)], "one, not all"


def test_a_departing_container_is_deregistered_and_every_lock_released(
        reconciler: Reconciler, eureka: DevEureka, redis_client: redis.Redis) -> None:
    registered(reconciler, 18080, 18081)
    reconciler.store.publish_state(SOURCE, web(Phase.EXITED), ttl=30, sweep_after=60)
    assert reconciler.reconcile(SOURCE)
    assert eureka.instance("WEB", "10.1.2.3_18080") is None and eureka.instance("WEB", "10.1.2.3_18081") is None
    assert not redis_client.keys(keys.PREFIX + "lock:*")
    assert not redis_client.smembers(keys.source_instances(SOURCE))


def test_a_busy_instance_lock_is_left_to_its_holder_and_waited_for(
        reconciler: Reconciler, eureka: DevEureka, redis_client: redis.Redis) -> None:
    [instance] = registered(reconciler, 18080)
    reconciler.store.publish_state(SOURCE, web(Phase.EXITED), ttl=30, sweep_after=60)
    heartbeat = redis_client.lock(keys.instance_lock(instance), timeout=30)  # a heartbeater's re-registration
    assert heartbeat.acquire(blocking=False)

    applied: list[bool] = []
    reconcile = threading.Thread(target=lambda: applied.append(reconciler.reconcile(SOURCE)))
    reconcile.start()
    wait_until(lambda: redis_client.exists(keys.source_lock(SOURCE)), 5, "the reconcile to take its source lock")
    assert eureka.instance("WEB", "10.1.2.3_18080"), "not deleted while another holder has the instance lock"
    heartbeat.release()
    reconcile.join(10)
    assert applied == [True]
    assert eureka.instance("WEB", "10.1.2.3_18080") is None
    assert not redis_client.keys(keys.PREFIX + "lock:*")
