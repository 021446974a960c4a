"""The questions the registrar asks AWS about load balancers: one narrow boundary, AWS behind it.

`AlbDirectory` is what `registrar.albs.resolver` needs; `registrar.albs.boto` answers it with boto3 and
`registrar.albs.cache` answers it from a Redis cache shared by the fleet, asking the next directory on a
miss. Each question is one cacheable unit, shaped so that many containers share one answer (a service's
target groups, a target group's endpoints) rather than each container asking AWS for itself.

Answers are frozen records. "Not there" is an answer (None, an empty tuple or False), never an error;
`AwsLookupError` means AWS could not be asked or did not answer, and is retried later.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from shared.alb import AlbEndpoint


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceTargetGroup(_Record):
    """One entry of an ECS service's `loadBalancers`: which container port a target group sends to."""

    target_group_arn: str
    container_name: str
    container_port: int


class InstanceTarget(_Record):
    """An EC2 instance and port registered in a target group that a load balancer uses."""

    instance_id: str
    port: int
    target_group_arn: str


class ErrorKind(StrEnum):
    THROTTLED = "throttled"  # AWS asked us to slow down
    TRANSIENT = "transient"  # 5xx, timeout, connection failure
    REJECTED = "rejected"  # AWS refused the request: permissions, credentials, region, invalid input


class AwsLookupError(Exception):
    """AWS could not answer a question now. The message names the operation and AWS's error code and
    never holds credentials. `retry_after` (seconds) is set when a caller should not ask again sooner."""

    def __init__(self, kind: ErrorKind, operation: str, code: str, detail: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(f"{operation}: {code}" + (f": {detail}" if detail else ""))
        self.kind = kind
        self.operation = operation
        self.code = code
        self.detail = detail
        self.retry_after = retry_after

    @property
    def cause(self) -> str:
        """What went wrong, without the particulars of one request: the unit of logging once."""
        return f"{self.operation}: {self.code}"


class NotCached(Exception):
    """The answer is not in the fleet's cache (asked of a cache-only directory)."""


class AlbDirectory(Protocol):
    def task_service(self, cluster: str, task_arn: str) -> str | None:
        """The name of the ECS service that started the task (its group `service:<name>`); None when the
        task is unknown or was not started by a service."""

    def service_tasks(self, cluster: str, service: str) -> tuple[str, ...]:
        """The ARNs of the service's tasks that are running or about to."""

    def service_target_groups(self, cluster: str, service: str) -> tuple[ServiceTargetGroup, ...] | None:
        """The ECS service's load balancer entries; None when the service is unknown or inactive."""

    def target_group_endpoints(self, target_group_arn: str) -> tuple[AlbEndpoint, ...] | None:
        """Every load balancer listener that forwards to the target group (by its default actions, weighted
        forwards included, or by its rules), as endpoints; None when the target group is unknown."""

    def instance_targets(self) -> tuple[InstanceTarget, ...]:
        """Every instance target of every target group a load balancer uses (the lookup without ECS labels)."""

    def healthy_target_count(self, target_group_arn: str) -> int | None:
        """How many of the target group's targets are healthy; None when the target group is unknown."""

    def load_balancer_exists(self, load_balancer_arn: str) -> bool:
        """Whether the load balancer still exists (and is not being deleted)."""
