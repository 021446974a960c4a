"""From a container's inspect document to the state the watcher publishes for it. Pure functions.

Status (SPEC section 6): a running container is UP, or STARTING while its HEALTHCHECK is starting;
it is DOWN, and no longer vouched for, when unhealthy, paused or being stopped. An exited container's
records go at once, except with `--deregister on-success` after a failed exit, when lease expiry
removes them.
"""

from __future__ import annotations

import signal
from typing import Any, Mapping

from shared.models import ContainerState, Ec2Metadata, InstanceStatus, Phase, ServiceRecord

# `docker kill` with one of these means the container is on its way out; other signals (HUP, USR1 ...)
# are commonly used to ask for a reload and change nothing.
TERMINATING_SIGNALS = frozenset({signal.SIGINT, signal.SIGQUIT, signal.SIGKILL, signal.SIGTERM})
SIGNALED_EXIT_BIT = 128

_HEALTH_STATUS = {"starting": InstanceStatus.STARTING, "unhealthy": InstanceStatus.DOWN}


def is_terminating_signal(raw: str | None) -> bool:
    """Whether a `kill` event's `signal` attribute (a number) stops the container."""
    return raw is not None and raw.isdigit() and int(raw) in TERMINATING_SIGNALS


def exited_successfully(container: Mapping[str, Any]) -> bool:
    """Exit code 0, or ended by a signal (registrator's `--deregister on-success`)."""
    code = (container.get("State") or {}).get("ExitCode", 0)
    return code == 0 or bool(code & SIGNALED_EXIT_BIT)


def container_state(container: Mapping[str, Any], services: tuple[ServiceRecord, ...], *, host: str,
                    stopping: bool, deregister: str, ec2: Ec2Metadata | None = None) -> ContainerState:
    """The state to publish for a container, given the service records derived from it, whether a
    terminating signal was sent to it, the `--deregister` policy and the host's EC2 metadata (when
    its services need it)."""
    state = container.get("State") or {}
    identity = {"host": host, "container_id": container["Id"], "container_name": container.get("Name") or ""}
    if not state.get("Running"):
        keep = deregister == "on-success" and not exited_successfully(container)
        return ContainerState(**identity, phase=Phase.EXITED, status=InstanceStatus.DOWN, keep_registered=keep)
    if stopping or state.get("Paused"):
        status = InstanceStatus.DOWN
    else:
        health = ((state.get("Health") or {}).get("Status") or "").lower()
        status = _HEALTH_STATUS.get(health, InstanceStatus.UP)
    return ContainerState(**identity, phase=Phase.RUNNING, status=status, services=services, ec2=ec2)
