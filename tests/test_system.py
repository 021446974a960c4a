"""End to end on real parts: private dockerd, redis-server, the three components as processes, dev Eureka."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from py_eureka_client.eureka_client import EurekaClient

from shared import keys
from tests.conftest import FAST_LEASE, HOST, HOST_IP, run_web, start_watcher
from tests.support import free_port, wait_until

def test_started_container_appears_in_eureka_within_two_seconds(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port)

    instance = wait_until(lambda: system.eureka.instance("WEB", f"{HOST_IP}_{port}"), 2, "WEB in Eureka")

    assert instance["app"] == "WEB"
    assert instance["status"] == "UP"
    assert instance["ipAddr"] == HOST_IP
    assert instance["hostName"] == HOST_IP
    assert instance["port"]["$"] == port
    assert instance["dataCenterInfo"]["name"] == "Amazon"
    assert instance["metadata"]["is-container"] == "true"
    assert instance["metadata"]["container-id"] == container.id
    assert instance["metadata"]["container-name"] == "/web1"
    assert system.redis.exists(keys.live(keys.source(HOST, container.id)))


def test_stopped_container_leaves_eureka_within_two_seconds(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port)
    wait_until(lambda: system.eureka.instance("WEB", f"{HOST_IP}_{port}"), 2, "WEB in Eureka")

    container.stop(timeout=1)

    wait_until(lambda: system.eureka.instance("WEB", f"{HOST_IP}_{port}") is None, 2, "WEB gone from Eureka")
    source = keys.source(HOST, container.id)
    assert not system.redis.exists(keys.live(source))
    assert system.redis.smembers(keys.source_instances(source)) == set()
    assert system.redis.zcard(keys.HEARTBEAT_DUE) == 0


def test_heartbeats_keep_a_short_lease_alive(system: SimpleNamespace) -> None:
    port = free_port()
    run_web(system.docker, "web1", port, environment=FAST_LEASE)
    instance_id = f"{HOST_IP}_{port}"
    first = wait_until(lambda: system.eureka.instance("WEB", instance_id), 2, "WEB in Eureka")

    def renewed_later() -> bool:
        current = system.eureka.instance("WEB", instance_id)
        return current["leaseInfo"]["lastRenewalTimestamp"] > first["leaseInfo"]["lastRenewalTimestamp"]

    wait_until(renewed_later, 5, "a heartbeat renewing the lease")
    # Three lease durations later the instance is still there: renewals kept it.
    deadline = time.monotonic() + 9
    while time.monotonic() < deadline:
        assert system.eureka.instance("WEB", instance_id) is not None
        time.sleep(0.5)


def test_killed_watcher_lets_leases_expire_and_its_restart_registers_again(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port, environment=FAST_LEASE)
    instance_id = f"{HOST_IP}_{port}"
    wait_until(lambda: system.eureka.instance("WEB", instance_id), 2, "WEB in Eureka")
    live_key = keys.live(keys.source(HOST, container.id))

    system.watcher.kill9()

    wait_until(lambda: not system.redis.exists(live_key), 5, "the liveness entry to expire")
    wait_until(lambda: system.eureka.instance("WEB", instance_id) is None, 8, "eviction by lease expiry")
    # The registrar still tracks it: nothing deregistered it, the lease just ran out.
    assert system.redis.sismember(keys.source_instances(keys.source(HOST, container.id)),
                                  f"WEB/{instance_id}")

    start_watcher(system.components, system.env)

    wait_until(lambda: system.eureka.instance("WEB", instance_id), 5, "WEB registered again")
    assert system.redis.exists(live_key)


def test_restarted_eureka_gets_instances_back_through_heartbeat_404(system: SimpleNamespace) -> None:
    port = free_port()
    run_web(system.docker, "web1", port, environment=FAST_LEASE)
    instance_id = f"{HOST_IP}_{port}"
    before = wait_until(lambda: system.eureka.instance("WEB", instance_id), 2, "WEB in Eureka")

    system.eureka.restart()  # a new process: an empty registry

    instance = wait_until(lambda: system.eureka.instance("WEB", instance_id), 5, "WEB re-registered after a 404")
    assert instance["leaseInfo"]["registrationTimestamp"] > before["leaseInfo"]["registrationTimestamp"]
    assert instance["metadata"]["container-name"] == "/web1"
    heartbeater = next(p for p in system.components.started if p.name == "heartbeater")
    # Logged once the registration is complete (its status set too), which may be just after the read above.
    wait_until(lambda: f"re-registered WEB/{instance_id}: Eureka answered 404 to its heartbeat" in heartbeater.log(),
               2, "the heartbeater to report the re-registration")


def test_py_eureka_client_discovers_a_registered_container(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port, environment={"SERVICE_EUREKA_METADATA_BRANCH": "main"})
    wait_until(lambda: system.eureka.instance("WEB", f"{HOST_IP}_{port}"), 2, "WEB in Eureka")
    system.eureka.apps_xml_listing(f"{HOST_IP}_{port}")  # what the client fetches, from the response cache

    client = EurekaClient(eureka_server=system.eureka.url, should_register=False, should_discover=True)
    asyncio.run(asyncio.wait_for(client.start(), timeout=15))
    try:
        instance = client.applications.get_application("WEB").get_instance(f"{HOST_IP}_{port}")
        assert (instance.ipAddr, instance.port.port, instance.status) == (HOST_IP, port, "UP")
        assert instance.metadata["container-id"] == container.id
        assert instance.metadata["branch"] == "main"
    finally:
        asyncio.run(asyncio.wait_for(client.stop(), timeout=15))
