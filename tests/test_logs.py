"""Log lines: one event per line, whatever a container's name or labels hold."""

from __future__ import annotations

import io
import json
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


def test_json_lines_are_one_object_per_event_with_what_they_are_about() -> None:
    stream = io.StringIO()
    logs.setup("registrar", "INFO", "json")
    logging.getLogger().handlers[0].setStream(stream)
    logs.add_context(host="host-a")
    logging.getLogger("test").error("container %s: label %s", "evil\nFAKE ERROR line", "\x1b[31mred",
                                    extra=logs.about(source="host-b:" + "0123456789ab" * 5 + "cdef",
                                                     container_name="/web-1", instance="WEB/10.0.0.5_18080"))
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logging.getLogger("test").exception("failed")
    written = stream.getvalue()
    assert written.count("\n") == 2
    first, second = (json.loads(line) for line in written.splitlines())
    assert first["message"] == "container evil\nFAKE ERROR line: label \x1b[31mred"
    assert (first["level"], first["component"], first["logger"]) == ("ERROR", "registrar", "test")
    assert {key: first[key] for key in ("host", "container", "container_id", "instance")} == {
        "host": "host-b", "container": "web-1", "container_id": "0123456789ab", "instance": "WEB/10.0.0.5_18080"}
    assert second["host"] == "host-a" and "ValueError: boom\nsecond line" in second["exc_info"]
