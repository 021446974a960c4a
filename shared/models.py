"""Records that cross Redis between components, with an explicit, versioned wire format.

The watcher writes one `ContainerState` per container; the registrar reads it and turns each
`ServiceRecord` into a Eureka instance. Every record carries `v`; a reader that meets a version it
does not know refuses it instead of guessing.

The records are frozen dataclasses. `state_json` writes one with the standard library, exactly as
pydantic writes it (tests/test_models.py); `parse_state` reads one back through pydantic, which
refuses unknown fields, another version and wrong types. The watcher only writes, so pydantic never
enters its memory (it was a fifth of the watcher's 50 MB); readers import it on their first read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any, Literal

WIRE_VERSION = 1
# How pydantic reads each record: a field it does not know is an error, not ignored.
_READ_CONFIG = {"extra": "forbid"}


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


@dataclass(frozen=True, kw_only=True)
class ServiceRecord:
    """One service: a container port, as registrator derives it (SPEC section 3)."""

    __pydantic_config__ = _READ_CONFIG

    service_id: str
    name: str
    ip: str
    port: int
    exposed_port: int
    protocol: Literal["tcp", "udp"]
    host_ip: str
    tags: tuple[str, ...] = ()
    attrs: dict[str, str] = field(default_factory=dict)
    container_id: str
    container_name: str


@dataclass(frozen=True, kw_only=True)
class Ec2Metadata:
    """What the EC2 instance metadata service says about the host a container runs on."""

    __pydantic_config__ = _READ_CONFIG

    instance_id: str
    local_hostname: str
    local_ipv4: str
    public_hostname: str = ""
    public_ipv4: str = ""
    availability_zone: str


@dataclass(frozen=True, kw_only=True)
class ContainerState:
    """What the watcher wants Eureka to hold for one container.

    `status` is what the container's own state says (running and healthy: UP, health check still
    starting: STARTING, unhealthy / paused / being stopped: DOWN). With phase EXITED the services list
    is empty and `keep_registered` tells whether the old records are deleted at once (the default) or
    left to lease expiry (`--deregister on-success` and a failed exit). `ec2` is the host's EC2
    metadata, present when a service asks for it (`eureka_datacenterinfo_auto_populate`).
    """

    __pydantic_config__ = _READ_CONFIG

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


def state_json(state: ContainerState) -> str:
    """The state as stored: compact JSON, fields in declaration order, text as UTF-8 (not escaped)."""
    return json.dumps(asdict(state), ensure_ascii=False, separators=(",", ":"))


def parse_state(doc: str | bytes) -> ContainerState:
    """A stored state, validated. Raises pydantic's ValidationError (a ValueError) naming what is wrong."""
    return state_reader().validate_json(doc)


@cache
def state_reader() -> Any:
    """pydantic's validator of states, built on first use (a quarter of a second): a reader builds it as it
    starts, so that its first job does not wait for it."""
    from pydantic import TypeAdapter  # here, not at the top: the watcher must not load it (see above)

    return TypeAdapter(ContainerState)
