"""From a service's ALB intent to the ALB endpoint its traffic goes through, and that ALB's health.

What the registrar calls. It never raises for AWS's sake: a question AWS cannot answer now, a thing not
there yet (a task ECS has not wired to its target group, a listener not created yet) or a lookup that
takes longer than its budget gives `Unknown`, with the reason and when to ask again, so the caller leaves
that one service pending and goes on with the others. Every answer on the way is cached
(`registrar.albs.cache`), so asking again continues where the last attempt stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from registrar.albs.directory import AlbDirectory, AwsLookupError, ServiceTargetGroup
from shared import defaults
from shared.alb import AlbEndpoint, AlbIntent, AlbLookup, ExplicitAlb

T = TypeVar("T")

_Ask = Callable[..., Any]


@dataclass(frozen=True)
class Unknown:
    """Not known now: `reason` says why; worth asking again `retry_after` seconds from now."""

    reason: str
    retry_after: float


class _OutOfTime(Exception):
    pass


class _Budget:
    """Lets questions through until the time is spent."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def ask(self, question: Callable[..., T], *args: str) -> T:
        if time.monotonic() > self.deadline:
            raise _OutOfTime
        return question(*args)


class AlbResolver:
    def __init__(self, directory: AlbDirectory, *,
                 budget_seconds: float = defaults.ALB_LOOKUP_BUDGET_SECONDS) -> None:
        self.directory = directory
        self.budget_seconds = budget_seconds

    def resolve(self, intent: AlbIntent, host_instance_id: str | None = None) -> AlbEndpoint | Unknown:
        """The ALB endpoint in front of the service. `host_instance_id` is the EC2 instance id of the
        container's host, needed only without ECS labels (`intent.needs_host_instance_id`)."""
        ask = _Budget(self.budget_seconds).ask
        target = intent.target
        try:
            if isinstance(target, ExplicitAlb):
                return self._explicit(target, ask)
            if target.via_ecs:
                return self._through_ecs(target, ask)
            return self._through_instance(target, host_instance_id, ask)
        except AwsLookupError as err:
            return self._unknown(err)
        except _OutOfTime:
            return Unknown(f"the ALB lookup took over its {self.budget_seconds} s; the answers so far are kept and "
                           "the next attempt continues from them", 0.0)

    def healthy_targets(self, endpoint: AlbEndpoint) -> int | Unknown:
        """How many targets of the endpoint's target group are healthy (0 when the group is gone)."""
        try:
            return self.directory.healthy_target_count(endpoint.target_group_arn) or 0
        except AwsLookupError as err:
            return self._unknown(err)

    def exists(self, endpoint: AlbEndpoint) -> bool | Unknown:
        """Whether the endpoint's load balancer still exists."""
        try:
            return self.directory.load_balancer_exists(endpoint.load_balancer_arn)
        except AwsLookupError as err:
            return self._unknown(err)

    def _through_ecs(self, target: AlbLookup, ask: _Ask) -> AlbEndpoint | Unknown:
        service = target.ecs_service or ask(self.directory.task_service, target.cluster, target.task_arn)
        if not service:
            return self._not_yet(f"ECS task {target.task_arn} in cluster {target.cluster} is unknown or was not "
                                 "started by an ECS service (set ecs_service, or eureka_elbv2_* to name the ALB)")
        entries = ask(self.directory.service_target_groups, target.cluster, service)
        if entries is None:
            return self._not_yet(f"ECS service {service} is not active in cluster {target.cluster}")
        entry = _entry_for(entries, target)
        if entry is None:
            container = f"container {target.ecs_container_name} " if target.ecs_container_name else ""
            return self._not_yet(f"ECS service {service} has no load balancer for {container}port "
                                 f"{target.container_port}")
        return self._endpoint(entry.target_group_arn, ask)

    def _through_instance(self, target: AlbLookup, host_instance_id: str | None,
                          ask: _Ask) -> AlbEndpoint | Unknown:
        if not host_instance_id:
            return self._not_yet("without the ECS labels, finding the ALB needs the EC2 instance id of the host")
        target_groups = sorted({found.target_group_arn for found in ask(self.directory.instance_targets)
                                if found.instance_id == host_instance_id and found.port == target.host_port})
        if not target_groups:
            return self._not_yet(f"no target group has instance {host_instance_id} port {target.host_port} as a "
                                 "target")
        return self._endpoint(target_groups[0], ask)

    def _endpoint(self, target_group_arn: str, ask: _Ask) -> AlbEndpoint | Unknown:
        live = self._live_endpoints(target_group_arn, ask)
        return live if isinstance(live, Unknown) else live[0]

    def _explicit(self, target: ExplicitAlb, ask: _Ask) -> AlbEndpoint | Unknown:
        """The named endpoint, with the load balancer behind it found through the target group (to follow
        its health and notice its deletion)."""
        live = self._live_endpoints(target.target_group_arn, ask, " (eureka_elbv2_targetgroup)")
        if isinstance(live, Unknown):
            return live
        named = {found.load_balancer_arn for found in live if found.dns_name == target.dns_name}
        # A name of one's own (a CNAME) for the load balancer is fine while only one sends to the group.
        load_balancers = named or {found.load_balancer_arn for found in live}
        if len(load_balancers) > 1:
            return self._not_yet(f"target group {target.target_group_arn} (eureka_elbv2_targetgroup) is behind "
                                 f"several load balancers, none named {target.dns_name} (eureka_elbv2_hostname)")
        return AlbEndpoint(dns_name=target.dns_name, port=target.port, target_group_arn=target.target_group_arn,
                           load_balancer_arn=load_balancers.pop())

    def _live_endpoints(self, target_group_arn: str, ask: _Ask,
                        named_by: str = "") -> tuple[AlbEndpoint, ...] | Unknown:
        """The endpoints forwarding to the target group whose load balancer still exists: the cached answer
        about the target group can be older than a load balancer's deletion."""
        endpoints = ask(self.directory.target_group_endpoints, target_group_arn)
        if endpoints is None:
            return self._not_yet(f"target group {target_group_arn}{named_by} does not exist")
        live = tuple(found for found in endpoints if ask(self.directory.load_balancer_exists, found.load_balancer_arn))
        if not live:
            return self._not_yet(f"no load balancer listener forwards to target group {target_group_arn}{named_by}")
        return live

    def _not_yet(self, reason: str) -> Unknown:
        return Unknown(reason, defaults.AWS_NOT_THERE_SECONDS)

    def _unknown(self, err: AwsLookupError) -> Unknown:
        retry_after = defaults.AWS_BACKOFF_FIRST_SECONDS if err.retry_after is None else err.retry_after
        return Unknown(f"AWS did not answer ({err.kind.value}): {err}", retry_after)


def _entry_for(entries: tuple[ServiceTargetGroup, ...], target: AlbLookup) -> ServiceTargetGroup | None:
    """The service's load balancer entry for this container and port."""
    for entry in entries:
        if entry.container_port == target.container_port and (
                not target.ecs_container_name or entry.container_name == target.ecs_container_name):
            return entry
    return None
