"""A keep-alive HTTP/1.1 client on the standard library's `http.client`: one connection per server and
thread, reused for every request, opened again when the server closed it.

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
from typing import Any
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


class HttpClient:
    """Requests to one server (`scheme://host[:port]`, a path prefix and basic auth credentials allowed).
    `timeout`: seconds to connect and for each read, or (connect, read)."""

    def __init__(self, url: str, timeout: float | tuple[float, float], *, ca_bundle: str | None = None,
                 headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
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

    def close(self) -> None:
        """Close this thread's connection (the next request opens a new one)."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def _connect(self) -> http.client.HTTPConnection:
        if self._tls is not None:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.connect_timeout, context=self._tls)
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
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
