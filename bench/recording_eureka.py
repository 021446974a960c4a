"""`python -m bench.recording_eureka`: a loopback Eureka that only records when each request arrived.

The benchmark's clock stops when a request reaches Eureka, so this server must not be what is slow. It
is one asyncio process with a hand-written HTTP/1.1 `Protocol` (keep-alive, `Content-Length` bodies, no
framework): a request costs it a few tens of microseconds. It keeps no registry and answers what a
Eureka server answers to a client that is right: 204 to a registration, 200 to a heartbeat, a status
change or a deletion, an empty application list to `GET /eureka/apps`, 404 to a read of one instance.

Each request is recorded as (arrival, method, path): arrival is the wall clock (`time.time_ns()`, the clock
of Docker's `timeNano`) when its first bytes were read. The bench reads them at `GET /bench/records?from=N`
(JSON: `{"records": [[ns, method, path], ...], "service_ns": [p50, p99, max]}`); those control requests
are not recorded. `service_ns` is this server's own time per request, from reading it to writing the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import parse_qs, urlsplit

EMPTY_APPLICATIONS = json.dumps({"applications": {"versions__delta": "1", "apps__hashcode": "",
                                                  "application": []}}).encode()
REASONS = {200: b"OK", 204: b"No Content", 400: b"Bad Request", 404: b"Not Found"}
MAX_HEADER_BYTES = 65536


def response(status: int, body: bytes = b"", content_type: bytes = b"application/json") -> bytes:
    head = b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n" % (status, REASONS[status], len(body))
    if body:
        head += b"Content-Type: " + content_type + b"\r\n"
    return head + b"\r\n" + body


NO_CONTENT = response(204)
OK = response(200)
NOT_FOUND = response(404)
APPLICATIONS = response(200, EMPTY_APPLICATIONS)


def eureka_answer(method: str, path: str) -> bytes:
    """What Eureka answers a well-formed client request (paths under /eureka/apps)."""
    if method == "POST":
        return NO_CONTENT
    if method == "GET":
        return APPLICATIONS if path.rstrip("/").endswith("/apps") else NOT_FOUND
    return OK


class Recorder:
    def __init__(self) -> None:
        self.records: list[tuple[int, str, str]] = []
        self.service_ns: list[int] = []

    def control(self, target: str) -> bytes:
        parts = urlsplit(target)
        if parts.path != "/bench/records":
            return NOT_FOUND
        start = int(parse_qs(parts.query).get("from", ["0"])[0])
        ordered = sorted(self.service_ns)
        summary = [ordered[len(ordered) // 2], ordered[len(ordered) * 99 // 100], ordered[-1]] if ordered else []
        body = json.dumps({"records": self.records[start:], "service_ns": summary}).encode()
        return response(200, body)


class HttpConnection(asyncio.Protocol):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        arrival = time.time_ns()
        started = time.perf_counter_ns()
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    self._fail()
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            try:
                method, target, _ = head[0].split(" ", 2)
            except ValueError:
                self._fail()
                return
            assert self.transport is not None
            if target.startswith("/bench/"):
                self.transport.write(self.recorder.control(target))
                continue
            path = target.partition("?")[0]
            self.recorder.records.append((arrival, method, path))
            self.transport.write(eureka_answer(method, path))
            self.recorder.service_ns.append(time.perf_counter_ns() - started)
            started = time.perf_counter_ns()

    def _fail(self) -> None:
        assert self.transport is not None
        self.transport.write(response(400))
        self.transport.close()


async def serve(host: str, port: int) -> None:
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpConnection(recorder), host, port, reuse_address=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="recording_eureka")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
