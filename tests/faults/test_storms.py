"""Storms and races on real containers: containers that start and die within milliseconds, crash loops,
same-port replacements raced by three registrar workers, one instance claimed by two hosts, the Docker
daemon restarting under it all.

Invariant: whatever order events and jobs come in, Eureka ends holding exactly the running, vouched-for
containers, each with its own status, and nothing that nobody vouches for is routable.
"""

from __future__ import annotations

from types import SimpleNamespace

from tests.conftest import FAST_LEASE, HOST_IP, run_web, start_system, start_watcher
from tests.faults.convergence import wait_converged, web_key
from tests.support import free_port, wait_until

STORM_BOUND = 15



def test_containers_that_start_and_die_within_milliseconds(faulty_system: SimpleNamespace) -> None:
    system = faulty_system
    staying = [free_port() for _ in range(5)]
    for number in range(30):
        port = free_port()
        system.docker.containers.run("local/busybox", ["true"], name=f"blink{number}", detach=True,
                                     ports={"80/tcp": port}, environment={"SERVICE_NAME": "web", **FAST_LEASE})
        if number % 6 == 0:
            run_web(system.docker, f"stay{number}", staying[number // 6], environment=FAST_LEASE)
    wait_converged(system.redis, system.eureka, STORM_BOUND, "a storm of short-lived containers",
                   expect={web_key(port) for port in staying})


def test_crash_loops_and_healthy_neighbours(faulty_system: SimpleNamespace) -> None:
    system = faulty_system
    healthy = free_port()
    run_web(system.docker, "healthy", healthy, environment=FAST_LEASE)
    for number in range(3):
        system.docker.containers.run("local/busybox", ["sh", "-c", "httpd -p 80 -h /; sleep 0.3; exit 1"],
                                     name=f"crashing{number}", detach=True, ports={"80/tcp": free_port()},
                                     environment={"SERVICE_NAME": "web", **FAST_LEASE},
                                     restart_policy={"Name": "always"})

    def all_waiting_to_restart() -> bool:
        crashing = system.docker.containers.list(all=True, filters={"name": "crashing"})
        return len(crashing) == 3 and all(container.attrs["State"]["Restarting"] for container in crashing)

    # After a few runs Docker waits seconds between restarts: then only the healthy one may be routable.
    wait_until(all_waiting_to_restart, 30, "every crash loop waiting to restart")
    wait_converged(system.redis, system.eureka, 5, "crash loops", expect={web_key(healthy)})


def test_same_port_replacements_raced_by_three_registrars(faulty_system: SimpleNamespace) -> None:
    system = faulty_system
    for number in (2, 3):
        system.components.start("registrar", name=f"registrar-{number}", env=system.env)
    port = free_port()
    container = run_web(system.docker, "gen0", port, environment=FAST_LEASE)
    for generation in range(1, 6):
        container.kill(signal="TERM")  # being stopped: DOWN, an override Eureka keeps
        container.remove(force=True)
        container = run_web(system.docker, f"gen{generation}", port, environment=FAST_LEASE)
    wait_converged(system.redis, system.eureka, STORM_BOUND, "five replacements on one port",
                   expect={web_key(port)})
    instance = system.eureka.instance("WEB", f"{HOST_IP}_{port}")
    assert instance["status"] == "UP" and instance["metadata"]["container-id"] == container.id


def test_one_instance_claimed_by_two_hosts(components, eureka, docker_client, docker_engine, redis_client,
                                           redis_url) -> None:
    """Two watchers (hosts a and b) derive the same instance for one container: host a's claim came first
    and wins while its watcher lives; when it dies, host b takes over."""
    env = {"EUREKA_URL": eureka.url, "DOCKER_HOST": docker_engine.host}
    watcher_a = start_system(components, env, redis_url, "-hostname", "host-a", "-ip", HOST_IP)
    port = free_port()
    run_web(docker_client, "shared", port, environment=FAST_LEASE)
    wait_until(lambda: eureka.instance("WEB", f"{HOST_IP}_{port}"), 3, "host a's registration")
    watcher_b = start_watcher(components, env, "-hostname", "host-b", "-ip", HOST_IP, name="watcher-b")
    wait_until(lambda: "owns it and still wants it" in components.logs(), 10, "host b's claim refused")
    assert components.logs().count("owns it and still wants it") == 1
    assert eureka.instance("WEB", f"{HOST_IP}_{port}")["metadata"]["docker-host"] == "host-a"

    watcher_a.kill9()
    # Host a's lease and liveness expire (3 s); host b's pending claim is retried by the sweep (backoff).
    wait_until(lambda: (eureka.instance("WEB", f"{HOST_IP}_{port}") or {}).get("metadata", {}).get("docker-host")
               == "host-b", 30, "host b taking over")
    wait_converged(redis_client, eureka, 10, "host a gone", expect={web_key(port)})
    assert watcher_b.running


def test_docker_daemon_restart(faulty_system: SimpleNamespace) -> None:
    system = faulty_system
    lasting, ending = free_port(), free_port()
    run_web(system.docker, "lasting", lasting, environment=FAST_LEASE, restart_policy={"Name": "always"})
    run_web(system.docker, "ending", ending, environment=FAST_LEASE)
    wait_converged(system.redis, system.eureka, 3, "the starts", expect={web_key(lasting), web_key(ending)})

    system.docker_engine.stop_daemon()
    system.docker_engine.start_daemon()
    wait_converged(system.redis, system.eureka, 30, "the Docker daemon restarted", expect={web_key(lasting)})
