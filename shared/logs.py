"""Logging for every component: one line per event, level from LOG_LEVEL.

Control characters in a message (a newline or terminal escape inside a container name or label value)
are written as `\\xNN`, so one log line is always one event and nothing a container says can forge
another line or recolour a terminal.
"""

from __future__ import annotations

import logging
import re
import sys

FORMAT = "%(asctime)s %(levelname)s %(component)s %(name)s: %(message)s"
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


def escape_control_characters(text: str) -> str:
    return CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_control_characters(record.message)
        return super().formatMessage(record)


def setup(component: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(FORMAT))
    handler.addFilter(_ComponentFilter(component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # RQ logs every job start and end at INFO; keep that out of the way unless debugging.
    logging.getLogger("rq.worker").setLevel(max(logging.getLevelName(level), logging.WARNING))


class _ComponentFilter(logging.Filter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def filter(self, record: logging.LogRecord) -> bool:
        record.component = self.component
        return True
