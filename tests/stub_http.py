"""Loopback HTTP servers that stand in for what cannot run here, and record what they were asked.

`StubServer` answers what a test tells it to: the answers a real server gives only when something is
wrong (5xx, 4xx, garbage, silence).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping


@dataclass
class Answer:
    status: int = 200
    body: str = ""
    delay: float = 0.0
    content_type: str = "application/json"


class LoopbackServer:
    """An HTTP/1.1 server on 127.0.0.1, in a background thread while used as a context manager; each
    request is recorded as "METHOD /path" and answered by `answer`."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _respond(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append(f"{self.command} {self.path}")
                answer = server.answer_request(self.command, self.path, self.headers, body)
                if answer.delay:
                    time.sleep(answer.delay)
                payload = answer.body.encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = _respond  # noqa: N815 - http.server's naming

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        raise NotImplementedError

    def answer_request(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """What `answer` says; a stand-in that reads request bodies overrides this instead."""
        return self.answer(method, path, headers)

    def __enter__(self) -> LoopbackServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class StubServer(LoopbackServer):
    """A Eureka stand-in at `url`: answers `default` to every request, or per HTTP method from `by_method`."""

    def __init__(self, default: Answer, by_method: dict[str, Answer] | None = None) -> None:
        super().__init__()
        self.default = default
        self.by_method = by_method or {}
        self.url = f"{self.base_url}/eureka"

    def answer(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        return self.by_method.get(method, self.default)

    def __enter__(self) -> StubServer:
        super().__enter__()
        return self
