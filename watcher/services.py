"""From a container's inspect document to its service records: registrator's rules (SPEC section 3).

Pure functions: no Docker, no Redis, no clock. The watcher gathers what they need (the inspect document,
the host IP its hostname resolves to, the IP of the container whose network a container shares) and
logs the problems they report. A bad label costs only what it touches: the rest of that container's
services, and every other container, are unaffected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from shared.config import parse_bool
from shared.models import ServiceRecord

PREFIX = "SERVICE_"
ECS_LABEL_MARK = "com.amazonaws.ecs"
MAX_VALUE_LENGTH = 4096
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
WILDCARD_HOST_IPS = ("", "0.0.0.0", "::")
DEFAULT_NETWORK_MODES = ("bridge", "default", "host", "")


@dataclass(frozen=True)
class Rules:
    """The watcher flags that shape service records."""

    hostname: str
    forced_ip: str | None = None
    internal: bool = False
    use_ip_from_label: str | None = None
    tags: str = ""
    require_label: bool = False
    name_from_image: bool = False


@dataclass(frozen=True)
class Derivation:
    services: tuple[ServiceRecord, ...]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class _Port:
    exposed_port: str
    protocol: str
    host_port: str
    host_ip: str
    exposed_ip: str


@dataclass(frozen=True)
class _Setting:
    value: str
    origin: str  # "label SERVICE_X" or "env SERVICE_X", for messages


class _Problems:
    def __init__(self, container_label: str) -> None:
        self.container_label = container_label
        self.items: list[str] = []

    def add(self, culprit: str, reason: str) -> None:
        item = f"container {self.container_label}: {culprit}: {reason}"
        if item not in self.items:
            self.items.append(item)


def split_tags(raw: str) -> list[str]:
    """Split a comma-separated tag list where `\\,` is a literal comma."""
    tags, current, escaped = [], [], False
    for char in raw:
        if escaped:
            current.append(char if char == "," else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            tags.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    tags.append("".join(current))
    return [tag for tag in tags if tag]


def service_settings(labels: Mapping[str, str], env: list[str]) -> dict[str, _Setting]:
    """Every `SERVICE_*` setting of a container, keyed by its name; environment wins over labels."""
    settings = {key: _Setting(value, f"label {key}") for key, value in labels.items() if key.startswith(PREFIX)}
    for entry in env:
        key, sep, value = entry.partition("=")
        if sep and key.startswith(PREFIX):
            settings[key] = _Setting(value, f"env {key}")
    return settings


def port_attributes(settings: Mapping[str, _Setting], exposed_port: str,
                    problems: _Problems) -> tuple[dict[str, _Setting], set[str]]:
    """Attributes for one port: `SERVICE_<KEY>`, overridden by `SERVICE_<port>_<KEY>`; keys lower-cased.

    Returns the attributes and the set of keys that came from the port-specific form.
    """
    general: dict[str, _Setting] = {}
    specific: dict[str, _Setting] = {}
    for name, setting in settings.items():
        key = name[len(PREFIX):].lower()
        head, sep, rest = key.partition("_")
        if head[:1].isdigit() and sep and rest:
            if not head.isdigit():
                problems.add(setting.origin, f"port {head!r} is not a number; setting ignored")
            elif int(head) == int(exposed_port):
                specific[rest] = setting
        elif key:
            general[key] = setting
    return {**general, **specific}, set(specific)


def _bool_attr(attrs: Mapping[str, _Setting], key: str, problems: _Problems, *, when_invalid: bool) -> bool | None:
    setting = attrs.get(key)
    if setting is None or setting.value == "":
        return None
    try:
        return parse_bool(setting.value)
    except ValueError:
        problems.add(setting.origin, f"{setting.value!r} is not a boolean; treated as {str(when_invalid).lower()}")
        return when_invalid


def _container_ip(container: Mapping[str, Any]) -> str:
    network_settings = container.get("NetworkSettings") or {}
    ip = network_settings.get("IPAddress") or ""
    if not ip:
        for network in (network_settings.get("Networks") or {}).values():
            ip = (network or {}).get("IPAddress") or ip
    return ip


def _ports(container: Mapping[str, Any]) -> list[_Port]:
    """Exposed ports (as if published on the same host port, which is what host networking does),
    replaced by the daemon's runtime bindings where it has any."""
    config = container.get("Config") or {}
    network_settings = container.get("NetworkSettings") or {}
    network_mode = (container.get("HostConfig") or {}).get("NetworkMode") or ""
    bindings: dict[str, list[Mapping[str, str]]] = {}
    for spec in config.get("ExposedPorts") or {}:
        bindings[spec] = [{"HostIp": "0.0.0.0", "HostPort": spec.partition("/")[0]}]
    for spec, published in (network_settings.get("Ports") or {}).items():
        bindings[spec] = list(published or [])
    exposed_ip = _container_ip(container)
    ports = []
    for spec, published in bindings.items():
        number, _, protocol = spec.partition("/")
        host_port = published[0].get("HostPort", "") if published else ""
        host_ip = published[0].get("HostIp", "") if published else ""
        if network_mode not in DEFAULT_NETWORK_MODES and not network_mode.startswith("container:"):
            network = (network_settings.get("Networks") or {}).get(network_mode) or {}
            host_ip = network.get("IPAddress") or ""
        ports.append(_Port(number, protocol or "tcp", host_port or "", host_ip, exposed_ip))
    return sorted(ports, key=lambda port: (int(port.exposed_port), port.protocol))


def _image_base_name(image: str) -> str:
    base = image.rsplit("/", 1)[-1]
    return base.split("@", 1)[0].split(":", 1)[0]


def derive_services(container: Mapping[str, Any], rules: Rules, resolved_host_ip: str | None,
                    network_container_ip: str | None = None) -> Derivation:
    """The service records registrator would make for this container, and every problem met.

    `resolved_host_ip` is what the host's name resolves to (used for ports bound to all interfaces);
    `network_container_ip` is the IP of the container named by a `container:<id>` network mode.
    """
    container_id = container["Id"]
    container_name = container.get("Name") or f"/{container_id[:12]}"
    problems = _Problems(f"{container_name.lstrip('/')} ({container_id[:12]})")
    config = container.get("Config") or {}
    labels = config.get("Labels") or {}
    settings = service_settings(labels, config.get("Env") or [])
    for name, setting in list(settings.items()):
        if len(setting.value) > MAX_VALUE_LENGTH:
            problems.add(setting.origin, f"value is {len(setting.value)} characters, over {MAX_VALUE_LENGTH}; ignored")
            del settings[name]

    container_wide, _ = port_attributes(settings, "0", problems)
    use_exposed = _bool_attr(container_wide, "use_exposed_ports", problems, when_invalid=False) or False
    candidates = [port for port in _ports(container) if rules.internal or use_exposed or port.host_port]
    is_group = len(candidates) > 1

    services = []
    for port in candidates:
        record = _service(container, port, settings, rules, resolved_host_ip, network_container_ip,
                          is_group, use_exposed, problems)
        if record is not None:
            services.append(record)
    return Derivation(tuple(services), tuple(problems.items))


def _service(container: Mapping[str, Any], port: _Port, settings: Mapping[str, _Setting], rules: Rules,
             resolved_host_ip: str | None, network_container_ip: str | None, is_group: bool, use_exposed: bool,
             problems: _Problems) -> ServiceRecord | None:
    attrs, from_port = port_attributes(settings, port.exposed_port, problems)
    if _bool_attr(attrs, "ignore", problems, when_invalid=True):
        return None
    if rules.require_label and not _bool_attr(attrs, "register", problems, when_invalid=False):
        return None

    config = container.get("Config") or {}
    name_setting = attrs.get("name")
    if name_setting is not None and name_setting.value != "":
        name = name_setting.value
        if not NAME_PATTERN.match(name):
            problems.add(name_setting.origin, f"{name!r} is not a valid service name "
                                              "(letters, digits, '.', '_', '-'); port not registered")
            return None
    elif rules.name_from_image:
        name = _image_base_name(config.get("Image") or "")
    else:
        return None
    if is_group and "name" not in from_port:
        name = f"{name}-{port.exposed_port}"

    host_ip = rules.forced_ip or port.host_ip
    if host_ip in WILDCARD_HOST_IPS:
        if resolved_host_ip is None:
            problems.add(f"port {port.exposed_port}", f"bound to all interfaces, but hostname {rules.hostname!r} "
                                                      "does not resolve to an IP; set -ip; port not registered")
            return None
        host_ip = resolved_host_ip

    ip = port.exposed_ip if rules.internal else host_ip
    number = port.exposed_port if rules.internal or use_exposed else port.host_port
    if rules.use_ip_from_label:
        labelled_ip = (config.get("Labels") or {}).get(rules.use_ip_from_label, "")
        if labelled_ip:
            ip = labelled_ip.rsplit("/", 1)[0] if "/" in labelled_ip else labelled_ip
    network_mode = (container.get("HostConfig") or {}).get("NetworkMode") or ""
    if network_mode.startswith("container:") and network_container_ip:
        ip = network_container_ip

    container_name = container.get("Name") or ""
    service_id = f"{rules.hostname}:{container_name.lstrip('/')}:{port.exposed_port}"
    tags = split_tags(attrs["tags"].value) if "tags" in attrs else []
    tags += split_tags(rules.tags)
    if port.protocol == "udp":
        tags.append("udp")
        service_id += ":udp"
    if attrs.get("id") is not None and attrs["id"].value:
        service_id = attrs["id"].value

    plain_attrs = {key: setting.value for key, setting in attrs.items() if key not in ("id", "tags", "name")}
    for key, value in (config.get("Labels") or {}).items():
        if ECS_LABEL_MARK in key:
            plain_attrs[key] = value
    return ServiceRecord(
        service_id=service_id,
        name=name,
        ip=ip,
        port=int(number),
        exposed_port=int(port.exposed_port),
        protocol="udp" if port.protocol == "udp" else "tcp",
        host_ip=host_ip,
        tags=tuple(tags),
        attrs=plain_attrs,
        container_id=container["Id"],
        container_name=container_name,
    )
