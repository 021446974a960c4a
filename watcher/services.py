"""From a container's inspect document to its service records: registrator's rules (SPEC section 3).

Pure functions: no Docker, no Redis, no clock. The watcher gathers what they need (the inspect document,
the host IP its hostname resolves to, the inspect document of the container whose network a container
shares) and logs the problems they report. A bad label costs only what it touches: the rest of that
container's services, and every other container, are unaffected.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from shared import defaults
from shared.config import parse_bool
from shared.registration import is_xml_text
from shared.models import ServiceRecord

PREFIX = "SERVICE_"
ECS_LABEL_MARK = "com.amazonaws.ecs"
MAX_KEY_LENGTH = 256
MAX_VALUE_LENGTH = 4096
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
WILDCARD_HOST_IPS = ("", "0.0.0.0", "::")
# Network modes whose published ports are reached on the host's IP; any other mode names a
# user-defined network, whose IP the container's ports get.
HOST_IP_NETWORK_MODES = ("bridge", "default", "host", "")
NO_NETWORK_MODE = "none"
CONTAINER_NETWORK_PREFIX = "container:"
# Bytes that were not UTF-8: lone surrogates (as Python decodes them) or U+FFFD (what Docker puts in their place).
NOT_UTF8 = re.compile("[\ud800-\udfff\ufffd]")


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
    exposed_port: int
    protocol: str
    host_port: str
    host_ip: str


@dataclass(frozen=True)
class _Setting:
    value: str
    origin: str  # "label SERVICE_X" or "env SERVICE_X", for messages


@dataclass(frozen=True)
class _Attributes:
    """A container's `SERVICE_<KEY>` settings and its `SERVICE_<port>_<KEY>` ones, keys lower-cased."""

    general: dict[str, _Setting] = field(default_factory=dict)
    per_port: dict[int, dict[str, _Setting]] = field(default_factory=dict)

    def for_port(self, port: int) -> tuple[dict[str, _Setting], frozenset[str]]:
        """The attributes of one port (the port-specific form wins) and the keys set port-specifically."""
        specific = self.per_port.get(port, {})
        return {**self.general, **specific}, frozenset(specific)


class _Problems:
    def __init__(self, container_label: str) -> None:
        self.container_label = container_label
        self.items: list[str] = []

    def add(self, culprit: str, reason: str) -> None:
        item = f"container {self.container_label}: {culprit}: {reason}"
        if item not in self.items:
            self.items.append(item)


def _shown(name: str) -> str:
    """A label or variable name as it can safely be logged: quoted and escaped when not printable."""
    return name if name.isprintable() else repr(name)


def _unfit_text(text: str, *, max_length: int) -> str | None:
    """Why `text` cannot be sent on to Eureka, or None when it can."""
    if len(text) > max_length:
        return f"{len(text)} characters, over {max_length}"
    if NOT_UTF8.search(text):
        return "not valid UTF-8"
    if not is_xml_text(text):
        return "contains control characters"
    return None


def split_tags(raw: str) -> list[str]:
    """Split a comma-separated tag list where `\\,` is a literal comma; empty tags are dropped."""
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
    settings = {key: _Setting(value, f"label {_shown(key)}") for key, value in labels.items()
                if key.startswith(PREFIX)}
    for entry in env:
        key, sep, value = entry.partition("=")
        if sep and key.startswith(PREFIX):
            settings[key] = _Setting(value, f"env {_shown(key)}")
    return settings


def container_attributes(settings: Mapping[str, _Setting], problems: _Problems) -> _Attributes:
    """Sort settings into container-wide and port-specific attributes; unusable ones are reported and
    left out."""
    attributes = _Attributes()
    for name, setting in sorted(settings.items()):
        reason = _unfit_text(name, max_length=MAX_KEY_LENGTH) or _unfit_text(setting.value,
                                                                             max_length=MAX_VALUE_LENGTH)
        if reason:
            problems.add(setting.origin, f"{reason}; ignored")
            continue
        key = name[len(PREFIX):].lower()
        head, _, rest = key.partition("_")
        if not key:
            problems.add(setting.origin, "no attribute name after SERVICE_; ignored")
        elif head[:1].isdigit():
            if not head.isdigit() or not rest:
                problems.add(setting.origin, "expected SERVICE_<port>_<KEY> with a numeric port; ignored")
            else:
                attributes.per_port.setdefault(int(head), {})[rest] = setting
        else:
            attributes.general[key] = setting
    return attributes


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
    """The container's own IP: on the default bridge, else on one of its networks ('' with none)."""
    network_settings = container.get("NetworkSettings") or {}
    ip = network_settings.get("IPAddress") or ""
    if not ip:
        for network in (network_settings.get("Networks") or {}).values():
            ip = (network or {}).get("IPAddress") or ip
    return ip


def network_mode(container: Mapping[str, Any]) -> str:
    return (container.get("HostConfig") or {}).get("NetworkMode") or ""


def _ports(container: Mapping[str, Any]) -> list[_Port]:
    """Exposed ports (as if published on the same host port, which is what host networking does),
    replaced by the daemon's runtime bindings where it has any."""
    mode = network_mode(container)
    if mode == NO_NETWORK_MODE:
        return []
    network_settings = container.get("NetworkSettings") or {}
    bindings: dict[str, list[Mapping[str, str]]] = {}
    for spec in (container.get("Config") or {}).get("ExposedPorts") or {}:
        bindings[spec] = [{"HostIp": "0.0.0.0", "HostPort": spec.partition("/")[0]}]
    for spec, published in (network_settings.get("Ports") or {}).items():
        bindings[spec] = list(published or [])
    user_network_ip = None
    if mode not in HOST_IP_NETWORK_MODES and not mode.startswith(CONTAINER_NETWORK_PREFIX):
        user_network_ip = ((network_settings.get("Networks") or {}).get(mode) or {}).get("IPAddress") or ""
    ports = []
    for spec, published in bindings.items():
        number, _, protocol = spec.partition("/")
        first = published[0] if published else {}
        host_ip = first.get("HostIp", "") if user_network_ip is None else user_network_ip
        ports.append(_Port(int(number), protocol or "tcp", first.get("HostPort", "") or "", host_ip))
    return sorted(ports, key=lambda port: (port.exposed_port, port.protocol))


def _image_base_name(image: str) -> str:
    base = image.rsplit("/", 1)[-1]
    return base.split("@", 1)[0].split(":", 1)[0]


@dataclass(frozen=True)
class _ContainerFacts:
    """What every port of one container shares."""

    document: Mapping[str, Any]
    attributes: _Attributes
    own_ip: str
    ip_override: str | None  # from the network-owning container, or from the -useIpFromLabel label
    ecs_attrs: dict[str, str]


def derive_services(container: Mapping[str, Any], rules: Rules, resolved_host_ip: str | None,
                    network_container: Mapping[str, Any] | None = None) -> Derivation:
    """The service records registrator would make for this container, and every problem met.

    `resolved_host_ip` is what the host's name resolves to (used for ports bound to all interfaces);
    `network_container` is the inspect document of the container named by a `container:<id>` network
    mode (None when it could not be inspected).
    """
    container_id = container["Id"]
    container_name = container.get("Name") or f"/{container_id[:12]}"
    problems = _Problems(f"{container_name.lstrip('/')} ({container_id[:12]})")
    config = container.get("Config") or {}
    labels = config.get("Labels") or {}
    attributes = container_attributes(service_settings(labels, config.get("Env") or []), problems)

    ip_override = _labelled_ip(labels, rules.use_ip_from_label, problems)
    mode = network_mode(container)
    if mode.startswith(CONTAINER_NETWORK_PREFIX):
        if network_container is None:
            problems.add(f"network mode {mode[:len(CONTAINER_NETWORK_PREFIX) + 12]}",
                         "the container whose network it shares cannot be inspected; not registered")
            return Derivation((), tuple(problems.items))
        # A container on the host's network has no IP of its own: the host IP below applies.
        ip_override = _container_ip(network_container) or ip_override
    facts = _ContainerFacts(container, attributes, _container_ip(container), ip_override,
                            _ecs_attrs(labels, problems))

    candidates = []
    for port in _ports(container):
        attrs, from_port = attributes.for_port(port.exposed_port)
        use_exposed = bool(_bool_attr(attrs, "use_exposed_ports", problems, when_invalid=False))
        if rules.internal or use_exposed or port.host_port:
            candidates.append((port, attrs, from_port, use_exposed))
    services = []
    for port, attrs, from_port, use_exposed in candidates:
        record = _service(facts, port, attrs, from_port, use_exposed, rules, resolved_host_ip,
                          is_group=len(candidates) > 1, problems=problems)
        if record is not None:
            services.append(record)
    if len(services) > defaults.MAX_SERVICES_PER_CONTAINER:
        left_out = services[defaults.MAX_SERVICES_PER_CONTAINER:]
        problems.add("ports", f"{len(services)} services, over the limit of {defaults.MAX_SERVICES_PER_CONTAINER}; "
                              f"ports {left_out[0].exposed_port} to {left_out[-1].exposed_port} not registered")
        services = services[:defaults.MAX_SERVICES_PER_CONTAINER]
    return Derivation(tuple(services), tuple(problems.items))


def _labelled_ip(labels: Mapping[str, str], label: str | None, problems: _Problems) -> str | None:
    """The IP in the label named by -useIpFromLabel, without a CIDR suffix (None when absent or bad)."""
    raw = labels.get(label, "") if label else ""
    if not raw:
        return None
    candidate = raw.rpartition("/")[0] if "/" in raw else raw
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        problems.add(f"label {_shown(label or '')}", f"{raw!r} is not an IP address; ignored")
        return None


def _ecs_attrs(labels: Mapping[str, str], problems: _Problems) -> dict[str, str]:
    attrs = {}
    for key, value in labels.items():
        if ECS_LABEL_MARK not in key:
            continue
        reason = _unfit_text(key, max_length=MAX_KEY_LENGTH) or _unfit_text(value, max_length=MAX_VALUE_LENGTH)
        if reason:
            problems.add(f"label {_shown(key)}", f"{reason}; ignored")
        else:
            attrs[key] = value
    return attrs


def _service(facts: _ContainerFacts, port: _Port, attrs: Mapping[str, _Setting], from_port: frozenset[str],
             use_exposed: bool, rules: Rules, resolved_host_ip: str | None, *, is_group: bool,
             problems: _Problems) -> ServiceRecord | None:
    document = facts.document
    if _bool_attr(attrs, "ignore", problems, when_invalid=True):
        return None
    if rules.require_label and not _bool_attr(attrs, "register", problems, when_invalid=False):
        return None
    name = _name(attrs, (document.get("Config") or {}).get("Image") or "", rules, problems)
    if name is None:
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
    # A container without an IP of its own (host networking) is reached on the host's IP.
    ip = (facts.own_ip or host_ip) if rules.internal else host_ip
    ip = facts.ip_override or ip
    number = port.exposed_port if rules.internal or use_exposed else int(port.host_port)

    container_name = document.get("Name") or ""
    service_id = f"{rules.hostname}:{container_name.lstrip('/')}:{port.exposed_port}"
    tags = split_tags(attrs["tags"].value) if "tags" in attrs else []
    tags += split_tags(rules.tags)
    if port.protocol == "udp":
        tags.append("udp")
        service_id += ":udp"
    if "id" in attrs and attrs["id"].value:
        service_id = attrs["id"].value

    plain_attrs = {key: setting.value for key, setting in attrs.items() if key not in ("id", "tags", "name")}
    plain_attrs.update(facts.ecs_attrs)
    return ServiceRecord(
        service_id=service_id,
        name=name,
        ip=ip,
        port=number,
        exposed_port=port.exposed_port,
        protocol="udp" if port.protocol == "udp" else "tcp",
        host_ip=host_ip,
        tags=tuple(tags),
        attrs=plain_attrs,
        container_id=document["Id"],
        container_name=container_name,
    )


def _name(attrs: Mapping[str, _Setting], image: str, rules: Rules, problems: _Problems) -> str | None:
    """The service name: `SERVICE_NAME`, else (with -name-from-image) the image's base name, else None:
    the port is not registered."""
    setting = attrs.get("name")
    if setting is not None and setting.value:
        if NAME_PATTERN.match(setting.value):
            return setting.value
        problems.add(setting.origin, f"{setting.value!r} is not a valid service name "
                                     "(letters, digits, '.', '_', '-'); port not registered")
        return None
    if setting is not None:
        fallback = "using the image name" if rules.name_from_image else "port not registered"
        problems.add(setting.origin, f"empty service name; {fallback}")
    if not rules.name_from_image:
        return None
    name = _image_base_name(image)
    if not NAME_PATTERN.match(name):
        problems.add("image", f"{image!r} gives no valid service name; port not registered")
        return None
    return name
