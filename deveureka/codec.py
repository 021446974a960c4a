"""Wire formats: registration bodies in, Netflix-shaped JSON and XML documents out.

The JSON shape is Netflix 1.10's Jackson codec, the XML shape (and the way XML bodies are read)
its XStream converters, metadata element names included: XStream writes a key that is not an XML
name in an escaped form (see :func:`deveureka.instance.xml_element_name`).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from deveureka.instance import (
    AMAZON,
    AMAZON_CLASS,
    DATA_CENTER_NAMES,
    DEFAULT_DATA_CENTER_CLASS,
    DOWN,
    EMPTY_MAP_CLASS,
    OPTIONAL_FIELDS,
    STARTING,
    UP,
    Instance,
    Port,
    UnreadableBody,
    decode_element_name,
    xml_element_name,
)

Format = Literal["json", "xml"]

JSON_TYPE = "application/json"
XML_TYPE = "application/xml"
VERSIONS_DELTA = "1"
# Java's Integer.valueOf / Long.valueOf accept an optional sign and digits, nothing else.
_JAVA_INTEGER = re.compile(r"[+-]?\d+")


class UnsupportedMediaType(ValueError):
    """The registration body is neither JSON nor XML (415)."""


def decode_registration(body: bytes, mimetype: str) -> Any:
    """The ``instance`` object of a registration body, XML turned into the JSON shape."""
    if mimetype == JSON_TYPE:
        return _decode_json(body)
    if mimetype == XML_TYPE:
        return _decode_xml(body)
    raise UnsupportedMediaType(f"Content-Type must be {JSON_TYPE} or {XML_TYPE}; got {mimetype!r}")


def unreadable_body(mimetype: str) -> tuple[str, str]:
    """Netflix's answer body (and its type) to a registration it cannot parse."""
    if mimetype == JSON_TYPE:
        return '{"error": "cannot parse request body"}', JSON_TYPE
    return "<error><message>cannot parse request body</message></error>", XML_TYPE


def java_long(value: str) -> int:
    """``Long.valueOf``: raises ValueError for anything but an optional sign and digits."""
    if not _JAVA_INTEGER.fullmatch(value):
        raise ValueError(f"not a number: {value!r}")
    return int(value)


def apps_hashcode(instances: Iterable[Instance]) -> str:
    """Netflix's reconcile hash: ``<STATUS>_<count>_`` per status, statuses sorted."""
    counts = Counter(instance.status for instance in instances)
    return "".join(f"{status}_{counts[status]}_" for status in sorted(counts))


def render_applications(apps: list[tuple[str, list[Instance]]], hashcode: str, fmt: Format) -> str:
    """The ``applications`` document; ``hashcode`` is given so a delta can carry the full one."""
    if fmt == "json":
        return json.dumps(
            {
                "applications": {
                    "versions__delta": VERSIONS_DELTA,
                    "apps__hashcode": hashcode,
                    "application": [_application_json(name, items) for name, items in apps],
                }
            }
        )
    root = ET.Element("applications")
    _text(root, "versions__delta", VERSIONS_DELTA)
    _text(root, "apps__hashcode", hashcode)
    for name, items in apps:
        root.append(_application_xml(name, items))
    return ET.tostring(root, encoding="unicode")


def render_application(name: str, instances: list[Instance], fmt: Format) -> str:
    if fmt == "json":
        return json.dumps({"application": _application_json(name, instances)})
    return ET.tostring(_application_xml(name, instances), encoding="unicode")


def render_instance(instance: Instance, fmt: Format) -> str:
    """A single instance as ``GET /apps/{APP}/{id}`` and ``GET /instances/{id}`` write it.

    Netflix writes these outside its response cache, where no API version is set, so its XML
    converter falls back to the v1 statuses: anything but UP, DOWN and STARTING is written DOWN.
    """
    if fmt == "json":
        return json.dumps({"instance": _instance_json(instance)})
    v1_status = instance.status if instance.status in (UP, DOWN, STARTING) else DOWN
    return ET.tostring(_instance_xml(instance, v1_status), encoding="unicode")


def _decode_json(body: bytes) -> Any:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnreadableBody(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("instance"), dict):
        raise UnreadableBody('JSON body must be {"instance": {...}}')
    return doc["instance"]


def _decode_xml(body: bytes) -> dict[str, Any]:
    """XStream's InstanceInfoConverter: element names decoded, statuses in any letter case."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise UnreadableBody(f"body is not well-formed XML: {exc}") from None
    if root.tag != "instance":
        raise UnreadableBody(f"XML body must have root <instance>, not <{root.tag}>")
    doc: dict[str, Any] = {}
    for child in root:
        tag, text = child.tag, child.text or ""
        if tag in ("status", "overriddenstatus", "overriddenStatus"):
            doc["status" if tag == "status" else "overriddenStatus"] = text.upper()
        elif tag in ("port", "securePort"):
            enabled = child.get("enabled")
            doc[tag] = {
                "$": _xml_integer(text, tag),
                # XStream: the port is enabled unless "false", the secure port only when "true".
                "@enabled": enabled != "false" if tag == "port" else enabled == "true",
            }
        elif tag == "countryId":
            doc[tag] = _xml_integer(text, tag)
        elif tag == "dataCenterInfo":
            doc[tag] = _xml_data_center(child)
        elif tag == "leaseInfo":
            doc[tag] = {
                part.tag: int(part.text)
                for part in child
                if part.text and _JAVA_INTEGER.fullmatch(part.text)
            }
        elif tag == "metadata":
            doc[tag] = _xml_map(child)
        elif tag == "lastDirtyTimestamp":
            if _JAVA_INTEGER.fullmatch(text):
                doc[tag] = int(text)
        elif tag in ("instanceId", "hostName", "app", "ipAddr", *OPTIONAL_FIELDS):
            doc[tag] = text
    return doc


def _xml_integer(text: str, tag: str) -> int:
    if not _JAVA_INTEGER.fullmatch(text):
        raise UnreadableBody(f"<{tag}> must be an integer")
    return int(text)


def _xml_data_center(element: ET.Element) -> dict[str, Any] | None:
    """XStream decides the data center by its name alone; without a name there is none."""
    name = element.findtext("name")
    if name is None:
        return None
    if name.lower() == AMAZON.lower():
        metadata = element.find("metadata")
        return {
            "@class": AMAZON_CLASS,
            "name": AMAZON,
            "metadata": {} if metadata is None else _xml_map(metadata),
        }
    if name not in DATA_CENTER_NAMES:
        raise UnreadableBody(f"unknown dataCenterInfo name {name!r}")
    return {"@class": DEFAULT_DATA_CENTER_CLASS, "name": name}


def _xml_map(element: ET.Element) -> dict[str, str]:
    return {decode_element_name(child.tag): child.text or "" for child in element}


def _application_json(name: str, instances: list[Instance]) -> dict[str, Any]:
    return {"name": name, "instance": [_instance_json(instance) for instance in instances]}


def _application_xml(name: str, instances: list[Instance]) -> ET.Element:
    element = ET.Element("application")
    _text(element, "name", name)
    for instance in instances:
        element.append(_instance_xml(instance, instance.status))
    return element


def _instance_json(instance: Instance) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if instance.sent_instance_id is not None:
        doc["instanceId"] = instance.sent_instance_id
    doc.update(hostName=instance.host_name, app=instance.app, ipAddr=instance.ip_addr)
    if "sid" in instance.optional:
        doc["sid"] = instance.optional["sid"]
    data_center: dict[str, Any] = {
        "@class": instance.data_center.class_name,
        "name": instance.data_center.name,
    }
    if instance.data_center.name == AMAZON:
        data_center["metadata"] = dict(instance.data_center.metadata)
    doc.update(
        status=instance.status,
        overriddenStatus=instance.overridden_status,
        port=_port_json(instance.port),
        securePort=_port_json(instance.secure_port),
        countryId=instance.country_id,
        dataCenterInfo=data_center,
        leaseInfo={
            "renewalIntervalInSecs": instance.lease.renewal_interval_secs,
            "durationInSecs": instance.lease.duration_secs,
            "registrationTimestamp": instance.lease.registration_ts,
            "lastRenewalTimestamp": instance.lease.last_update_ts,
            "evictionTimestamp": 0,
            "serviceUpTimestamp": instance.lease.service_up_ts,
        },
        # Netflix writes an empty map with the Java class its clients expect.
        metadata=dict(instance.metadata) or {"@class": EMPTY_MAP_CLASS},
    )
    doc.update(_auto_fields(instance))
    return doc


def _instance_xml(instance: Instance, status: str) -> ET.Element:
    root = ET.Element("instance")
    if instance.sent_instance_id is not None:
        _text(root, "instanceId", instance.sent_instance_id)
    _text(root, "hostName", instance.host_name)
    _text(root, "app", instance.app)
    _text(root, "ipAddr", instance.ip_addr)
    if "sid" in instance.optional:
        _text(root, "sid", instance.optional["sid"])
    _text(root, "status", status)
    _text(root, "overriddenstatus", instance.overridden_status)
    _port_xml(root, "port", instance.port)
    _port_xml(root, "securePort", instance.secure_port)
    _text(root, "countryId", str(instance.country_id))
    data_center = ET.SubElement(root, "dataCenterInfo", {"class": instance.data_center.class_name})
    _text(data_center, "name", instance.data_center.name)
    if instance.data_center.name == AMAZON:
        _map_xml(data_center, instance.data_center.metadata)
    lease = ET.SubElement(root, "leaseInfo")
    _text(lease, "renewalIntervalInSecs", str(instance.lease.renewal_interval_secs))
    _text(lease, "durationInSecs", str(instance.lease.duration_secs))
    _text(lease, "registrationTimestamp", str(instance.lease.registration_ts))
    _text(lease, "lastRenewalTimestamp", str(instance.lease.last_update_ts))
    _text(lease, "evictionTimestamp", "0")
    _text(lease, "serviceUpTimestamp", str(instance.lease.service_up_ts))
    _map_xml(root, instance.metadata)
    for name, value in _auto_fields(instance).items():
        _text(root, name, value)
    return root


def _auto_fields(instance: Instance) -> dict[str, str]:
    """Netflix's @Auto fields, written after the metadata (the optional ones only when set)."""
    fields = {name: value for name, value in instance.optional.items() if name != "sid"}
    fields["isCoordinatingDiscoveryServer"] = "false"  # true only for the server itself
    # Netflix writes these two timestamps as strings in JSON too.
    fields["lastUpdatedTimestamp"] = str(instance.last_updated_ts)
    fields["lastDirtyTimestamp"] = str(instance.last_dirty_ts)
    fields["actionType"] = instance.action_type
    return fields


def _port_json(port: Port) -> dict[str, Any]:
    return {"$": port.number, "@enabled": _bool_text(port.enabled)}


def _port_xml(parent: ET.Element, tag: str, port: Port) -> None:
    ET.SubElement(parent, tag, {"enabled": _bool_text(port.enabled)}).text = str(port.number)


def _map_xml(parent: ET.Element, values: dict[str, str]) -> None:
    element = ET.SubElement(parent, "metadata", {} if values else {"class": EMPTY_MAP_CLASS})
    for key, value in values.items():
        _text(element, xml_element_name(key), value)


def _text(parent: ET.Element, tag: str, value: str) -> None:
    ET.SubElement(parent, tag).text = value


def _bool_text(value: bool) -> str:
    return "true" if value else "false"
