"""The instance record: what a registration body must contain and how it is read.

Input is the decoded ``instance`` object: JSON as sent, or XML already turned into the same shape
(and through XStream's rules) by :mod:`deveureka.codec`. Values are read the way Netflix Eureka
1.10's Jackson codec reads them: a status that is not an exact status name becomes ``UNKNOWN``, a
port number is coerced, a non-positive lease value falls back to the default, any metadata key is
kept. With ``strict``, every value Netflix would silently alter or could not write as well-formed
XML is refused instead, with a 400 naming the field.
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
DEFAULT_PORT = 7001  # Netflix's InstanceInfo defaults
DEFAULT_SECURE_PORT = 7002
AMAZON = "Amazon"
DATA_CENTER_NAMES = ("Netflix", AMAZON, "MyOwn")  # Netflix's DataCenterInfo.Name
AMAZON_CLASS = "com.netflix.appinfo.AmazonInfo"
DEFAULT_DATA_CENTER_CLASS = "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"
# The @class values Netflix's Jackson codec resolves to a DataCenterInfo.
DATA_CENTER_CLASSES = (
    DEFAULT_DATA_CENTER_CLASS,
    AMAZON_CLASS,
    "com.netflix.appinfo.MyDataCenterInfo",
)
EMPTY_MAP_CLASS = "java.util.Collections$EmptyMap"
UNSET_SIDS = ("na", "unknown")

# Plain string fields stored, and written back, only when sent (Netflix's @Auto fields and sid).
OPTIONAL_FIELDS = (
    "sid",
    "appGroupName",
    "homePageUrl",
    "statusPageUrl",
    "healthCheckUrl",
    "secureHealthCheckUrl",
    "vipAddress",
    "secureVipAddress",
    "asgName",
)

_NAME_START = (
    "A-Z_a-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c-\u200d"
    "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_NAME_CHAR = _NAME_START + r"\-.0-9\u00b7\u0300-\u036f\u203f-\u2040"
# XML 1.0 NCName: a Name without ':'. A colon would be read as a namespace prefix by
# namespace-aware parsers (ElementTree, Go's encoding/xml).
_NCNAME = re.compile(f"[{_NAME_START}][{_NAME_CHAR}]*")
_NAME_START_CHAR = re.compile(f"[:{_NAME_START}]")
_NAME_CHAR_ONE = re.compile(f"[:{_NAME_CHAR}]")
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_INTEGER = re.compile(r"[+-]?\d+")


class InvalidInput(ValueError):
    """The registration is refused with 400; the message is the answer's body."""


class UnreadableBody(ValueError):
    """The body cannot be read as an instance: Netflix answers 400 "cannot parse request body"."""


@dataclass
class Port:
    number: int
    enabled: bool


@dataclass
class DataCenterInfo:
    name: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def class_name(self) -> str:
        # Netflix writes the class from the name, whatever class was sent.
        return AMAZON_CLASS if self.name == AMAZON else DEFAULT_DATA_CENTER_CLASS


@dataclass
class Lease:
    """Lease state; timestamps are epoch milliseconds, 0 when not (yet) set.

    ``last_update_ts`` is Netflix's ``lastUpdateTimestamp``: the lease expires ``duration_secs``
    after it, and it is what reads show as ``lastRenewalTimestamp``.
    """

    renewal_interval_secs: int
    duration_secs: int
    registration_ts: int = 0
    last_update_ts: int = 0
    service_up_ts: int = 0


@dataclass
class Instance:
    instance_id: str  # the registry's key: instanceId, else the Amazon instance-id, else hostName
    sent_instance_id: str | None  # instanceId as sent; written back only when it was sent
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
    last_dirty_ts: int
    optional: dict[str, str] = field(default_factory=dict)
    last_updated_ts: int = 0
    action_type: str = ADDED


def is_xml_name(name: str) -> bool:
    """An XML 1.0 NCName (no colon)."""
    return _NCNAME.fullmatch(name) is not None


def xml_element_name(key: str) -> str:
    """A metadata key as Netflix's XStream writes it as an element name (XmlFriendlyNameCoder with
    Eureka's defaults): ``$`` -> ``_-``, ``_`` -> ``__``, any other character not allowed in an XML
    name -> ``_.`` and 4 hex digits (per UTF-16 unit). ``:`` is allowed: ``a:b`` passes through."""
    if key.isascii() and key.isalpha():
        return key
    out = []
    for position, unit in enumerate(_utf16_units(key)):
        if unit == "$":
            out.append("_-")
        elif unit == "_":
            out.append("__")
        elif (_NAME_START_CHAR if position == 0 else _NAME_CHAR_ONE).fullmatch(unit):
            out.append(unit)
        else:
            out.append(f"_.{ord(unit):04x}")
    return "".join(out)


def decode_element_name(name: str) -> str:
    """The inverse of :func:`xml_element_name`, as XStream reads element names back."""
    out, i = [], 0
    while i < len(name):
        if name.startswith("_-", i):
            out.append("$")
            i += 2
        elif name.startswith("_.", i) and re.fullmatch("[0-9a-fA-F]{4}", name[i + 2 : i + 6]):
            out.append(chr(int(name[i + 2 : i + 6], 16)))
            i += 6
        elif name.startswith("__", i):
            out.append("_")
            i += 2
        else:
            out.append(name[i])
            i += 1
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")


def check_metadata(metadata: dict[str, str], where: str = "metadata") -> None:
    """Strict mode: refuse keys that are not XML NCNames and values XML 1.0 cannot carry."""
    for key, value in metadata.items():
        if not is_xml_name(key):
            raise InvalidInput(f"{where} key {key!r} is not a valid XML element name")
        _check_xml_text(value, f"{where} value of {key!r}")


def parse_instance(doc: Any, url_app: str, now_ms: int, *, strict: bool = False) -> Instance:
    """Read a registration for the app named in the URL (upper-cased), checking what Netflix's
    ApplicationResource checks, in its order and with its messages."""
    if not isinstance(doc, dict):
        raise UnreadableBody("body must hold one instance object")
    # Everything is read first, as Netflix decodes the whole body before it checks anything.
    read = _Reader(strict)
    data_center = read.data_center(doc.get("dataCenterInfo"))
    sent_instance_id = read.text(doc, "instanceId")
    host_name = read.text(doc, "hostName") or ""
    ip_addr = read.text(doc, "ipAddr") or ""
    app = (read.text(doc, "app") or "").upper()
    optional = {}
    for name in OPTIONAL_FIELDS:
        value = read.text(doc, name)
        if value is not None:
            optional[name] = value.upper() if name == "appGroupName" else value
    if optional.get("sid") in UNSET_SIDS:
        del optional["sid"]
    instance = Instance(
        instance_id="",
        sent_instance_id=sent_instance_id,
        app=app,
        host_name=host_name,
        ip_addr=ip_addr,
        status=read.status(doc.get("status"), "status", UP),
        overridden_status=read.status(doc.get("overriddenStatus"), "overriddenStatus", UNKNOWN),
        port=read.port(doc.get("port"), "port", DEFAULT_PORT, enabled_by_default=True),
        secure_port=read.port(
            doc.get("securePort"), "securePort", DEFAULT_SECURE_PORT, enabled_by_default=False
        ),
        country_id=read.integer(doc.get("countryId"), "countryId", 1),
        data_center=data_center or DataCenterInfo(""),
        lease=read.lease(doc.get("leaseInfo")),
        metadata=read.metadata(doc.get("metadata"), "metadata"),
        last_dirty_ts=read.integer(doc.get("lastDirtyTimestamp"), "lastDirtyTimestamp", now_ms),
        optional=optional,
    )

    instance_id = sent_instance_id or ""
    if not instance_id and data_center is not None and data_center.name == AMAZON:
        instance_id = data_center.metadata.get("instance-id", "")
    instance.instance_id = instance_id or host_name
    if not instance.instance_id.strip():
        raise InvalidInput("Missing instanceId")
    if not host_name.strip():
        raise InvalidInput("Missing hostname")
    if not ip_addr.strip():
        raise InvalidInput("Missing ip address")
    if not app.strip():
        raise InvalidInput("Missing appName")
    if app != url_app:
        raise InvalidInput(f"Mismatched appName, expecting {url_app} but was {app}")
    if data_center is None:
        raise InvalidInput("Missing dataCenterInfo")
    if not data_center.name:
        raise InvalidInput("Missing dataCenterInfo Name")
    if data_center.name == AMAZON:
        data_center.metadata.setdefault("instance-id", instance.instance_id)
    return instance


def parse_metadata_update(items: dict[str, str], *, strict: bool) -> dict[str, str]:
    """PUT .../metadata query parameters: any key (strict: XML names and XML text only)."""
    if strict:
        check_metadata(items)
    return items


def _utf16_units(text: str) -> list[str]:
    """Java sees a string as UTF-16 units: a character beyond U+FFFF is two surrogates."""
    data = text.encode("utf-16-le", "surrogatepass")
    return [chr(int.from_bytes(data[i : i + 2], "little")) for i in range(0, len(data), 2)]


def _check_xml_text(value: str, what: str) -> None:
    bad = _NOT_XML_CHAR.search(value)
    if bad:
        raise InvalidInput(f"{what} contains {bad.group()!r}, which XML 1.0 cannot carry")


class _Reader:
    """Jackson's coercions by default; with ``strict`` the value must already be well-typed."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict

    def text(self, doc: dict[str, Any], name: str) -> str | None:
        value = doc.get(name)
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            raise UnreadableBody(f"{name} must be a string")
        if self.strict:
            if not isinstance(value, str):
                raise InvalidInput(f"{name} must be a string")
            _check_xml_text(value, name)
        return value if isinstance(value, str) else _json_text(value)

    def status(self, value: Any, name: str, default: str) -> str:
        if value is None:
            return default
        if value in STATUSES:
            return str(value)
        # Netflix's JSON codec looks the exact name up and falls back to UNKNOWN.
        if self.strict:
            raise InvalidInput(f"{name} must be one of {', '.join(STATUSES)}; got {value!r}")
        return UNKNOWN

    def integer(self, value: Any, name: str, default: int) -> int:
        if value is None or value == "":
            return default
        if self.strict:
            return _strict_integer(value, name)
        return _as_int(value)

    def port(self, value: Any, name: str, default: int, enabled_by_default: bool) -> Port:
        if value is None:
            return Port(default, enabled_by_default)
        if not isinstance(value, dict) or not set(value) <= {"$", "@enabled"}:
            raise UnreadableBody(f"{name} must be an object with '$' and '@enabled'")
        number, enabled = value.get("$"), value.get("@enabled")
        if not self.strict:
            return Port(
                _as_int(number) if "$" in value else default,
                _as_bool(enabled) if "@enabled" in value else enabled_by_default,
            )
        port = Port(_strict_integer(number, f"{name}.$"), enabled_by_default)
        if not 0 <= port.number <= 65535:
            raise InvalidInput(f"{name} must be within 0-65535; got {port.number}")
        if enabled is not None:
            if not isinstance(enabled, bool) and str(enabled).lower() not in ("true", "false"):
                raise InvalidInput(f"{name}.@enabled must be true or false; got {enabled!r}")
            port.enabled = enabled if isinstance(enabled, bool) else str(enabled).lower() == "true"
        return port

    def data_center(self, value: Any) -> DataCenterInfo | None:
        if value is None:
            return None
        if not isinstance(value, dict) or value.get("@class") not in DATA_CENTER_CLASSES:
            raise UnreadableBody("dataCenterInfo needs a known @class")
        name = value.get("name")
        if value["@class"] == AMAZON_CLASS:
            name = AMAZON
        elif name is None:
            return DataCenterInfo("")
        if name not in DATA_CENTER_NAMES:
            raise UnreadableBody(f"dataCenterInfo name must be one of {DATA_CENTER_NAMES}")
        metadata = {}
        if name == AMAZON:  # only AmazonInfo carries metadata
            metadata = self.metadata(value.get("metadata"), "dataCenterInfo.metadata")
        return DataCenterInfo(name, metadata)

    def lease(self, value: Any) -> Lease:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise UnreadableBody("leaseInfo must be an object")
        renewal = self.integer(
            value.get("renewalIntervalInSecs"), "leaseInfo.renewalIntervalInSecs", 0
        )
        duration = self.integer(value.get("durationInSecs"), "leaseInfo.durationInSecs", 0)
        # Netflix falls back to the default lease when the client sends a non-positive one.
        return Lease(
            renewal_interval_secs=renewal if renewal > 0 else DEFAULT_RENEWAL_INTERVAL_SECS,
            duration_secs=duration if duration > 0 else DEFAULT_DURATION_SECS,
        )

    def metadata(self, value: Any, name: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise UnreadableBody(f"{name} must be an object")
        result: dict[str, str] = {}
        for key, item in value.items():
            # Netflix's JSON codec writes (and Java clients send back) "@class" for empty maps.
            if key == "@class":
                continue
            if isinstance(item, (dict, list)):
                if self.strict:
                    raise InvalidInput(f"{name} value of {key!r} must be a string")
                raise UnreadableBody(f"{name} value of {key!r} must be a string")
            if item is None:
                item = ""
            result[key] = item if isinstance(item, str) else _json_text(item)
        if self.strict:
            check_metadata(result, name)
        return result


def _json_text(value: Any) -> str:
    return json.dumps(value)


def _strict_integer(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    raise InvalidInput(f"{name} must be an integer; got {value!r}")


def _as_int(value: Any) -> int:
    """Jackson's getValueAsInt: numbers truncated, numeric text parsed, anything else 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                return int(float(value))
            except (ValueError, OverflowError):
                return 0
    return 0


def _as_bool(value: Any) -> bool:
    """Jackson's getValueAsBoolean: true, a non-zero number or the text "true"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    return isinstance(value, str) and value.strip() == "true"
