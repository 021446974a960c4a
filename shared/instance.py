"""From a service record to the Eureka instance document that registers it (SPEC section 4).

A pure function. Each `eureka_*` attribute overrides one field; an attribute with a bad value is
reported and its default used, so one typo never keeps a service out of Eureka.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shared.models import InstanceStatus, ServiceRecord

AMAZON = "Amazon"
MY_OWN = "MyOwn"
DATACENTER_CLASSES = {
    AMAZON: "com.netflix.appinfo.AmazonInfo",
    MY_OWN: "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
}
DEFAULT_RENEWAL_INTERVAL = 30
DEFAULT_LEASE_DURATION = 90
METADATA_PREFIX = "eureka_metadata_"
# An XML element name a strict reader accepts: no colon (namespaces), not starting with "xml".
XML_NAME = re.compile(r"^(?![Xx][Mm][Ll])[A-Za-z_][A-Za-z0-9._-]*$")


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


def registration(record: ServiceRecord, status: InstanceStatus, *, host: str) -> Registration:
    """The document to POST for `record`, given the status its container's state calls for and the
    watcher host it runs on."""
    attrs = record.attrs
    problems: list[str] = []

    def complain(attr: str, reason: str) -> None:
        problems.append(f"container {record.container_name.lstrip('/')} ({record.container_id[:12]}): "
                        f"attribute {attr}: {reason}")

    def seconds(attr: str, default: int) -> int:
        raw = attrs.get(attr, "")
        if raw == "":
            return default
        if raw.isdigit() and 0 < int(raw) <= 86400:
            return int(raw)
        complain(attr, f"{raw!r} is not a whole number of seconds between 1 and 86400; using {default}")
        return default

    datacenter = AMAZON
    raw_datacenter = attrs.get("eureka_datacenterinfo_name", "")
    if raw_datacenter:
        by_lower = {name.lower(): name for name in DATACENTER_CLASSES}
        if raw_datacenter.lower() in by_lower:
            datacenter = by_lower[raw_datacenter.lower()]
        else:
            complain("eureka_datacenterinfo_name", f"{raw_datacenter!r} is neither Amazon nor MyOwn; using Amazon")

    if status is InstanceStatus.UP and attrs.get("eureka_status"):
        try:
            status = InstanceStatus(attrs["eureka_status"].upper())
        except ValueError:
            complain("eureka_status", f"{attrs['eureka_status']!r} is not a Eureka status; using UP")

    if datacenter == MY_OWN:
        host_name = f"{record.ip}_{record.port}"
    else:
        host_name = attrs.get("eureka_datacenterinfo_localhostname") or record.ip
    instance_id = f"{host_name}_{record.port}"

    datacenter_info: dict[str, Any] = {"@class": DATACENTER_CLASSES[datacenter], "name": datacenter}
    if datacenter == AMAZON:
        local_host_name = attrs.get("eureka_datacenterinfo_localhostname") or record.ip
        datacenter_info["metadata"] = {
            "instance-id": instance_id,
            "local-hostname": local_host_name,
            "hostname": local_host_name,
            "local-ipv4": attrs.get("eureka_datacenterinfo_localipv4") or record.ip,
            "public-hostname": attrs.get("eureka_datacenterinfo_publichostname") or record.host_ip,
            "public-ipv4": attrs.get("eureka_datacenterinfo_publicipv4") or record.host_ip,
        }

    metadata: dict[str, str] = {}
    for attr, value in sorted(attrs.items()):
        if not attr.startswith(METADATA_PREFIX):
            continue
        key = attr[len(METADATA_PREFIX):]
        if is_valid_metadata_key(key):
            metadata[key] = value
        else:
            complain(attr, f"metadata key {key!r} is not a valid XML element name; not sent")
    metadata.update({
        "is-container": "true",
        "container-id": record.container_id,
        "container-name": record.container_name,
        "docker-host": host,
    })

    ip = attrs.get("eureka_ipaddr") or record.ip
    document = {
        "instanceId": instance_id,
        "hostName": host_name,
        "app": record.name.upper(),
        "ipAddr": ip,
        "vipAddress": attrs.get("eureka_vip") or record.ip,
        "status": status.value,
        "port": {"$": record.port, "@enabled": "true"},
        "securePort": {"$": 443, "@enabled": "false"},
        "dataCenterInfo": datacenter_info,
        "leaseInfo": {
            "renewalIntervalInSecs": seconds("eureka_leaseinfo_renewalintervalinsecs", DEFAULT_RENEWAL_INTERVAL),
            "durationInSecs": seconds("eureka_leaseinfo_durationinsecs", DEFAULT_LEASE_DURATION),
        },
        "metadata": metadata,
    }
    return Registration(document, tuple(problems))
