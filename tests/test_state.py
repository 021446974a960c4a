"""Container state rules: status from Docker state and health, what an exit does to the records."""

from __future__ import annotations

from typing import Any

import pytest

from shared.models import InstanceStatus, Phase, ServiceRecord
from watcher.state import container_state, is_terminating_signal

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


@pytest.mark.parametrize(("signal", "terminating"), [
    ("15", True), ("9", True), ("2", True), ("3", True), ("1", False), ("10", False), (None, False), ("TERM", False),
])
def test_terminating_signals(signal: str | None, terminating: bool) -> None:
    assert is_terminating_signal(signal) is terminating
