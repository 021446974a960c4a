"""Fault injection between the components and what they talk to: proxies that forward faithfully until told
to misbehave.

- `DockerProxy`: a unix socket in front of the private dockerd. It can stall the event streams open at the
  moment (no error, no events: the connection stays open and silent) and make container inspects fail.
- `EurekaProxy`: an HTTP server in front of the dev Eureka. It can answer chosen requests with a status of
  its choice (500, 401 ...) or answer them only after a delay.

Both relay one request per connection (`Connection: close` upstream), which every HTTP client copes with.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HEAD_END = b"\r\n\r\n"


def _read_request(client: socket.socket) -> tuple[bytes, bytes] | None:
    """The request head (with `Connection: close`) and body, or None when the client closed first."""
    data = b""
    while HEAD_END not in data:
        chunk = client.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(HEAD_END)
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        chunk = client.recv(65536)
        if not chunk:
            break
        body += chunk
    head = re.sub(rb"(?im)^connection:[^\r\n]*\r\n?", b"", head).rstrip(b"\r\n") + b"\r\nConnection: close"
    return head + HEAD_END, body


def request_line(head: bytes) -> tuple[str, str]:
    method, path = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
    return method, path


def _answer(client: socket.socket, status: int, body: bytes = b"") -> None:
    client.sendall(f"HTTP/1.1 {status} Injected\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                   f"Connection: close\r\n\r\n".encode() + body)


class _Proxy:
    """Accepts connections on `listener`, handles each in a thread with `handle`."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self._closed = threading.Event()

    def start(self) -> _Proxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            with client:
                request = _read_request(client)
                if request is not None:
                    self.handle(client, *request)
        except OSError:
            pass

    def handle(self, client: socket.socket, head: bytes, body: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._closed.set()
        self.listener.close()


class DockerProxy(_Proxy):
    """`host` is the DOCKER_HOST to give the watcher."""

    def __init__(self, directory: Path, upstream_host: str) -> None:
        self.path = directory / "proxy.sock"
        self.upstream = upstream_host.removeprefix("unix://")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(self.path))
        listener.listen(64)
        super().__init__(listener)
        self.host = f"unix://{self.path}"
        self.failing_inspects = False
        self._streams: list[threading.Event] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def go_away(self) -> None:
        """As if the daemon died: no connection is accepted any more, and every open one is cut."""
        # Closing alone would not stop an accept() already waiting in another thread: it still takes the next
        # connection. A listening socket that is shut down refuses it.
        self.listener.shutdown(socket.SHUT_RDWR)
        self.close()
        with self._lock:
            for connection in self._open:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stall_event_streams(self) -> None:
        """Every event stream open now goes silent (stays open, forwards nothing more); new ones work."""
        with self._lock:
            for stalled in self._streams:
                stalled.set()

    def open_event_streams(self) -> int:
        with self._lock:
            return sum(not stalled.is_set() for stalled in self._streams)

    def handle(self, client: socket.socket, head: bytes, body: bytes) -> None:
        method, path = request_line(head)
        if self.failing_inspects and method == "GET" and re.match(r"^(/v[\d.]+)?/containers/[0-9a-f]+/json", path):
            _answer(client, 500, b'{"message": "injected: the daemon did not answer in time"}')
            return
        stalled = threading.Event()
        is_events = "/events" in path
        with self._lock:
            self._open.add(client)
            if is_events:
                self._streams.append(stalled)
        try:
            with socket.socket(socket.AF_UNIX) as upstream:
                upstream.connect(self.upstream)
                upstream.sendall(head + body)
                while chunk := upstream.recv(65536):
                    if not stalled.is_set():
                        client.sendall(chunk)
        finally:
            with self._lock:
                self._open.discard(client)
                if is_events:
                    self._streams.remove(stalled)


@dataclass
class Fault:
    """Answer requests matching `applies` with `status` (None: forward) after `delay` seconds."""

    applies: Callable[[str, str], bool]
    status: int | None = None
    delay: float = 0.0


class EurekaProxy(_Proxy):
    """`url` is the Eureka URL to give the components; `faults` is tried in order for each request."""

    def __init__(self, upstream_port: int) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        super().__init__(listener)
        self.upstream_port = upstream_port
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}/eureka"
        self.faults: list[Fault] = []
        self.arrivals: list[tuple[float, str, str]] = []  # time, method, path: as each request arrives
        self.requests: list[tuple[float, str, str, int]] = []  # time, method, path, status answered
        self._lock = threading.Lock()

    def handle(self, client: socket.socket, head: bytes, body: bytes) -> None:
        method, path = request_line(head)
        with self._lock:
            self.arrivals.append((time.time(), method, path))
        fault = next((fault for fault in list(self.faults) if fault.applies(method, path)), None)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            self._record(method, path, fault.status)
            _answer(client, fault.status, b"injected")
            return
        with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
            upstream.sendall(head + body)
            first = True
            while chunk := upstream.recv(65536):
                if first:
                    self._record(method, path, int(chunk.split(b" ", 2)[1]))
                    first = False
                client.sendall(chunk)

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((time.time(), method, path, status))
