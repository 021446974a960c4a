"""Container state rules: status from Docker state and health, what an exit does to the records."""

from __future__ import annotations

from typing import Any

import pytest

from shared.models import InstanceStatus, Phase, ServiceRecord
from watcher.state import container_state, exited_state, stop_signal, stops_container

RECORD = ServiceRecord(service_id="h:web:80", name="web", ip="10.0.0.5", port=18080, exposed_port=80,
                       protocol="tcp", host_ip="10.0.0.5", container_id="c" * 64, container_name="/web")


def inspect(**state: Any) -> dict[str, Any]:
    return {"Id": "c" * 64, "Name": "/web", "State": {"Running": True, "Paused": False, "ExitCode": 0, **state}}


@pytest.mark.parametrize(("state", "stopping", "status", "vouched"), [
    ({}, False, InstanceStatus.UP, True),
    ({"Health": {"Status": "healthy"}}, False, InstanceStatus.UP, True),
    ({"Health": {"Status": "starting"}}, False, InstanceStatus.STARTING, True),
    ({"Health": {"Status": "unhealthy"}}, False, InstanceStatus.DOWN, False),
    ({"Paused": True}, False, InstanceStatus.DOWN, False),
    ({}, True, InstanceStatus.DOWN, False),
])
def test_running_container_status(state: dict[str, Any], stopping: bool, status: InstanceStatus,
                                  vouched: bool) -> None:
    result = container_state(inspect(**state), (RECORD,), host="h", stopping=stopping, deregister="always")
    assert result.phase is Phase.RUNNING
    assert result.status is status
    assert result.services == (RECORD,)
    assert result.vouched is vouched


def test_a_container_without_services_is_not_vouched_for() -> None:
    assert not container_state(inspect(), (), host="h", stopping=False, deregister="always").vouched


@pytest.mark.parametrize(("exit_code", "policy", "keep"), [
    (0, "always", False),
    (1, "always", False),
    (0, "on-success", False),
    (137, "on-success", False),  # killed by SIGKILL
    (143, "on-success", False),  # killed by SIGTERM
    (1, "on-success", True),
    (2, "on-success", True),
])
def test_exited_container(exit_code: int, policy: str, keep: bool) -> None:
    result = container_state(inspect(Running=False, ExitCode=exit_code), (RECORD,), host="h", stopping=False,
                             deregister=policy)
    assert result.phase is Phase.EXITED
    assert result.services == ()
    assert result.keep_registered is keep
    assert not result.vouched


def test_a_container_between_runs_of_a_restart_loop_is_exited() -> None:
    # What Docker reports while a --restart=always container waits to run again: its ports are gone.
    result = container_state(inspect(Restarting=True, ExitCode=1), (RECORD,), host="h", stopping=False,
                             deregister="always")
    assert result.phase is Phase.EXITED
    assert result.services == ()
    assert not result.vouched


def test_a_die_event_gives_the_same_state_as_an_inspect_of_the_dead_container() -> None:
    for code, policy in ((0, "always"), (1, "on-success"), (137, "on-success")):
        assert exited_state(host="h", container_id="c" * 64, container_name="/web", exit_code=code,
                            deregister=policy) == container_state(inspect(Running=False, ExitCode=code), (), host="h",
                                                                  stopping=False, deregister=policy)


@pytest.mark.parametrize(("config", "expected"), [
    ({}, 15), ({"StopSignal": ""}, 15), ({"StopSignal": "SIGQUIT"}, 3), ({"StopSignal": "INT"}, 2),
    ({"StopSignal": "9"}, 9), ({"StopSignal": "sigusr1"}, 10), ({"StopSignal": "NOT-A-SIGNAL"}, 15),
])
def test_stop_signal(config: dict[str, str], expected: int) -> None:
    assert stop_signal({"Config": config}) == expected


@pytest.mark.parametrize(("signal", "container_stop_signal", "stops"), [
    ("15", 15, True), ("9", 15, True), ("9", 3, True), ("3", 3, True),
    ("3", 15, False),  # docker kill -s QUIT to a JVM: a thread dump
    ("2", 15, False), ("1", 15, False), ("15", 3, False), (None, 15, False), ("TERM", 15, False),
])
def test_only_the_stop_signal_or_sigkill_stops_a_container(signal: str | None, container_stop_signal: int,
                                                            stops: bool) -> None:
    assert stops_container(signal, container_stop_signal) is stops
