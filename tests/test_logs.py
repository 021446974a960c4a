"""Log lines: one event per line, whatever a container's name or labels hold."""

from __future__ import annotations

import io
import logging

from shared import logs


def test_control_characters_in_a_message_are_escaped() -> None:
    stream = io.StringIO()
    logs.setup("watcher", "INFO")
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)
    logging.getLogger("test").error("container %s: label %s", "evil\nFAKE ERROR line", "\x1b[31mred")
    written = stream.getvalue()
    assert written.count("\n") == 1
    assert "evil\\x0aFAKE ERROR line" in written and "\\x1b[31mred" in written
