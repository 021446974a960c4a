"""The workers' Eureka-write locks on real Redis: waiting, renewal, loss, and sharing keys with redis-py's Lock."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis.exceptions import LockNotOwnedError

from shared.locking import Locks
from shared.store import Store


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
