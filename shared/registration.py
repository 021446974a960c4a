"""From a service record to the Eureka instance document that registers it (SPEC section 4).

A pure function. Each `eureka_*` attribute overrides one field; an attribute with a bad value is
reported and its default used, so one typo never keeps a service out of Eureka.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from shared import defaults
from shared.config import parse_bool
from shared.models import Ec2Metadata, InstanceStatus, ServiceRecord

AMAZON = "Amazon"
MY_OWN = "MyOwn"
DATACENTER_CLASSES = {
    AMAZON: "com.netflix.appinfo.AmazonInfo",
    MY_OWN: "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
}
METADATA_PREFIX = "eureka_metadata_"
RENEWAL_ATTR = "eureka_leaseinfo_renewalintervalinsecs"
DURATION_ATTR = "eureka_leaseinfo_durationinsecs"
# Eureka's own default ratio of lease duration to renewal interval (90 / 30).
LEASE_TO_RENEWAL = 3
# What may stand in hostName, and so in the instance id: a host name or an IP address.
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$")
# An XML element name every reader accepts: no colon (namespaces), not starting with "xml".
XML_NAME = re.compile(r"^(?![Xx][Mm][Ll])[A-Za-z_][A-Za-z0-9._-]*$")
# Characters XML 1.0 cannot carry, even escaped.
NOT_XML_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Registration:
    document: dict[str, Any]
    problems: tuple[str, ...]

    @property
    def app(self) -> str:
        return self.document["app"]

    @property
    def instance_id(self) -> str:
        return self.document["instanceId"]

    @property
    def renewal_interval(self) -> int:
        return self.document["leaseInfo"]["renewalIntervalInSecs"]


def is_valid_metadata_key(key: str) -> bool:
    return bool(XML_NAME.match(key))


def is_xml_text(value: str) -> bool:
    return NOT_XML_TEXT.search(value) is None


class RecordAttributes:
    """A record's attributes, read with validation; every bad value is reported once."""

    def __init__(self, record: ServiceRecord) -> None:
        self.values: Mapping[str, str] = record.attrs
        self.problems: list[str] = []
        self._where = f"container {record.container_name.lstrip('/')} ({record.container_id[:12]})"

    def complain(self, attr: str, reason: str) -> None:
        self.problems.append(f"{self._where}: attribute {attr}: {reason}")

    def text(self, attr: str) -> str:
        """The value, or '' when absent, empty or not representable in XML."""
        value = self.values.get(attr, "")
        if not is_xml_text(value):
            self.complain(attr, "contains characters XML cannot carry; ignored")
            return ""
        return value

    def flag(self, attr: str) -> bool:
        raw = self.values.get(attr, "")
        if raw == "":
            return False
        try:
            return parse_bool(raw)
        except ValueError:
            self.complain(attr, f"{raw!r} is not a boolean; treated as false")
            return False

    def host_name(self, attr: str) -> str:
        """A host name or IP from `attr`, or '' when absent or unfit for an instance id."""
        value = self.values.get(attr, "")
        if value and not HOST_NAME.match(value):
            self.complain(attr, f"{value!r} is not a host name or IP address; ignored")
            return ""
        return value

    def seconds(self, attr: str, default: int) -> int:
        raw = self.values.get(attr, "")
        if raw == "":
            return default
        if raw.isdigit() and 0 < int(raw) <= defaults.MAX_LEASE_SECONDS:
            return int(raw)
        self.complain(attr, f"{raw!r} is not a whole number of seconds from 1 to {defaults.MAX_LEASE_SECONDS}; "
                            f"using {default}")
        return default

    def lease(self, min_renewal: int, renewal_default: int = defaults.DEFAULT_RENEWAL_INTERVAL_SECONDS,
              duration_default: int = defaults.DEFAULT_LEASE_DURATION_SECONDS) -> dict[str, int]:
        """Renewal interval and lease duration: renewals no more often than `min_renewal` seconds,
        and a lease that outlasts the interval between renewals."""
        renewal = self.seconds(RENEWAL_ATTR, renewal_default)
        duration = self.seconds(DURATION_ATTR, duration_default)
        if renewal < min_renewal:
            self.complain(RENEWAL_ATTR, f"{renewal} s is under the minimum renewal interval of {min_renewal} s; "
                                        f"using {min_renewal}")
            renewal = min_renewal
        if duration <= renewal:
            culprit = DURATION_ATTR if DURATION_ATTR in self.values else RENEWAL_ATTR
            self.complain(culprit, f"a lease of {duration} s would expire before its renewal every {renewal} s; "
                                   f"using a lease of {LEASE_TO_RENEWAL * renewal} s")
            duration = LEASE_TO_RENEWAL * renewal
        return {"renewalIntervalInSecs": renewal, "durationInSecs": duration}

    def datacenter(self) -> str:
        raw = self.values.get("eureka_datacenterinfo_name", "")
        by_lower = {name.lower(): name for name in DATACENTER_CLASSES}
        if raw and raw.lower() not in by_lower:
            self.complain("eureka_datacenterinfo_name", f"{raw!r} is neither Amazon nor MyOwn; using Amazon")
        return by_lower.get(raw.lower(), AMAZON)

    def status(self, container_status: InstanceStatus) -> InstanceStatus:
        """The container's own state decides unless it is UP; then `eureka_status` may say otherwise."""
        raw = self.values.get("eureka_status", "")
        if container_status is not InstanceStatus.UP or raw == "":
            return container_status
        try:
            return InstanceStatus(raw.upper())
        except ValueError:
            self.complain("eureka_status", f"{raw!r} is not a Eureka status; using UP")
            return InstanceStatus.UP

    def metadata(self) -> dict[str, str]:
        metadata: dict[str, str] = {}
        size = 0
        for attr in sorted(self.values):
            if not attr.startswith(METADATA_PREFIX):
                continue
            key, value = attr[len(METADATA_PREFIX):], self.values[attr]
            if not is_valid_metadata_key(key):
                self.complain(attr, f"metadata key {key!r} is not a valid XML element name; not sent")
            elif not is_xml_text(value):
                self.complain(attr, "value contains characters XML cannot carry; not sent")
            elif size + len(key.encode()) + len(value.encode()) > defaults.MAX_METADATA_BYTES:
                self.complain(attr, f"metadata would exceed {defaults.MAX_METADATA_BYTES} bytes in all; not sent")
            else:
                metadata[key] = value
                size += len(key.encode()) + len(value.encode())
        return metadata


def wants_ec2_metadata(record: ServiceRecord) -> bool:
    """Whether registering `record` uses its host's EC2 metadata (so the watcher must fetch it)."""
    attrs = RecordAttributes(record)
    return attrs.datacenter() == AMAZON and attrs.flag("eureka_datacenterinfo_auto_populate")


def registration(record: ServiceRecord, status: InstanceStatus, *, host: str, ec2: Ec2Metadata | None = None,
                 min_renewal: int = defaults.MIN_RENEWAL_INTERVAL_SECONDS) -> Registration:
    """The document to POST for `record`, given the status its container's state calls for, the
    watcher host it runs on, when the watcher fetched it, that host's EC2 metadata, and the shortest
    renewal interval allowed."""
    attrs = RecordAttributes(record)
    datacenter = attrs.datacenter()
    auto_populate = datacenter == AMAZON and attrs.flag("eureka_datacenterinfo_auto_populate")
    if auto_populate and ec2 is None:
        attrs.complain("eureka_datacenterinfo_auto_populate", "no EC2 metadata from the host; using the "
                                                              "overrides and defaults")
    aws = ec2 if auto_populate else None

    local_host_name = (attrs.host_name("eureka_datacenterinfo_localhostname")
                       or (aws.local_hostname if aws else record.ip))
    host_name = f"{record.ip}_{record.port}" if datacenter == MY_OWN else local_host_name
    instance_id = f"{host_name}_{record.port}"

    datacenter_info: dict[str, Any] = {"@class": DATACENTER_CLASSES[datacenter], "name": datacenter}
    if datacenter == AMAZON:
        datacenter_info["metadata"] = {
            # Deliberately not the EC2 instance id: Eureka needs one id per registration.
            "instance-id": instance_id,
            "local-hostname": local_host_name,
            "hostname": local_host_name,
            "local-ipv4": attrs.text("eureka_datacenterinfo_localipv4") or (aws.local_ipv4 if aws else record.ip),
            "public-hostname": attrs.text("eureka_datacenterinfo_publichostname")
            or (aws.public_hostname if aws else record.host_ip),
            "public-ipv4": attrs.text("eureka_datacenterinfo_publicipv4")
            or (aws.public_ipv4 if aws else record.host_ip),
        }
        if aws:
            datacenter_info["metadata"]["availability-zone"] = aws.availability_zone

    address = record.ip
    if attrs.flag("eureka_register_aws_public_ip"):
        if aws and aws.public_ipv4:
            address = aws.public_ipv4
        else:
            attrs.complain("eureka_register_aws_public_ip", "needs eureka_datacenterinfo_auto_populate=true "
                                                            "and a public IP in the EC2 metadata; using the "
                                                            "service IP")

    metadata = attrs.metadata()
    metadata.update({
        "is-container": "true",
        "container-id": record.container_id,
        "container-name": record.container_name,
        "docker-host": host,
    })
    if aws:
        metadata["aws-instance-id"] = aws.instance_id

    document = {
        "instanceId": instance_id,
        "hostName": host_name,
        "app": record.name.upper(),
        "ipAddr": attrs.text("eureka_ipaddr") or address,
        "vipAddress": attrs.text("eureka_vip") or address,
        "status": attrs.status(status).value,
        "port": {"$": record.port, "@enabled": "true"},
        "securePort": {"$": 443, "@enabled": "false"},
        "dataCenterInfo": datacenter_info,
        "leaseInfo": attrs.lease(min_renewal),
        "metadata": metadata,
    }
    return Registration(document, tuple(attrs.problems))
