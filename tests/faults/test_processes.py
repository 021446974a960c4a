"""Components killed hard (kill -9) at the worst moment, and restarted.

Invariants: a dead watcher's containers leave Eureka by lease expiry (nobody vouches, so nobody renews);
a registrar killed mid-job holds its locks only until they expire, and its work is picked up again by the
sweep; a heartbeater killed mid-batch costs at most one renewal, which the leases outlive.
"""

from __future__ import annotations

from types import SimpleNamespace

from shared import defaults
from tests.conftest import FAST_LEASE, HOST_IP, run_web, start_system, start_watcher
from tests.faults.convergence import differences, wait_converged, web_key
from tests.faults.proxies import Fault
from tests.support import free_port, holds_for, wait_until

# FAST_LEASE: renewal 1 s, duration 3 s. A lease that stops renewing is gone (GET answers 404) at the latest
# 2 x 3 s after its last renewal on Netflix Eureka; the liveness TTL is 3 s.
DEAD_WATCHER_BOUND = 3 + 2 * 3 + 3
# A registrar killed mid-job: its locks (timeout 1 s, one server) expire, then the sweep's retry runs.
KILLED_REGISTRAR_BOUND = defaults.lock_seconds(1, 1) + 2 * defaults.SWEEP_FIRST_RETRY_SECONDS + 5



def test_killed_watcher_lets_its_containers_expire_and_a_new_one_takes_them_back(
        faulty_system: SimpleNamespace) -> None:
    system = faulty_system
    ports = [free_port() for _ in range(3)]
    for number, port in enumerate(ports):
        run_web(system.docker, f"web{number}", port, environment=FAST_LEASE)
    wanted = {web_key(port) for port in ports}
    wait_converged(system.redis, system.eureka, 3, "the starts", expect=wanted)

    system.watcher.kill9()
    wait_converged(system.redis, system.eureka, DEAD_WATCHER_BOUND, "the watcher killed", expect=set())
    assert all(system.eureka.instance("WEB", f"{HOST_IP}_{port}") is None for port in ports)

    start_watcher(system.components, system.env, name="watcher-restarted")
    wait_converged(system.redis, system.eureka, 5, "the watcher restarted", expect=wanted)


def test_registrar_killed_mid_job(components, eureka, docker_client, docker_proxy, eureka_proxy, redis_client,
                                  redis_url) -> None:
    env = {"EUREKA_URL": eureka_proxy.url, "DOCKER_HOST": docker_proxy.host, "EUREKA_TIMEOUT": "1"}
    start_system(components, env, redis_url)
    registrar = components.started[0]
    eureka_proxy.faults.append(Fault(lambda method, path: method == "POST", delay=0.8))
    port = free_port()
    run_web(docker_client, "web1", port, environment=FAST_LEASE)
    wait_until(lambda: any(method == "POST" for _, method, _ in eureka_proxy.arrivals), 5, "a registration in flight")
    registrar.kill9()
    eureka_proxy.faults.clear()
    components.start("registrar", name="registrar-2", env=env)

    took = wait_converged(redis_client, eureka, KILLED_REGISTRAR_BOUND, "a registrar killed mid-job",
                          expect={web_key(port)})
    assert took < KILLED_REGISTRAR_BOUND


def test_heartbeater_killed_mid_batch(faulty_system: SimpleNamespace) -> None:
    system = faulty_system
    ports = [free_port() for _ in range(4)]
    for number, port in enumerate(ports):
        run_web(system.docker, f"web{number}", port, environment=FAST_LEASE)
    wanted = {web_key(port) for port in ports}
    wait_converged(system.redis, system.eureka, 3, "the starts", expect=wanted)

    heartbeater = next(p for p in system.components.started if p.name == "heartbeater")
    system.eureka_proxy.faults.append(Fault(lambda method, path: method == "PUT" and "/status" not in path, delay=0.3))
    arrived = len(system.eureka_proxy.arrivals)
    wait_until(lambda: len(system.eureka_proxy.arrivals) > arrived + 1, 5, "a batch of heartbeats under way")
    heartbeater.kill9()
    system.eureka_proxy.faults.clear()
    replacement = system.components.start("heartbeater", name="heartbeater-2", env=system.env)
    wait_until(lambda: "heartbeater started" in replacement.log(), 10, "the new heartbeater")

    # Leases of 3 s (renewed every second) outlive one lost batch and the restart: nothing ever goes missing.
    holds_for(lambda: not differences(system.redis, system.eureka, wanted), 8, "every instance registered and UP")
