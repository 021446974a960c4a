"""`AlbDirectory` answered by AWS itself, through boto3 (ECS and Elastic Load Balancing v2).

Every call is bounded in time (`shared.aws`); lists that can be long are paged through. An error becomes
one `AwsLookupError` naming the operation and AWS's error code, with AWS's message only where it cannot
echo request details (authentication errors may quote the signed request).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as BotoConnectionError, HTTPClientError

from registrar.albs.directory import AwsLookupError, ErrorKind, InstanceTarget, ServiceTargetGroup
from registrar.albs.stats import STATS, AwsStats
from shared import aws
from shared.alb import AlbEndpoint

THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "SlowDown",
})
# Errors whose message may quote the signed request; only their code is kept.
AUTHENTICATION_CODES = frozenset({
    "SignatureDoesNotMatch", "IncompleteSignature", "InvalidSignatureException", "InvalidClientTokenId",
    "UnrecognizedClientException", "MissingAuthenticationToken", "AuthFailure", "ExpiredToken",
    "ExpiredTokenException",
})
MAX_DETAIL = 300
SERVICE_GROUP_PREFIX = "service:"
# Load balancers in this state route nothing.
FAILED_STATE = "failed"
ELB_PAGE_SIZE = 400
ECS_PAGE_SIZE = 100


class Boto3Directory:
    """Asks AWS. Clients are made at the first question, so a registrar without any ALB service never
    needs AWS configuration."""

    def __init__(self, *, client_factory: Callable[[str], Any] = aws.client, stats: AwsStats = STATS) -> None:
        self._client_factory = client_factory
        self._clients: dict[str, Any] = {}
        self._stats = stats

    # --- ECS ------------------------------------------------------------------------------------

    def task_service(self, cluster: str, task_arn: str) -> str | None:
        answer = self._call("ecs", "DescribeTasks", "describe_tasks", cluster=cluster, tasks=[task_arn])
        for task in (answer or {}).get("tasks", []):
            group = task.get("group", "")
            if group.startswith(SERVICE_GROUP_PREFIX):
                return group[len(SERVICE_GROUP_PREFIX):]
        return None

    def service_tasks(self, cluster: str, service: str) -> tuple[str, ...]:
        pages = self._pages("ecs", "ListTasks", "list_tasks", ECS_PAGE_SIZE, cluster=cluster, serviceName=service)
        return tuple(arn for page in pages for arn in page.get("taskArns", []))

    def service_target_groups(self, cluster: str, service: str) -> tuple[ServiceTargetGroup, ...] | None:
        answer = self._call("ecs", "DescribeServices", "describe_services", cluster=cluster, services=[service])
        found = [entry for entry in (answer or {}).get("services", []) if entry.get("status") != "INACTIVE"]
        if not found:
            return None
        return tuple(
            ServiceTargetGroup(target_group_arn=entry["targetGroupArn"], container_name=entry.get("containerName", ""),
                               container_port=entry.get("containerPort", 0))
            for entry in found[0].get("loadBalancers", [])
            if entry.get("targetGroupArn")  # a Classic Load Balancer has a name instead
        )

    # --- Elastic Load Balancing -----------------------------------------------------------------

    def target_group_endpoints(self, target_group_arn: str) -> tuple[AlbEndpoint, ...] | None:
        answer = self._call("elbv2", "DescribeTargetGroups", "describe_target_groups",
                            TargetGroupArns=[target_group_arn])
        if answer is None or not answer.get("TargetGroups"):
            return None
        endpoints = []
        for load_balancer_arn in answer["TargetGroups"][0].get("LoadBalancerArns", []):
            load_balancer = self._load_balancer(load_balancer_arn)
            if load_balancer is None:
                continue
            for port in sorted(self._forwarding_ports(load_balancer_arn, target_group_arn)):
                endpoints.append(AlbEndpoint(dns_name=load_balancer["DNSName"], port=port,
                                             target_group_arn=target_group_arn, load_balancer_arn=load_balancer_arn))
        return tuple(endpoints)

    def instance_targets(self) -> tuple[InstanceTarget, ...]:
        found = []
        for page in self._pages("elbv2", "DescribeTargetGroups", "describe_target_groups", ELB_PAGE_SIZE):
            for group in page.get("TargetGroups", []):
                if group.get("TargetType") != "instance" or not group.get("LoadBalancerArns"):
                    continue
                arn = group["TargetGroupArn"]
                health = self._call("elbv2", "DescribeTargetHealth", "describe_target_health", TargetGroupArn=arn)
                for description in (health or {}).get("TargetHealthDescriptions", []):
                    target = description["Target"]
                    found.append(InstanceTarget(instance_id=target["Id"], port=target.get("Port", group["Port"]),
                                                target_group_arn=arn))
        return tuple(found)

    def healthy_target_count(self, target_group_arn: str) -> int | None:
        answer = self._call("elbv2", "DescribeTargetHealth", "describe_target_health", TargetGroupArn=target_group_arn)
        if answer is None:
            return None
        return sum(1 for description in answer.get("TargetHealthDescriptions", [])
                   if description.get("TargetHealth", {}).get("State") == "healthy")

    def load_balancer_exists(self, load_balancer_arn: str) -> bool:
        return self._load_balancer(load_balancer_arn) is not None

    def _load_balancer(self, arn: str) -> dict[str, Any] | None:
        answer = self._call("elbv2", "DescribeLoadBalancers", "describe_load_balancers", LoadBalancerArns=[arn])
        found = (answer or {}).get("LoadBalancers", [])
        if not found or found[0].get("State", {}).get("Code") == FAILED_STATE:
            return None
        return found[0]

    def _forwarding_ports(self, load_balancer_arn: str, target_group_arn: str) -> set[int]:
        """The ports of the listeners whose default action forwards to the target group; when there are none,
        of those with a rule that does. One listener can serve several target groups (weighted forward)."""
        listeners = [listener
                     for page in self._pages("elbv2", "DescribeListeners", "describe_listeners", ELB_PAGE_SIZE,
                                             LoadBalancerArn=load_balancer_arn)
                     for listener in page.get("Listeners", [])]
        ports = {listener["Port"] for listener in listeners
                 if _forwards_to(listener.get("DefaultActions", []), target_group_arn)}
        if ports:
            return ports
        for listener in listeners:
            rules = self._pages("elbv2", "DescribeRules", "describe_rules", ELB_PAGE_SIZE,
                                ListenerArn=listener["ListenerArn"])
            if any(_forwards_to(rule.get("Actions", []), target_group_arn)
                   for page in rules for rule in page.get("Rules", [])):
                ports.add(listener["Port"])
        return ports

    # --- calls ----------------------------------------------------------------------------------

    def _client(self, service: str, operation: str) -> Any:
        if service not in self._clients:
            try:
                client = self._client_factory(service)
            except BotoCoreError as err:  # no region configured, above all
                raise AwsLookupError(ErrorKind.REJECTED, operation, type(err).__name__, _short(str(err))) from None
            client.meta.events.register("before-send", self._count)
            self._clients[service] = client
        return self._clients[service]

    def _count(self, event_name: str, **_: Any) -> None:
        self._stats.call(event_name.rsplit(".", 1)[-1])

    def _call(self, service: str, operation: str, method: str, **params: Any) -> dict[str, Any] | None:
        """One request; None when AWS says the thing asked about does not exist."""
        client = self._client(service, operation)
        try:
            return getattr(client, method)(**params)
        except (ClientError, BotoCoreError) as err:
            return _absent_or_raise(operation, err)

    def _pages(self, service: str, operation: str, method: str, page_size: int,
               **params: Any) -> Iterator[dict[str, Any]]:
        """Every page of a listing; none when AWS says the thing listed from does not exist."""
        paginator = self._client(service, operation).get_paginator(method)
        try:
            yield from paginator.paginate(**params, PaginationConfig={"PageSize": page_size})
        except (ClientError, BotoCoreError) as err:
            _absent_or_raise(operation, err)


# Error codes by which AWS says that what was asked about does not exist (or cannot, by its name).
NOT_FOUND_CODES = frozenset({
    "ClusterNotFoundException", "ServiceNotFoundException", "ServiceNotActiveException", "InvalidParameterException",
    "TargetGroupNotFound", "LoadBalancerNotFound", "ListenerNotFound", "ValidationError",
})


def _absent_or_raise(operation: str, err: ClientError | BotoCoreError) -> None:
    if isinstance(err, BotoCoreError):
        kind = ErrorKind.TRANSIENT if isinstance(err, (BotoConnectionError, HTTPClientError)) else ErrorKind.REJECTED
        raise AwsLookupError(kind, operation, type(err).__name__, _short(str(err))) from None
    error = err.response.get("Error", {})
    code = error.get("Code") or "Unknown"
    if code in NOT_FOUND_CODES:
        return None
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in THROTTLING_CODES or status == 429:
        kind = ErrorKind.THROTTLED
    elif status >= 500:
        kind = ErrorKind.TRANSIENT
    else:
        kind = ErrorKind.REJECTED
    detail = "" if code in AUTHENTICATION_CODES else _short(error.get("Message", ""))
    raise AwsLookupError(kind, operation, code, detail) from None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "..."


def _forwards_to(actions: list[dict[str, Any]], target_group_arn: str) -> bool:
    for action in actions:
        if action.get("Type") != "forward":
            continue
        weighted = action.get("ForwardConfig", {}).get("TargetGroups", [])
        if action.get("TargetGroupArn") == target_group_arn or any(
                group.get("TargetGroupArn") == target_group_arn for group in weighted):
            return True
    return False
