"""Eureka REST client: register, heartbeat, deregister, status, reads; failing over between servers.

Several base URLs may be given. A request goes to the server that last answered; on a connection
error, a timeout or a 5xx it moves on to the next one, and when every server failed it tries the
whole list again after a growing pause, a few times, before raising `EurekaUnavailable`. A 4xx other
than 404 is the request's fault, not the server's: `EurekaRejected` at once, never retried.
Connections are kept alive and reused (one `requests.Session`). Credentials in a URL become basic
auth and never appear in messages.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from shared.config import RegistrarConfig

log = logging.getLogger(__name__)

JSON = "application/json"


class EurekaError(Exception):
    """Base of every Eureka client error."""


class EurekaUnavailable(EurekaError):
    """No server answered usefully (connection errors, timeouts, 5xx), after every retry."""


class EurekaRejected(EurekaError):
    """A server refused the request itself (a 4xx other than 404)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class EurekaBadAnswer(EurekaError):
    """A server answered 2xx with a body that is not what Eureka sends."""


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


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, dict) else list(value)


def _path(*segments: str) -> str:
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


class EurekaClient:
    def __init__(self, urls: Sequence[str], timeout: float = 5.0, *, attempts: int = 3,
                 backoff: float = 0.25, ca_bundle: str | None = None) -> None:
        if not urls:
            raise ValueError("at least one Eureka URL is required")
        self.servers = tuple(EurekaServer.parse(url) for url in urls)
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self._session = requests.Session()
        self._session.headers.update({"Accept": JSON})
        # Given with each request: a session-wide setting would lose to REQUESTS_CA_BUNDLE in the environment.
        self._verify: str | bool = ca_bundle or True
        self._preferred = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: RegistrarConfig) -> EurekaClient:
        return cls(settings.eureka_url, settings.eureka_timeout, ca_bundle=settings.eureka_ca_bundle)

    def register(self, instance: dict[str, Any]) -> None:
        """POST the instance (Eureka answers 204, also when it already knows the id)."""
        self._request("POST", _path("apps", instance["app"]), json={"instance": instance})

    def heartbeat(self, app: str, instance_id: str) -> bool:
        """Renew the lease. False when Eureka does not know the instance (404): register it again."""
        return self._request("PUT", _path("apps", app, instance_id), missing_ok=True) is not None

    def deregister(self, app: str, instance_id: str) -> bool:
        """DELETE the instance. False when it was already gone."""
        return self._request("DELETE", _path("apps", app, instance_id), missing_ok=True) is not None

    def set_status(self, app: str, instance_id: str, status: str) -> bool:
        """Override the instance's status (PUT .../status). False when Eureka does not know it."""
        return self._request("PUT", _path("apps", app, instance_id, "status"), params={"value": status},
                             missing_ok=True) is not None

    def instance(self, app: str, instance_id: str) -> dict[str, Any] | None:
        """The instance as Eureka holds it now, or None."""
        response = self._request("GET", _path("apps", app, instance_id), missing_ok=True)
        return None if response is None else self._body(response, "instance")

    def applications(self) -> list[dict[str, Any]]:
        """Every application with its instances (`[{"name": ..., "instance": [...]}, ...]`; some servers
        give a lone application or instance as an object rather than a list: here it is always a list)."""
        response = self._request("GET", _path("apps"))
        assert response is not None
        applications = _as_list(self._body(response, "applications").get("application"))
        return [{**application, "instance": _as_list(application.get("instance"))} for application in applications]

    def _body(self, response: requests.Response, root: str) -> Any:
        try:
            return response.json()[root]
        except (ValueError, KeyError, TypeError):
            raise EurekaBadAnswer(f"{response.request.method} {response.url}: expected a JSON {root!r} document, "
                                  f"got {response.text[:200]!r}") from None

    def _request(self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None,
                 missing_ok: bool = False) -> requests.Response | None:
        failures: list[str] = []
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            response = self._try_servers(method, path, json, params, failures)
            if response is None:
                continue
            if response.status_code == 404 and missing_ok:
                return None
            if response.status_code >= 400:
                raise EurekaRejected(f"{method} {response.url}: HTTP {response.status_code}: "
                                     f"{response.text[:200]!r}", response.status_code)
            return response
        raise EurekaUnavailable(f"{method} {path}: no Eureka server answered after {self.attempts} rounds: "
                                + "; ".join(failures[-len(self.servers):]))

    def _try_servers(self, method: str, path: str, json: Any, params: dict[str, str] | None,
                     failures: list[str]) -> requests.Response | None:
        """One round over the servers, preferred first: the first answer that is not a 5xx, or None."""
        with self._lock:
            first = self._preferred
        for offset in range(len(self.servers)):
            index = (first + offset) % len(self.servers)
            server = self.servers[index]
            try:
                response = self._session.request(method, server.url + path, json=json, params=params,
                                                 auth=server.auth, timeout=self.timeout, verify=self._verify)
            except requests.RequestException as err:
                failures.append(f"{server.url}: {type(err).__name__}")
                continue
            if response.status_code >= 500:
                failures.append(f"{server.url}: HTTP {response.status_code}")
                continue
            with self._lock:
                if self._preferred != index:
                    log.warning("Eureka %s answers; using it from now on", server.url)
                self._preferred = index
            return response
        return None
