"""Eureka REST client: register, heartbeat, deregister and read instances, failing over between servers.

Several base URLs may be given; a request goes to the server that last answered, and on a connection
error, a timeout or a 5xx moves on to the next one. A 4xx other than 404 is the request's fault, not the
server's: it raises `EurekaRejected` at once, never retried. Credentials in a URL become basic auth and
never appear in messages.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import quote, urlsplit, urlunsplit

import requests

log = logging.getLogger(__name__)

JSON = "application/json"


class EurekaError(Exception):
    """Base of every Eureka client error."""


class EurekaUnavailable(EurekaError):
    """No server answered usefully (connection errors, timeouts, 5xx)."""


class EurekaRejected(EurekaError):
    """A server refused the request itself (a 4xx other than 404)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class EurekaServer:
    url: str
    auth: tuple[str, str] | None

    @classmethod
    def parse(cls, url: str) -> EurekaServer:
        parts = urlsplit(url)
        auth = (parts.username or "", parts.password or "") if parts.username is not None else None
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        return cls(urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth)


def _path(*segments: str) -> str:
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


class EurekaClient:
    def __init__(self, urls: Sequence[str], timeout: float = 5.0) -> None:
        if not urls:
            raise ValueError("at least one Eureka URL is required")
        self.servers = tuple(EurekaServer.parse(url) for url in urls)
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers.update({"Accept": JSON})
        self._preferred = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self._session.close()

    def register(self, instance: dict[str, Any]) -> None:
        """POST the instance (Eureka answers 204, also when it already knows the id)."""
        self._request("POST", _path("apps", instance["app"]), json={"instance": instance})

    def heartbeat(self, app: str, instance_id: str) -> bool:
        """Renew the lease. False when Eureka does not know the instance (404): register it again."""
        return self._request("PUT", _path("apps", app, instance_id), missing_ok=True) is not None

    def deregister(self, app: str, instance_id: str) -> bool:
        """DELETE the instance. False when it was already gone."""
        return self._request("DELETE", _path("apps", app, instance_id), missing_ok=True) is not None

    def instance(self, app: str, instance_id: str) -> dict[str, Any] | None:
        """The instance as Eureka holds it now, or None."""
        response = self._request("GET", _path("apps", app, instance_id), missing_ok=True)
        return None if response is None else response.json()["instance"]

    def applications(self) -> dict[str, Any]:
        response = self._request("GET", _path("apps"))
        assert response is not None
        return response.json()["applications"]

    def _request(self, method: str, path: str, *, json: Any = None,
                 missing_ok: bool = False) -> requests.Response | None:
        with self._lock:
            first = self._preferred
        failures: list[str] = []
        for offset in range(len(self.servers)):
            index = (first + offset) % len(self.servers)
            server = self.servers[index]
            where = f"{method} {server.url}{path}"
            try:
                response = self._session.request(
                    method, server.url + path, json=json, auth=server.auth, timeout=self.timeout
                )
            except requests.RequestException as err:
                failures.append(f"{where}: {type(err).__name__}")
                continue
            if response.status_code >= 500:
                failures.append(f"{where}: HTTP {response.status_code}")
                continue
            with self._lock:
                self._preferred = index
            if response.status_code == 404 and missing_ok:
                return None
            if response.status_code >= 400:
                raise EurekaRejected(
                    f"{where}: HTTP {response.status_code}: {response.text[:200]!r}", response.status_code
                )
            return response
        raise EurekaUnavailable("; ".join(failures))
