"""A keep-alive HTTP/1.1 client on the standard library's `http.client`: one connection per server and
thread, reused for every request, opened again when the server closed it; over TCP or a unix socket
(the Docker engine's), and answers read as they come (`stream`: Docker's event stream).

Eureka renewals are most of what the workers do, and `requests` spent more CPU on each (it looks for
proxies in the environment and for `~/.netrc` on every request) than the rest of a renewal: a request
here costs about a tenth. Requests go straight to the server (no proxy from the environment); HTTPS
is verified against the system's certificate authorities or a given bundle.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urlsplit

# An idle kept-alive connection the server closed shows up as one of these on the next request, before
# any answer: that request is sent again once, on a new connection.
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                     ConnectionAbortedError)


class HttpFailure(Exception):
    """No answer: the connection failed or broke, timed out, or TLS failed. `kind` says which:
    `ConnectionError`, `Timeout` or `SSLError`."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON (ValueError if it is not)."""
        return json.loads(self.body)


class Stream:
    """An answer read as it comes, on a connection of its own without a read timeout. `close()` may be
    called from another thread: a reader waiting for more then sees the end."""

    def __init__(self, sock: socket.socket, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self._sock = sock
        self._response = response
        self._closed = False

    def lines(self) -> Iterator[bytes]:
        """The body line by line, until the server or `close()` ends it. Raises HttpFailure."""
        try:
            while line := self._response.readline():
                yield line
        except (OSError, ValueError, http.client.HTTPException) as err:  # ValueError: a cut-off chunk
            if not self._closed:
                raise _failure(err) from None

    def read(self) -> bytes:
        try:
            return self._response.read()
        except (OSError, http.client.HTTPException) as err:
            raise _failure(err) from None

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # closed already
        self._sock.close()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class HttpClient:
    """Requests to one server (`scheme://host[:port]`, a path prefix and basic auth credentials allowed;
    with `unix_socket`, the server listening there, and `url` names only the scheme and path prefix).
    `timeout`: seconds to connect and for each read, or (connect, read)."""

    def __init__(self, url: str, timeout: float | tuple[float, float], *, ca_bundle: str | None = None,
                 headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
                 unix_socket: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
        self.unix_socket = unix_socket
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.connect_timeout, self.read_timeout = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self._tls = ssl.create_default_context(cafile=ca_bundle) if parts.scheme == "https" else None
        # Netflix Eureka refuses reads that do not accept gzip (406).
        self._headers = {"Accept-Encoding": "gzip", **(headers or {})}
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._local = threading.local()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """Send `method` to the server's prefix + `path` (with its query) and read the whole answer.
        Raises HttpFailure."""
        all_headers = {**self._headers, **headers} if headers else self._headers
        reused = getattr(self._local, "connection", None)
        try:
            if reused is not None:
                try:
                    return self._exchange(reused, method, path, body, all_headers)
                except _STALE_CONNECTION:
                    self.close()
            return self._exchange(self._connect(), method, path, body, all_headers)
        except (OSError, http.client.HTTPException, zlib.error) as err:
            self.close()
            raise _failure(err) from None
        except BaseException:
            self.close()
            raise

    def stream(self, method: str, path: str) -> Stream:
        """Send `method` on a connection of its own and return the answer to read as it comes. Raises
        HttpFailure."""
        connection = self._new_connection()
        try:
            connection.connect()
            sock = connection.sock
            assert sock is not None
            sock.settimeout(self.read_timeout)
            connection.request(method, self.prefix + path, headers=self._headers)
            response = connection.getresponse()
            sock.settimeout(None)
        except (OSError, http.client.HTTPException) as err:
            connection.close()
            raise _failure(err) from None
        except BaseException:
            connection.close()
            raise
        return Stream(sock, response)

    def close(self) -> None:
        """Close this thread's connection (the next request opens a new one)."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def _new_connection(self) -> http.client.HTTPConnection:
        if self.unix_socket is not None:
            return _UnixConnection(self.unix_socket, self.connect_timeout)
        if self._tls is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.connect_timeout, context=self._tls)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)

    def _connect(self) -> http.client.HTTPConnection:
        connection = self._new_connection()
        try:
            connection.connect()
        except BaseException:
            connection.close()
            raise
        assert connection.sock is not None
        connection.sock.settimeout(self.read_timeout)
        self._local.connection = connection
        return connection

    def _exchange(self, connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
                  headers: dict[str, str]) -> Response:
        connection.request(method, self.prefix + path, body, headers)
        answer = connection.getresponse()
        body = answer.read()
        if answer.getheader("Content-Encoding", "").lower() == "gzip":
            body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
        response = Response(answer.status, body)
        if answer.will_close:
            self.close()
        return response


def _failure(err: BaseException) -> HttpFailure:
    if isinstance(err, ssl.SSLError):
        return HttpFailure("SSLError", str(err))
    if isinstance(err, (socket.timeout, TimeoutError)):
        return HttpFailure("Timeout", str(err) or "timed out")
    return HttpFailure("ConnectionError", str(err) or type(err).__name__)
