"""The instance record: what a registration body must contain and how it is normalised.

Input is the decoded ``instance`` object (JSON as sent, or XML already turned into the same
shape by :mod:`deveureka.codec`). Output is an :class:`Instance` whose every field is
well-formed, so the encoders never have to guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("UP", "DOWN", "STARTING", "OUT_OF_SERVICE", "UNKNOWN")
UP, DOWN, STARTING, OUT_OF_SERVICE, UNKNOWN = STATUSES

ADDED = "ADDED"
MODIFIED = "MODIFIED"

DEFAULT_RENEWAL_INTERVAL_SECS = 30
DEFAULT_DURATION_SECS = 90
DEFAULT_PORT = 7001  # Netflix's InstanceInfo default
DEFAULT_SECURE_PORT = 443
AMAZON = "Amazon"
AMAZON_CLASS = "com.netflix.appinfo.AmazonInfo"
DEFAULT_DATA_CENTER_CLASS = "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"

# Plain string fields that are stored, and written after vipAddress, only when sent.
OPTIONAL_FIELDS = (
    "appGroupName",
    "sid",
    "homePageUrl",
    "statusPageUrl",
    "healthCheckUrl",
    "secureHealthCheckUrl",
    "secureVipAddress",
    "asgName",
)

_NAME_START = (
    "A-Z_a-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c-\u200d"
    "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_NAME_CHAR = _NAME_START + r"\-.0-9\u00b7\u0300-\u036f\u203f-\u2040"
# XML 1.0 NCName: a Name without ':'. A colon would be read as a namespace prefix by
# namespace-aware parsers (ElementTree, Go's encoding/xml), so it is refused too.
_NCNAME = re.compile(f"[{_NAME_START}][{_NAME_CHAR}]*")
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_INTEGER = re.compile(r"[+-]?\d+")


class InvalidInput(ValueError):
    """The request is refused with 400; the message says why."""


@dataclass
class Port:
    number: int
    enabled: bool


@dataclass
class DataCenterInfo:
    class_name: str
    name: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Lease:
    """Lease state; timestamps are epoch milliseconds, 0 when not (yet) set."""

    renewal_interval_secs: int
    duration_secs: int
    registration_ts: int = 0
    last_renewal_ts: int = 0
    service_up_ts: int = 0


@dataclass
class Instance:
    instance_id: str
    app: str
    host_name: str
    ip_addr: str
    status: str
    overridden_status: str
    port: Port
    secure_port: Port
    country_id: int
    data_center: DataCenterInfo
    lease: Lease
    metadata: dict[str, str]
    vip_address: str
    is_coordinating_discovery_server: bool
    last_dirty_ts: int
    optional: dict[str, str] = field(default_factory=dict)
    last_updated_ts: int = 0
    action_type: str = ADDED


def is_xml_name(name: str) -> bool:
    return _NCNAME.fullmatch(name) is not None


def check_metadata(metadata: dict[str, str], where: str = "metadata") -> None:
    """Refuse keys that cannot be XML element names and values XML cannot carry."""
    for key, value in metadata.items():
        if not is_xml_name(key):
            raise InvalidInput(f"{where} key {key!r} is not a valid XML element name")
        _check_xml_text(value, f"{where} value of {key!r}")


def parse_instance(doc: Any, url_app: str, now_ms: int) -> Instance:
    """Validate and normalise a registration for the app named in the URL (upper-cased)."""
    if not isinstance(doc, dict):
        raise InvalidInput("body must hold one instance object")
    app = _string(doc, "app").upper()
    if not app:
        raise InvalidInput("missing app")
    if app != url_app:
        raise InvalidInput(f"mismatched app: URL says {url_app}, body says {app}")

    data_center = _data_center(doc.get("dataCenterInfo"))
    instance_id = _string(doc, "instanceId")
    if not instance_id and data_center.name == AMAZON:
        instance_id = data_center.metadata.get("instance-id", "")
    instance_id = instance_id or _string(doc, "hostName")
    if not instance_id:
        raise InvalidInput("missing instanceId (and hostName)")
    host_name = _string(doc, "hostName")
    if not host_name:
        raise InvalidInput("missing hostName")
    ip_addr = _string(doc, "ipAddr")
    if not ip_addr:
        raise InvalidInput("missing ipAddr")
    if data_center.name == AMAZON:
        data_center.metadata.setdefault("instance-id", instance_id)

    overridden = doc.get("overriddenStatus", doc.get("overriddenstatus"))
    metadata = _string_map(doc.get("metadata"), "metadata")
    check_metadata(metadata)
    optional = {name: _string(doc, name) for name in OPTIONAL_FIELDS if doc.get(name) is not None}
    return Instance(
        instance_id=instance_id,
        app=app,
        host_name=host_name,
        ip_addr=ip_addr,
        status=_status(doc.get("status"), "status", UP),
        overridden_status=_status(overridden, "overriddenStatus", UNKNOWN),
        port=_port(doc.get("port"), "port", DEFAULT_PORT, enabled_by_default=True),
        secure_port=_port(
            doc.get("securePort"), "securePort", DEFAULT_SECURE_PORT, enabled_by_default=False
        ),
        country_id=_integer(_given(doc, "countryId", 1), "countryId"),
        data_center=data_center,
        lease=_lease(doc.get("leaseInfo")),
        metadata=metadata,
        vip_address=_string(doc, "vipAddress"),
        is_coordinating_discovery_server=_boolean(
            doc.get("isCoordinatingDiscoveryServer"), "isCoordinatingDiscoveryServer", False
        ),
        last_dirty_ts=_integer(_given(doc, "lastDirtyTimestamp", now_ms), "lastDirtyTimestamp"),
        optional=optional,
    )


def parse_status(value: str | None) -> str:
    """A status as given to the status endpoints: exact upper-case name, as Netflix's valueOf."""
    if value not in STATUSES:
        raise InvalidInput(f"status value must be one of {', '.join(STATUSES)}; got {value!r}")
    return value


def parse_timestamp(value: str | None, name: str) -> int | None:
    return None if value is None else _integer(value, name)


def _given(doc: dict[str, Any], name: str, default: Any) -> Any:
    """The field's value, or ``default`` when it is absent, null or (from XML) empty."""
    value = doc.get(name)
    return default if value is None or value == "" else value


def _string(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    _check_xml_text(value, name)
    return value


def _check_xml_text(value: str, what: str) -> None:
    bad = _NOT_XML_CHAR.search(value)
    if bad:
        raise InvalidInput(f"{what} contains {bad.group()!r}, which XML 1.0 cannot carry")


def _integer(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    raise InvalidInput(f"{name} must be an integer; got {value!r}")


def _boolean(value: Any, name: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidInput(f"{name} must be true or false; got {value!r}")


def _status(value: Any, name: str, default: str) -> str:
    if value is None or value == "":
        return default
    # Netflix reads registration statuses case-insensitively (InstanceStatus.toEnum).
    if isinstance(value, str) and value.upper() in STATUSES:
        return value.upper()
    raise InvalidInput(f"{name} must be one of {', '.join(STATUSES)}; got {value!r}")


def _port(value: Any, name: str, default: int, enabled_by_default: bool) -> Port:
    if value is None:
        return Port(default, enabled_by_default)
    if isinstance(value, dict):
        number = _integer(value.get("$"), f"{name}.$")
        enabled = _boolean(value.get("@enabled"), f"{name}.@enabled", enabled_by_default)
    else:
        number, enabled = _integer(value, name), enabled_by_default
    if not 0 <= number <= 65535:
        raise InvalidInput(f"{name} must be within 0-65535; got {number}")
    return Port(number, enabled)


def _data_center(value: Any) -> DataCenterInfo:
    if not isinstance(value, dict):
        raise InvalidInput("missing dataCenterInfo")
    name = _string(value, "name")
    if not name:
        raise InvalidInput("missing dataCenterInfo name")
    class_name = _string(value, "@class") or (
        AMAZON_CLASS if name == AMAZON else DEFAULT_DATA_CENTER_CLASS
    )
    metadata = _string_map(value.get("metadata"), "dataCenterInfo.metadata")
    check_metadata(metadata, "dataCenterInfo.metadata")
    return DataCenterInfo(class_name, name, metadata)


def _lease(value: Any) -> Lease:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidInput("leaseInfo must be an object")
    renewal = _integer(
        _given(value, "renewalIntervalInSecs", DEFAULT_RENEWAL_INTERVAL_SECS),
        "leaseInfo.renewalIntervalInSecs",
    )
    duration = _integer(
        _given(value, "durationInSecs", DEFAULT_DURATION_SECS), "leaseInfo.durationInSecs"
    )
    # Netflix falls back to the default lease when the client sends a non-positive one.
    return Lease(
        renewal_interval_secs=renewal if renewal > 0 else DEFAULT_RENEWAL_INTERVAL_SECS,
        duration_secs=duration if duration > 0 else DEFAULT_DURATION_SECS,
    )


def _string_map(value: Any, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be an object of string values")
    result: dict[str, str] = {}
    for key, item in value.items():
        # Netflix's JSON codec writes (and Java clients send back) "@class" for empty maps.
        if key == "@class":
            continue
        if isinstance(item, (dict, list)):
            raise InvalidInput(f"{name} value of {key!r} must be a string")
        result[key] = item if isinstance(item, str) else ("" if item is None else json.dumps(item))
    return result
