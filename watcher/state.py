"""From a container's inspect document (or a `die` event) to the state the watcher publishes. Pure functions.

Status (SPEC section 6): a running container is UP, or STARTING while its HEALTHCHECK is starting;
it is DOWN, and no longer vouched for, when unhealthy, paused or being stopped. A container in a
restart loop (Docker: `Running` and `Restarting`, between two runs) is not running: it is handled as
exited, and its ports, gone while it waits, are not invented from the exposed ones. An exited
container's records go at once, except with `--deregister on-success` after a failed exit, when
they are set DOWN and left to lease expiry.
"""

from __future__ import annotations

import signal
from typing import Any, Mapping

from shared.models import ContainerState, Ec2Metadata, InstanceStatus, Phase, ServiceRecord

SIGNALED_EXIT_BIT = 128
DEFAULT_STOP_SIGNAL = int(signal.SIGTERM)

_HEALTH_STATUS = {"starting": InstanceStatus.STARTING, "unhealthy": InstanceStatus.DOWN}


def is_running(container: Mapping[str, Any]) -> bool:
    """Running, and not merely waiting between two runs of a restart loop."""
    state = container.get("State") or {}
    return bool(state.get("Running")) and not state.get("Restarting")


def stop_signal(container: Mapping[str, Any]) -> int:
    """The signal `docker stop` sends this container first (`Config.StopSignal`, SIGTERM by default)."""
    raw = ((container.get("Config") or {}).get("StopSignal") or "").strip().upper()
    if raw.isdigit():
        return int(raw)
    name = raw if raw.startswith("SIG") else f"SIG{raw}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        return DEFAULT_STOP_SIGNAL


def stops_container(raw_signal: str | None, container_stop_signal: int) -> bool:
    """Whether a `kill` event's `signal` attribute (a number) means the container is being stopped:
    its own stop signal, or SIGKILL. Anything else (`docker kill -s QUIT` to a JVM is a thread dump,
    HUP a reload) changes nothing."""
    return raw_signal is not None and raw_signal.isdigit() and int(raw_signal) in (container_stop_signal,
                                                                                   int(signal.SIGKILL))


def exited_successfully(exit_code: int) -> bool:
    """Exit code 0, or ended by a signal (registrator's `--deregister on-success`)."""
    return exit_code == 0 or bool(exit_code & SIGNALED_EXIT_BIT)


def exited_state(*, host: str, container_id: str, container_name: str, exit_code: int,
                 deregister: str) -> ContainerState:
    """The state of a container that is not running (exited, or between runs of a restart loop)."""
    keep = deregister == "on-success" and not exited_successfully(exit_code)
    return ContainerState(host=host, container_id=container_id, container_name=container_name, phase=Phase.EXITED,
                          status=InstanceStatus.DOWN, keep_registered=keep)


def container_state(container: Mapping[str, Any], services: tuple[ServiceRecord, ...], *, host: str,
                    stopping: bool, deregister: str, ec2: Ec2Metadata | None = None) -> ContainerState:
    """The state to publish for a container, given the service records derived from it, whether it
    was sent its stop signal, the `--deregister` policy and the host's EC2 metadata (when its services
    need it)."""
    state = container.get("State") or {}
    identity = {"host": host, "container_id": container["Id"], "container_name": container.get("Name") or ""}
    if not is_running(container):
        return exited_state(**identity, exit_code=int(state.get("ExitCode") or 0), deregister=deregister)
    if stopping or state.get("Paused"):
        status = InstanceStatus.DOWN
    else:
        health = ((state.get("Health") or {}).get("Status") or "").lower()
        status = _HEALTH_STATUS.get(health, InstanceStatus.UP)
    return ContainerState(**identity, phase=Phase.RUNNING, status=status, services=services, ec2=ec2)
