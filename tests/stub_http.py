"""A loopback HTTP server that answers what a test tells it to, and records what it was asked.

For the answers a real server gives only when something is wrong: 5xx, 4xx, garbage, silence.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: str = ""
    delay: float = 0.0
    content_type: str = "application/json"


class StubServer:
    """Answers `answer` to every request, or per HTTP method from `by_method` where it has one."""

    def __init__(self, answer: Answer, by_method: dict[str, Answer] | None = None) -> None:
        self.answer = answer
        self.by_method = by_method or {}
        self.requests: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _respond(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                stub.requests.append(f"{self.command} {self.path}")
                answer = stub.by_method.get(self.command, stub.answer)
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
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/eureka"

    def __enter__(self) -> StubServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
