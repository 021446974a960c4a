"""The server's rules in-process, on a clock the test moves: XStream's element names, the eviction
limit, self-preservation and the two cache levels. Everything over HTTP is in the other files."""

from __future__ import annotations

import pytest

from deveureka.cache import ResponseCache
from deveureka.instance import (
    DataCenterInfo,
    Instance,
    Lease,
    Port,
    decode_element_name,
    xml_element_name,
)
from deveureka.registry import RenewalRate, Registry, eviction_limit, renewal_threshold


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _instance(instance_id: str, app: str = "WEB", duration: int = 30) -> Instance:
    return Instance(
        instance_id=instance_id,
        sent_instance_id=instance_id,
        app=app,
        host_name="h",
        ip_addr="10.0.0.1",
        status="UP",
        overridden_status="UNKNOWN",
        port=Port(80, True),
        secure_port=Port(443, False),
        country_id=1,
        data_center=DataCenterInfo("MyOwn"),
        lease=Lease(renewal_interval_secs=10, duration_secs=duration),
        metadata={},
        last_dirty_ts=1,
    )


@pytest.mark.parametrize(
    "key,element",
    [
        ("zone", "zone"),
        ("hudl.routes", "hudl.routes"),
        ("is-container", "is-container"),
        ("1bad<key", "_.0031bad_.003ckey"),  # recorded from Netflix 1.10.18
        ("1bad<key x", "_.0031bad_.003ckey_.0020x"),  # recorded from Netflix 1.10.18
        ("a:b", "a:b"),  # a valid XML 1.0 name, so Netflix writes it as it is
        ("under_score", "under__score"),
        ("$x", "_-x"),
        ("-x", "_.002dx"),
        ("caf\u00e9", "caf\u00e9"),
        ("\U0001f600", "_.d83d_.de00"),  # Java escapes each UTF-16 unit
    ],
)
def test_metadata_key_as_xstream_writes_it_and_reads_it_back(key, element):
    assert xml_element_name(key) == element
    assert decode_element_name(element) == key


@pytest.mark.parametrize("size,limit", [(1, 1), (2, 1), (7, 2), (10, 2), (20, 3), (100, 15)])
def test_eviction_limit_is_what_85_percent_of_the_registry_leaves(size, limit):
    assert eviction_limit(size) == limit


@pytest.mark.parametrize("instances,threshold", [(0, 0), (1, 1), (3, 5), (10, 17)])
def test_renewal_threshold_expects_two_heartbeats_a_minute_per_instance(instances, threshold):
    assert renewal_threshold(instances) == threshold


def test_renewal_rate_reads_the_last_complete_minute():
    rate = RenewalRate(start=0.0)
    for second in (1, 2, 59):
        rate.increment(second)
    assert rate.last_window(59.5) == 0
    assert rate.last_window(60) == 3
    rate.increment(61)
    assert rate.last_window(119) == 3
    assert rate.last_window(120) == 1
    assert rate.last_window(240) == 0  # a silent minute in between


def test_one_eviction_run_removes_no_more_than_the_limit():
    clock = Clock()
    registry = Registry(clock)
    for number in range(10):
        registry.register(_instance(f"i-{number}", duration=5))
    clock.now += 6

    assert len(registry.evict()) == 2
    assert len(registry.evict()) == 2  # 8 left: 8 - floor(6.8) = 2
    assert len(registry.application("WEB")) == 6


def test_a_registration_reads_the_clock_once_however_slowly_it_runs():
    clock = Clock()

    def ticking() -> float:  # a millisecond passes between any two readings
        clock.now += 0.001
        return clock.now

    registry = Registry(ticking)
    registry.register(_instance("i-1"))

    lease = registry.instance("WEB", "i-1").lease
    assert lease.registration_ts == lease.last_update_ts == lease.service_up_ts > 0


def test_late_eviction_run_extends_every_lease_by_its_lateness():
    clock = Clock()
    registry = Registry(clock)
    registry.register(_instance("i-1", duration=5))
    clock.now += 6

    assert registry.evict(additional_ms=2000) == []
    assert registry.evict() == [("WEB", "i-1")]


def test_renewed_lease_expires_after_twice_its_duration_and_a_heartbeat_revives_it():
    clock = Clock()
    registry = Registry(clock)
    registry.register(_instance("i-1", duration=5))
    clock.now += 1
    registry.renew("WEB", "i-1")

    clock.now += 9.9
    assert registry.instance("WEB", "i-1") is not None
    clock.now += 0.2
    assert registry.instance("WEB", "i-1") is None
    assert [i.instance_id for i in registry.application("WEB")] == ["i-1"]  # listed until evicted

    registry.renew("WEB", "i-1")
    assert registry.instance("WEB", "i-1") is not None


def test_self_preservation_stops_expiry_until_heartbeats_exceed_the_threshold():
    clock = Clock()
    registry = Registry(clock, self_preservation=True)
    registry.register(_instance("beating", duration=30))
    registry.register(_instance("silent", duration=30))
    clock.now += 31

    # Two instances expect int(2 x 2 x 0.85) = 3 heartbeats a minute; none came.
    assert registry.instance("WEB", "silent") is not None
    assert registry.evict() == []

    for _ in range(4):
        registry.renew("WEB", "beating")
    assert registry.evict() == []  # counted in the current minute, which is not complete yet
    clock.now += 60

    assert registry.instance("WEB", "silent") is None
    assert registry.evict() == [("WEB", "silent")]


def test_changes_are_told_to_listeners_but_heartbeats_are_not():
    registry = Registry(Clock())
    changed: list[str] = []
    registry.subscribe(changed.append)

    registry.register(_instance("i-1"))
    registry.renew("WEB", "i-1")
    registry.set_status("WEB", "i-1", "OUT_OF_SERVICE", None)
    registry.set_status("WEB", "i-1", "OUT_OF_SERVICE", None)  # no change
    registry.delete_status_override("WEB", "i-1", "UP", None)
    registry.merge_metadata("WEB", "i-1", {"k": "v"})
    registry.cancel("WEB", "i-1")

    assert changed == ["WEB"] * 5


def test_cache_serves_a_key_as_first_read_until_a_tick_after_a_change():
    clock, version = Clock(), {"WEB": 1}
    cache = ResponseCache(30, lambda key: (key, version[key]), clock=clock)

    assert cache.get("WEB") == ("WEB", 1)
    version["WEB"] = 2
    cache.refresh()
    assert cache.get("WEB") == ("WEB", 1)  # nothing invalidated it: the read-write level keeps it

    cache.invalidate(lambda key: key == "WEB")
    assert cache.get("WEB") == ("WEB", 1)  # until the next tick
    cache.refresh()
    assert cache.get("WEB") == ("WEB", 2)


def test_cache_rebuilds_an_answer_180_seconds_after_it_was_built():
    clock, version = Clock(), {"WEB": 1}
    cache = ResponseCache(30, lambda key: version[key], clock=clock)
    cache.get("WEB")
    version["WEB"] = 2

    clock.now += 179
    cache.refresh()
    assert cache.get("WEB") == 1
    clock.now += 1
    cache.refresh()
    assert cache.get("WEB") == 2


def test_cache_off_builds_every_answer():
    version = {"WEB": 1}
    cache = ResponseCache(0, lambda key: version[key])
    assert cache.get("WEB") == 1
    version["WEB"] = 2
    assert cache.get("WEB") == 2
