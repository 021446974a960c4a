"""Which services sit behind an AWS Application Load Balancer, and the Eureka record of that ALB (SPEC section 5).

Pure functions, the ALB counterpart of `shared.registration`. A service asks for ALB registration with
`eureka_lookup_elbv2_endpoint=true` (find the ALB in AWS) or with all three of `eureka_elbv2_hostname`,
`eureka_elbv2_port` and `eureka_elbv2_targetgroup` (name it; wins over the lookup), and only with datacenter
Amazon. A bad or incomplete ALB setting is reported and the service is registered as a plain container:
never half an ALB.

The ALB record is fleet-wide: every container behind the ALB, on any host, wants the same document, so it
holds nothing of one container or host. Its `ipAddr` and `vipAddress` are the ALB's DNS name: the Go
registrator sent them empty, and a host IP cannot be right for a record many hosts share.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from shared import defaults
from shared.config import parse_bool
from shared.models import InstanceStatus, ServiceRecord
from shared.registration import AMAZON, DATACENTER_CLASSES, MY_OWN, RecordAttributes, Registration

LOOKUP_ATTR = "eureka_lookup_elbv2_endpoint"
HOSTNAME_ATTR = "eureka_elbv2_hostname"
PORT_ATTR = "eureka_elbv2_port"
TARGET_GROUP_ATTR = "eureka_elbv2_targetgroup"
EXPLICIT_ATTRS = (HOSTNAME_ATTR, PORT_ATTR, TARGET_GROUP_ATTR)
ONLY_REGISTRATION_ATTR = "eureka_elbv2_only_registration"
ECS_SERVICE_ATTR = "ecs_service"
# Labels the ECS agent puts on every container it starts; the watcher carries them into the attributes.
ECS_CLUSTER_LABEL = "com.amazonaws.ecs.cluster"
ECS_TASK_ARN_LABEL = "com.amazonaws.ecs.task-arn"
ECS_CONTAINER_NAME_LABEL = "com.amazonaws.ecs.container-name"

DNS_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
TARGET_GROUP_ARN = re.compile(r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[A-Za-z0-9-]{1,32}"
                              r"/[0-9a-f]+$")
# An ECS service name (letters, digits, '-', '_') or its ARN.
ECS_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_:/.-]{0,1599}$")
PLAIN = "registered as a plain container"


@dataclass(frozen=True, kw_only=True)
class AlbEndpoint:
    """Where an ALB takes a service's traffic: its DNS name, the listener port forwarding to the service's
    target group, and the AWS resources to ask about health and existence. Crosses Redis (the AWS answer
    cache, the ALB records): written with `endpoint_json`, read with `parse_endpoint`."""

    __pydantic_config__ = {"extra": "forbid"}

    dns_name: str
    port: int
    target_group_arn: str
    load_balancer_arn: str

    def __post_init__(self) -> None:
        # DNS is case-insensitive; one spelling gives one Eureka instance.
        object.__setattr__(self, "dns_name", self.dns_name.lower())

    @property
    def instance_id(self) -> str:
        return f"{self.dns_name}_{self.port}"


def endpoint_json(endpoint: AlbEndpoint) -> str:
    return json.dumps(asdict(endpoint), separators=(",", ":"))


def parse_endpoint(doc: str | bytes) -> AlbEndpoint:
    """A stored endpoint, validated (pydantic's ValidationError, a ValueError, names what is wrong)."""
    from pydantic import TypeAdapter  # here, not at the top: the watcher imports this module (see models)

    return TypeAdapter(AlbEndpoint).validate_json(doc)


@dataclass(frozen=True)
class ExplicitAlb:
    """The ALB as the service names it (`eureka_elbv2_*`); AWS is asked only for its health."""

    dns_name: str
    port: int
    target_group_arn: str


@dataclass(frozen=True)
class AlbLookup:
    """What to look the ALB up by: the ECS task (and service) when the ECS labels are there, else the
    target group holding this host's EC2 instance and `host_port` as a target."""

    container_port: int
    host_port: int
    cluster: str = ""
    task_arn: str = ""
    ecs_service: str = ""
    ecs_container_name: str = ""

    @property
    def via_ecs(self) -> bool:
        return bool(self.cluster and (self.ecs_service or self.task_arn))


@dataclass(frozen=True)
class AlbIntent:
    target: ExplicitAlb | AlbLookup
    # True (the default): the containers behind the ALB are not registered themselves.
    only_registration: bool

    @property
    def needs_host_instance_id(self) -> bool:
        """Whether finding the ALB takes the host's EC2 instance id (the lookup without ECS labels)."""
        return isinstance(self.target, AlbLookup) and not self.target.via_ecs


@dataclass(frozen=True)
class AlbDecision:
    intent: AlbIntent | None  # None: a plain container
    problems: tuple[str, ...]


def alb_intent(record: ServiceRecord) -> AlbDecision:
    """Whether `record`'s service is to be registered through an ALB, and how to find that ALB.

    Every bad setting is one problem line naming the container and the attribute. A problem line that
    `registration()` also reports (an invalid datacenter name) is worded the same, so the union of both
    sets holds it once."""
    attrs = RecordAttributes(record)
    values = attrs.values
    lookup = _flag(attrs, LOOKUP_ATTR, default=False)
    given = [attr for attr in EXPLICIT_ATTRS if values.get(attr, "")]
    if not given and not lookup:
        return AlbDecision(None, tuple(attrs.problems))

    explicit = _explicit(attrs, given) if given else None
    only_registration = _flag(attrs, ONLY_REGISTRATION_ATTR, default=True)
    if attrs.datacenter() == MY_OWN:
        attrs.complain(given[0] if given else LOOKUP_ATTR,
                       f"an ALB needs datacenter Amazon, eureka_datacenterinfo_name is {MY_OWN}; {PLAIN}")
        return AlbDecision(None, tuple(attrs.problems))
    if lookup is None or only_registration is None or (given and explicit is None):
        return AlbDecision(None, tuple(attrs.problems))
    if explicit is not None:
        return AlbDecision(AlbIntent(explicit, only_registration), tuple(attrs.problems))

    ecs_service = values.get(ECS_SERVICE_ATTR, "")
    if ecs_service and not ECS_SERVICE.match(ecs_service):
        attrs.complain(ECS_SERVICE_ATTR, f"{ecs_service!r} is not an ECS service name or ARN; {PLAIN}")
        return AlbDecision(None, tuple(attrs.problems))
    cluster = values.get(ECS_CLUSTER_LABEL, "")
    if ecs_service and not cluster:
        attrs.complain(ECS_SERVICE_ATTR, f"needs the ECS label {ECS_CLUSTER_LABEL}; looking the ALB up by this "
                                         "host's EC2 instance id and the host port instead")
    target = AlbLookup(
        container_port=record.exposed_port,
        host_port=record.port,
        cluster=cluster,
        task_arn=values.get(ECS_TASK_ARN_LABEL, ""),
        ecs_service=ecs_service if cluster else "",
        ecs_container_name=values.get(ECS_CONTAINER_NAME_LABEL, ""),
    )
    return AlbDecision(AlbIntent(target, only_registration), tuple(attrs.problems))


def _flag(attrs: RecordAttributes, attr: str, *, default: bool) -> bool | None:
    """The boolean attribute, `default` when absent, None (reported) when not a boolean."""
    raw = attrs.values.get(attr, "")
    if raw == "":
        return default
    try:
        return parse_bool(raw)
    except ValueError:
        attrs.complain(attr, f"{raw!r} is not a boolean; {PLAIN}")
        return None


def _explicit(attrs: RecordAttributes, given: list[str]) -> ExplicitAlb | None:
    values = attrs.values
    missing = [attr for attr in EXPLICIT_ATTRS if attr not in given]
    if missing:
        attrs.complain(missing[0], f"missing: {', '.join(EXPLICIT_ATTRS)} go together (set: "
                                   f"{', '.join(given)}); {PLAIN}")
        return None
    hostname, port, target_group = (values[attr] for attr in EXPLICIT_ATTRS)
    valid = True
    if not DNS_NAME.match(hostname):
        attrs.complain(HOSTNAME_ATTR, f"{hostname!r} is not a DNS name; {PLAIN}")
        valid = False
    if not (port.isdigit() and 0 < int(port) <= 65535):
        attrs.complain(PORT_ATTR, f"{port!r} is not a port number from 1 to 65535; {PLAIN}")
        valid = False
    if not TARGET_GROUP_ARN.match(target_group):
        attrs.complain(TARGET_GROUP_ATTR, f"{target_group!r} is not a target group ARN "
                                          f"(arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>); "
                                          f"{PLAIN}")
        valid = False
    return ExplicitAlb(hostname.lower(), int(port), target_group) if valid else None


def alb_status(healthy_targets: int, previous: InstanceStatus | None) -> InstanceStatus:
    """STARTING until the target group has had a healthy target, then UP while it has one, DOWN once it
    has none any more."""
    if healthy_targets > 0:
        return InstanceStatus.UP
    if previous in (InstanceStatus.UP, InstanceStatus.DOWN):
        return InstanceStatus.DOWN
    return InstanceStatus.STARTING


def with_alb_health(document: dict[str, Any], health: InstanceStatus) -> dict[str, Any]:
    """The ALB's document (`alb_registration` for UP) with the status its target health calls for: its own
    (UP, or its `eureka_status`) while a target is healthy, else STARTING or DOWN."""
    return document if health is InstanceStatus.UP else {**document, "status": health.value}


def needs_host_instance_id(record: ServiceRecord) -> bool:
    """Whether finding the ALB in front of `record`'s service takes its host's EC2 instance id (so the
    watcher must fetch the host's EC2 metadata)."""
    intent = alb_intent(record).intent
    return intent is not None and intent.needs_host_instance_id


def alb_metadata(endpoint: AlbEndpoint) -> dict[str, str]:
    return {"has-elbv2": "true", "elbv2-endpoint": endpoint.instance_id}


def alb_registration(record: ServiceRecord, endpoint: AlbEndpoint, status: InstanceStatus, *,
                     min_renewal: int = defaults.MIN_RENEWAL_INTERVAL_SECONDS) -> Registration:
    """The document to POST for the ALB in front of `record`'s service, with the status its target health
    calls for (see `alb_status`).

    Of the service's attributes it takes the `eureka_metadata_*` metadata, the lease (35 s, renewed every
    10 s, unless overridden; checked as `registration()` checks it) and `eureka_status`; the address and
    datacenter overrides describe one container and do not apply. No container or host metadata: the same
    document comes from every container behind it."""
    attrs = RecordAttributes(record)
    dns_name = endpoint.dns_name
    document: dict[str, Any] = {
        "instanceId": endpoint.instance_id,
        "hostName": dns_name,
        "app": record.name.upper(),
        "ipAddr": dns_name,
        "vipAddress": dns_name,
        "status": attrs.status(status).value,
        "port": {"$": endpoint.port, "@enabled": "true"},
        "securePort": {"$": 443, "@enabled": "false"},
        "dataCenterInfo": {
            "@class": DATACENTER_CLASSES[AMAZON],
            "name": AMAZON,
            # instance-id as for containers: the Eureka id, deliberately not an AWS id.
            "metadata": {"instance-id": endpoint.instance_id, "hostname": dns_name, "public-hostname": dns_name},
        },
        "leaseInfo": attrs.lease(min_renewal, defaults.ALB_RENEWAL_INTERVAL_SECONDS,
                                 defaults.ALB_LEASE_DURATION_SECONDS),
        "metadata": {**attrs.metadata(), **alb_metadata(endpoint)},
    }
    return Registration(document, tuple(attrs.problems))


def with_alb_endpoint(container: Registration, endpoint: AlbEndpoint) -> Registration:
    """A container's own registration (`eureka_elbv2_only_registration=false`) naming the ALB in front of it."""
    document = {**container.document, "metadata": {**container.document["metadata"], **alb_metadata(endpoint)}}
    return replace(container, document=document)
