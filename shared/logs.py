"""Logging for every component: one line per event, level from -log-level, text or JSON from -log-format.

Text: control characters in a message (a newline or terminal escape inside a container name or label
value) are written as `\\xNN`, so one log line is always one event and nothing a container says can forge
another line or recolour a terminal. JSON (python-json-logger): one object per line, its strings escaped
by the JSON encoder, a traceback included as the `exc_info` string.

Lines about one container or instance carry what they are about as fields (`about()`): `host`,
`container` (name), `container_id` (12 characters), `instance` (APP/instance id). JSON shows them as
keys; text lines name them in the message.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from shared import keys

FORMAT = "%(asctime)s %(levelname)s %(component)s %(name)s: %(message)s"
JSON_FIELDS = "%(levelname)s %(component)s %(name)s %(message)s"
JSON_NAMES = {"levelname": "level", "name": "logger"}
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


def escape_control_characters(text: str) -> str:
    return CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_control_characters(record.message)
        return super().formatMessage(record)


def about(*, source: str | None = None, host: str | None = None, container_name: str | None = None,
          instance: str | None = None) -> dict[str, Any]:
    """The `extra` of a log call about a container (its source, or host and name) and/or an instance."""
    fields: dict[str, Any] = {}
    if source is not None:
        host, container_id = keys.split_source(source)
        fields["container_id"] = container_id[:12]
    if host is not None:
        fields["host"] = host
    if container_name:
        fields["container"] = container_name.lstrip("/")
    if instance is not None:
        fields["instance"] = instance
    return fields


def describe(source: str, container_name: str | None) -> str:
    """`container web-1 (0123456789ab) on host host-a`, for messages."""
    host, container_id = keys.split_source(source)
    return f"container {container_name.lstrip('/') if container_name else '?'} ({container_id[:12]}) on host {host}"


def about_instance(source: str, document: dict[str, Any] | None, instance: str) -> tuple[str, dict[str, Any]]:
    """The container behind an instance, named from its registration's metadata (the container may be gone),
    for a message (`describe`) and as log fields."""
    name = ((document or {}).get("metadata") or {}).get("container-name")
    return describe(source, name), about(source=source, container_name=name, instance=instance)


def setup(component: str, level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES, timestamp="time") if log_format == "json"
                         else OneLineFormatter(FORMAT))
    handler.addFilter(_CONTEXT)
    _CONTEXT.fields = {"component": component}
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # RQ logs every job start and end at INFO; keep that out of the way unless debugging.
    logging.getLogger("rq.worker").setLevel(max(logging.getLevelName(level), logging.WARNING))


def add_context(**fields: str) -> None:
    """Fields every later line of this process carries unless it sets them itself (the watcher's host)."""
    _CONTEXT.fields = {**_CONTEXT.fields, **fields}


class _ContextFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in self.fields.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


_CONTEXT = _ContextFilter()
