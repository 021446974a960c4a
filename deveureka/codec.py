"""Wire formats: registration bodies in, Netflix-shaped JSON and XML documents out.

The JSON shape is Netflix 1.10's Jackson codec, the XML shape its XStream converters.
XML is always built with ElementTree so every value is escaped.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from deveureka.instance import Instance, Port

Format = Literal["json", "xml"]

JSON_TYPE = "application/json"
XML_TYPE = "application/xml"
VERSIONS_DELTA = "1"


class UnreadableBody(ValueError):
    """The registration body does not parse (400)."""


class UnsupportedMediaType(ValueError):
    """The registration body is neither JSON nor XML (415)."""


def decode_registration(body: bytes, mimetype: str) -> Any:
    """The ``instance`` object of a registration body, XML turned into the JSON shape."""
    if mimetype == JSON_TYPE or mimetype.endswith("+json"):
        return _decode_json(body)
    if mimetype in (XML_TYPE, "text/xml") or mimetype.endswith("+xml"):
        return _decode_xml(body)
    raise UnsupportedMediaType(f"Content-Type must be {JSON_TYPE} or {XML_TYPE}; got {mimetype!r}")


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
    if fmt == "json":
        return json.dumps({"instance": _instance_json(instance)})
    return ET.tostring(_instance_xml(instance), encoding="unicode")


def _decode_json(body: bytes) -> Any:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnreadableBody(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("instance"), dict):
        raise UnreadableBody('JSON body must be {"instance": {...}}')
    return doc["instance"]


def _decode_xml(body: bytes) -> dict[str, Any]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise UnreadableBody(f"body is not well-formed XML: {exc}") from None
    if root.tag != "instance":
        raise UnreadableBody(f"XML body must have root <instance>, not <{root.tag}>")
    doc: dict[str, Any] = {}
    for child in root:
        if child.tag in ("port", "securePort"):
            doc[child.tag] = {"$": _inner(child), "@enabled": child.get("enabled")}
        elif child.tag == "dataCenterInfo":
            data_center: dict[str, Any] = {"@class": child.get("class")}
            for part in child:
                data_center[part.tag] = _children(part) if part.tag == "metadata" else _inner(part)
            doc["dataCenterInfo"] = data_center
        elif child.tag in ("leaseInfo", "metadata"):
            doc[child.tag] = _children(child)
        else:
            doc[child.tag] = _inner(child)
    return doc


def _inner(element: ET.Element) -> str:
    return element.text or ""


def _children(element: ET.Element) -> dict[str, str]:
    return {child.tag: child.text or "" for child in element}


def _application_json(name: str, instances: list[Instance]) -> dict[str, Any]:
    return {"name": name, "instance": [_instance_json(instance) for instance in instances]}


def _application_xml(name: str, instances: list[Instance]) -> ET.Element:
    element = ET.Element("application")
    _text(element, "name", name)
    for instance in instances:
        element.append(_instance_xml(instance))
    return element


def _instance_json(instance: Instance) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "instanceId": instance.instance_id,
        "hostName": instance.host_name,
        "app": instance.app,
        "ipAddr": instance.ip_addr,
        "status": instance.status,
        "overriddenStatus": instance.overridden_status,
        "port": _port_json(instance.port),
        "securePort": _port_json(instance.secure_port),
        "countryId": instance.country_id,
        "dataCenterInfo": {
            "@class": instance.data_center.class_name,
            "name": instance.data_center.name,
        },
        "leaseInfo": {
            "renewalIntervalInSecs": instance.lease.renewal_interval_secs,
            "durationInSecs": instance.lease.duration_secs,
            "registrationTimestamp": instance.lease.registration_ts,
            "lastRenewalTimestamp": instance.lease.last_renewal_ts,
            "evictionTimestamp": 0,
            "serviceUpTimestamp": instance.lease.service_up_ts,
        },
        "metadata": dict(instance.metadata),
    }
    if instance.data_center.metadata:
        doc["dataCenterInfo"]["metadata"] = dict(instance.data_center.metadata)
    doc["vipAddress"] = instance.vip_address
    doc.update(instance.optional)
    doc["isCoordinatingDiscoveryServer"] = _bool_text(instance.is_coordinating_discovery_server)
    # Netflix writes these two timestamps as strings in JSON.
    doc["lastUpdatedTimestamp"] = str(instance.last_updated_ts)
    doc["lastDirtyTimestamp"] = str(instance.last_dirty_ts)
    doc["actionType"] = instance.action_type
    return doc


def _instance_xml(instance: Instance) -> ET.Element:
    root = ET.Element("instance")
    _text(root, "instanceId", instance.instance_id)
    _text(root, "hostName", instance.host_name)
    _text(root, "app", instance.app)
    _text(root, "ipAddr", instance.ip_addr)
    _text(root, "status", instance.status)
    _text(root, "overriddenstatus", instance.overridden_status)
    _port_xml(root, "port", instance.port)
    _port_xml(root, "securePort", instance.secure_port)
    _text(root, "countryId", str(instance.country_id))
    data_center = ET.SubElement(root, "dataCenterInfo", {"class": instance.data_center.class_name})
    _text(data_center, "name", instance.data_center.name)
    if instance.data_center.metadata:
        _map_xml(data_center, "metadata", instance.data_center.metadata)
    lease = ET.SubElement(root, "leaseInfo")
    _text(lease, "renewalIntervalInSecs", str(instance.lease.renewal_interval_secs))
    _text(lease, "durationInSecs", str(instance.lease.duration_secs))
    _text(lease, "registrationTimestamp", str(instance.lease.registration_ts))
    _text(lease, "lastRenewalTimestamp", str(instance.lease.last_renewal_ts))
    _text(lease, "evictionTimestamp", "0")
    _text(lease, "serviceUpTimestamp", str(instance.lease.service_up_ts))
    _map_xml(root, "metadata", instance.metadata)
    _text(root, "vipAddress", instance.vip_address)
    for name, value in instance.optional.items():
        _text(root, name, value)
    _text(
        root, "isCoordinatingDiscoveryServer", _bool_text(instance.is_coordinating_discovery_server)
    )
    _text(root, "lastUpdatedTimestamp", str(instance.last_updated_ts))
    _text(root, "lastDirtyTimestamp", str(instance.last_dirty_ts))
    _text(root, "actionType", instance.action_type)
    return root


def _port_json(port: Port) -> dict[str, Any]:
    return {"$": port.number, "@enabled": _bool_text(port.enabled)}


def _port_xml(parent: ET.Element, tag: str, port: Port) -> None:
    ET.SubElement(parent, tag, {"enabled": _bool_text(port.enabled)}).text = str(port.number)


def _map_xml(parent: ET.Element, tag: str, values: dict[str, str]) -> None:
    element = ET.SubElement(parent, tag)
    for key, value in values.items():
        _text(element, key, value)


def _text(parent: ET.Element, tag: str, value: str) -> None:
    ET.SubElement(parent, tag).text = value


def _bool_text(value: bool) -> str:
    return "true" if value else "false"
