"""Records that cross Redis between components, with an explicit, versioned wire format.

The watcher writes one `ContainerState` per container; the registrar reads it and turns each
`ServiceRecord` into a Eureka instance. Every record carries `v`; a reader that meets a version it
does not know refuses it (pydantic raises) instead of guessing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

WIRE_VERSION = 1


class InstanceStatus(StrEnum):
    """Eureka instance statuses (com.netflix.appinfo.InstanceInfo.InstanceStatus)."""

    UP = "UP"
    DOWN = "DOWN"
    STARTING = "STARTING"
    OUT_OF_SERVICE = "OUT_OF_SERVICE"
    UNKNOWN = "UNKNOWN"


class Phase(StrEnum):
    RUNNING = "running"
    EXITED = "exited"


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceRecord(_Wire):
    """One service: a container port, as registrator derives it (SPEC section 3)."""

    service_id: str
    name: str
    ip: str
    port: int
    exposed_port: int
    protocol: Literal["tcp", "udp"]
    host_ip: str
    tags: tuple[str, ...] = ()
    attrs: dict[str, str] = {}
    container_id: str
    container_name: str


class Ec2Metadata(_Wire):
    """What the EC2 instance metadata service says about the host a container runs on."""

    instance_id: str
    local_hostname: str
    local_ipv4: str
    public_hostname: str = ""
    public_ipv4: str = ""
    availability_zone: str


class ContainerState(_Wire):
    """What the watcher wants Eureka to hold for one container.

    `status` is what the container's own state says (running and healthy: UP, health check still
    starting: STARTING, unhealthy / paused / being stopped: DOWN). With phase EXITED the services list
    is empty and `keep_registered` tells whether the old records are deleted at once (the default) or
    left to lease expiry (`--deregister on-success` and a failed exit). `ec2` is the host's EC2
    metadata, present when a service asks for it (`eureka_datacenterinfo_auto_populate`).
    """

    v: Literal[1] = WIRE_VERSION
    host: str
    container_id: str
    container_name: str
    phase: Phase
    status: InstanceStatus
    services: tuple[ServiceRecord, ...] = ()
    keep_registered: bool = False
    ec2: Ec2Metadata | None = None

    @property
    def vouched(self) -> bool:
        """True when the watcher vouches for the container's services (SPEC section 6)."""
        return self.phase is Phase.RUNNING and self.status is not InstanceStatus.DOWN and bool(self.services)
