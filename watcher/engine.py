"""The Docker Engine API, as much of it as the watcher uses: ping, info, the container list, inspect, and
the event stream; on a kept-alive connection per thread (`shared.httpclient`).

The watcher inspects a container for most events, so an inspect is on the path of every registration:
here it is one request on an open connection, where the Docker SDK (with `requests`) also cost the
watcher a third of its memory. Paths carry no API version: the engine answers in its own current one,
as the SDK's "auto" version does.
"""

from __future__ import annotations

import json
from typing import Any, Iterator
from urllib.parse import quote, urlencode, urlsplit

from shared.httpclient import HttpClient, HttpFailure, Response, Stream


class DockerError(Exception):
    """The engine could not be reached, or refused a request (the message says which)."""


class ContainerNotFound(DockerError):
    """The engine does not know the container (404)."""


class DockerEngine:
    """The engine at `address` (-docker-host: unix:///path, or tcp:// / http:// host and port)."""

    def __init__(self, address: str, timeout: float) -> None:
        self.address = address
        parts = urlsplit(address)
        if parts.scheme == "unix":
            self._http = HttpClient("http://localhost", timeout, unix_socket=parts.path)
        else:
            self._http = HttpClient(f"http://{parts.netloc}", timeout)

    def ping(self) -> None:
        self._call("GET", "/_ping")

    def info(self) -> dict[str, Any]:
        return self._call("GET", "/info").json()

    def containers(self) -> list[dict[str, Any]]:
        """Every container, running or not (`docker ps -a`)."""
        return self._call("GET", "/containers/json?all=1").json()

    def inspect(self, container_id: str) -> dict[str, Any]:
        """The container's inspect document. Raises ContainerNotFound, DockerError."""
        return self._call("GET", f"/containers/{quote(container_id, safe='')}/json").json()

    def events(self) -> Events:
        """Container events from now on, until the stream is closed. Raises DockerError."""
        query = urlencode({"filters": json.dumps({"type": ["container"]})})
        try:
            stream = self._http.stream("GET", f"/events?{query}")
        except HttpFailure as err:
            raise DockerError(f"{self.address}: GET /events: {err}") from None
        if stream.status != 200:
            body = _safe_read(stream)
            stream.close()
            raise DockerError(f"{self.address}: GET /events: HTTP {stream.status}: {body[:200]!r}")
        return Events(stream, self.address)

    def _call(self, method: str, path: str) -> Response:
        try:
            response = self._http.request(method, path)
        except HttpFailure as err:
            raise DockerError(f"{self.address}: {method} {path}: {err}") from None
        if response.status == 404 and path.startswith("/containers/"):
            raise ContainerNotFound(f"{method} {path}: no such container")
        if response.status >= 300:
            raise DockerError(f"{self.address}: {method} {path}: HTTP {response.status}: {response.text[:200]!r}")
        return response


class Events:
    """The engine's event stream: one decoded event per line. `close()` (from any thread) ends it."""

    def __init__(self, stream: Stream, address: str) -> None:
        self._stream = stream
        self._address = address

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            for line in self._stream.lines():
                if line.strip():
                    yield json.loads(line)
        except HttpFailure as err:
            raise DockerError(f"{self._address}: event stream: {err}") from None

    def close(self) -> None:
        self._stream.close()


def _safe_read(stream: Stream) -> bytes:
    try:
        return stream.read()
    except HttpFailure:
        return b""
