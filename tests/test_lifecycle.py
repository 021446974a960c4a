"""Container lifecycle events on the real dockerd, through the whole system, down to what Eureka holds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shared import keys
from tests.conftest import HOST, HOST_IP, run_web, start_watcher
from tests.support import free_port, wait_until


def status_of(system: SimpleNamespace, port: int) -> str | None:
    instance = system.eureka.instance("WEB", f"{HOST_IP}_{port}")
    return None if instance is None else instance["status"]


def is_live(system: SimpleNamespace, container_id: str) -> bool:
    return bool(system.redis.exists(keys.live(keys.source(HOST, container_id))))


def test_pause_marks_down_and_stops_vouching_unpause_brings_it_back(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port)
    wait_until(lambda: status_of(system, port) == "UP", 2, "UP")

    container.pause()
    wait_until(lambda: status_of(system, port) == "DOWN", 2, "DOWN while paused")
    assert not is_live(system, container.id)

    container.unpause()
    wait_until(lambda: status_of(system, port) == "UP", 2, "UP after unpause")
    assert is_live(system, container.id)


def test_health_check_starting_healthy_unhealthy(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port, healthcheck={
        "test": ["CMD-SHELL", "test -f /healthy"], "interval": 300_000_000, "retries": 1,
        "start_period": 60_000_000_000})
    wait_until(lambda: status_of(system, port) == "STARTING", 2, "STARTING while the check has not passed")
    assert is_live(system, container.id)

    container.exec_run(["touch", "/healthy"])
    wait_until(lambda: status_of(system, port) == "UP", 5, "UP once healthy")

    container.exec_run(["rm", "/healthy"])
    wait_until(lambda: status_of(system, port) == "DOWN", 5, "DOWN once unhealthy")
    assert not is_live(system, container.id)


def test_container_being_stopped_is_down_and_not_vouched_for_until_it_dies(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port)
    wait_until(lambda: status_of(system, port) == "UP", 2, "UP")

    container.kill(signal="HUP")  # a reload request changes nothing
    container.kill(signal="TERM")  # httpd as PID 1 ignores it: the container hangs in "being stopped"
    wait_until(lambda: status_of(system, port) == "DOWN", 2, "DOWN while being stopped")
    assert not is_live(system, container.id)
    container.reload()
    assert container.status == "running"

    container.kill(signal="KILL")
    wait_until(lambda: status_of(system, port) is None, 2, "gone once dead")


def test_hup_alone_changes_nothing(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port)
    wait_until(lambda: status_of(system, port) == "UP", 2, "UP")
    container.kill(signal="HUP")
    wait_until(lambda: "event kill" in system.watcher.log(), 2, "the watcher to see the kill event")
    other = free_port()
    run_web(system.docker, "web2", other)
    wait_until(lambda: status_of(system, other) == "UP", 2, "a later container registered")
    assert status_of(system, port) == "UP"
    assert is_live(system, container.id)


def test_removed_container_is_deregistered_and_forgotten(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port)
    wait_until(lambda: status_of(system, port) == "UP", 2, "UP")
    source = keys.source(HOST, container.id)

    container.remove(force=True)

    wait_until(lambda: status_of(system, port) is None, 2, "gone")
    wait_until(lambda: not system.redis.exists(keys.state(source)), 2, "the state to be dropped")
    assert source not in system.redis.smembers(keys.host_sources(HOST))


@pytest.mark.timeout(180)
def test_docker_daemon_restart_reconnects_and_resyncs(system: SimpleNamespace) -> None:
    port = free_port()
    run_web(system.docker, "web1", port)
    wait_until(lambda: status_of(system, port) == "UP", 2, "UP")

    system.docker_engine.stop_daemon()
    system.docker_engine.start_daemon()

    # The daemon stopped the container as it went down: gone once the watcher is back and re-synced.
    wait_until(lambda: status_of(system, port) is None, 30, "the stopped container to leave Eureka")
    other = free_port()
    run_web(system.docker, "web2", other)
    wait_until(lambda: status_of(system, other) == "UP", 5, "a new container registered after the restart")


def test_a_crash_loop_is_not_running(system: SimpleNamespace) -> None:
    """A --restart=always container that keeps exiting: between runs Docker reports Running and Restarting
    (and `docker ps` lists it). It must not stay UP in Eureka, nor be vouched for, nor get ports invented."""
    port = free_port()
    container = system.docker.containers.run(
        "local/busybox", ["sh", "-c", "httpd -p 80 -h /; sleep 1; exit 3"], name="crashing", detach=True,
        ports={"80/tcp": port}, environment={"SERVICE_NAME": "web"}, restart_policy={"Name": "always"})
    wait_until(lambda: status_of(system, port) == "UP", 3, "UP while it runs")

    def between_runs() -> dict | None:
        container.reload()
        state = container.attrs["State"]
        return container.attrs if state["Running"] and state["Restarting"] else None

    # Docker's restart delay doubles from 100 ms: after a few runs it waits long enough to look at.
    seen = 0
    for _ in range(4):
        inspect = wait_until(between_runs, 30, "the container waiting to restart")
        assert not inspect["NetworkSettings"]["Ports"], "Docker shows no port bindings between runs"
        wait_until(lambda: status_of(system, port) is None, 2, "no instance while it waits to restart")
        assert not is_live(system, container.id)
        source = keys.source(HOST, container.id)
        assert system.redis.smembers(keys.source_instances(source)) == set()
        seen += 1
        wait_until(lambda: not between_runs(), 30, "the next run")
    assert seen == 4


def test_only_the_containers_own_stop_signal_or_sigkill_mean_being_stopped(system: SimpleNamespace) -> None:
    port, custom = free_port(), free_port()
    container = run_web(system.docker, "web1", port)
    quitting = run_web(system.docker, "web2", custom, stop_signal="SIGUSR1")
    wait_until(lambda: status_of(system, port) == "UP" and status_of(system, custom) == "UP", 3, "UP")

    container.kill(signal="QUIT")  # to a JVM: a thread dump, not a stop
    quitting.kill(signal="TERM")  # not this container's stop signal
    wait_until(lambda: system.watcher.log().count("event kill") >= 2, 3, "the watcher to see both kills")
    other = free_port()
    run_web(system.docker, "web3", other)
    wait_until(lambda: status_of(system, other) == "UP", 3, "a later container registered")
    assert status_of(system, port) == "UP" and status_of(system, custom) == "UP"
    assert is_live(system, container.id) and is_live(system, quitting.id)

    quitting.kill(signal="USR1")  # its stop signal: httpd as PID 1 ignores it, so it hangs being stopped
    wait_until(lambda: status_of(system, custom) == "DOWN", 3, "DOWN once sent its own stop signal")
    assert not is_live(system, quitting.id)


def test_being_stopped_survives_a_watcher_restart(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port)
    wait_until(lambda: status_of(system, port) == "UP", 3, "UP")
    container.kill(signal="TERM")  # ignored by httpd as PID 1: a stop that hangs
    wait_until(lambda: status_of(system, port) == "DOWN", 3, "DOWN while being stopped")

    system.watcher.stop()
    restarted = start_watcher(system.components, system.env, name="watcher-restarted")
    wait_until(lambda: "re-synced 1 containers" in restarted.log(), 5, "the restarted watcher's re-sync")
    assert status_of(system, port) == "DOWN"
    assert not is_live(system, container.id)
    container.kill(signal="KILL")
    wait_until(lambda: status_of(system, port) is None, 3, "gone once dead")
