"""Eureka REST client: register, heartbeat, deregister, status, reads; failing over between servers.

Several base URLs may be given. A request goes to the server that last answered; on a connection
error, a timeout, a 5xx or a 4xx that a later attempt may not get (401/403: credentials rotated or
an auth proxy in the way; 408, 409, 429) it moves on to the next one, and when every server failed
it tries the whole list again after a growing pause, a few times, before raising `EurekaUnavailable`:
the caller retries later. Only an answer that says the request itself is wrong (400, 413, 415, 422)
is final: `EurekaRejected`, never retried. The product never sends what Netflix Eureka answers 500
to (an unknown status, a malformed lastDirtyTimestamp), so a 5xx is always the server's trouble.
Connections are kept alive and reused (`shared.httpclient`, one per server and thread). Credentials in
a URL (percent-encoded as URLs require) become basic auth and never appear in messages.
"""

from __future__ import annotations

import json as jsonlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

from shared import defaults
from shared.config import RegistrarConfig
from shared.httpclient import HttpClient, HttpFailure, Response

log = logging.getLogger(__name__)

JSON = "application/json"
# Answers that say the request is wrong, whichever server gets it and however often.
FINAL_STATUSES = frozenset({400, 413, 415, 422})


class EurekaError(Exception):
    """Base of every Eureka client error."""


class EurekaUnavailable(EurekaError):
    """No server answered usefully (connection errors, timeouts, 5xx, a 4xx that is not final), after
    every retry: try again later."""


class EurekaRejected(EurekaError):
    """A server refused the request itself (400, 413, 415, 422): sending it again cannot help."""

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
        auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username is not None else None
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        return cls(urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth)


_JSON_BODY = {"Content-Type": JSON}


@dataclass(frozen=True)
class _Answer:
    """A server's answer, with the request it answers (the URL without credentials, for messages)."""

    method: str
    url: str
    response: Response


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, dict) else list(value)


def _path(*segments: str) -> str:
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


class EurekaClient:
    def __init__(self, urls: Sequence[str], timeout: float = defaults.EUREKA_TIMEOUT_SECONDS, *,
                 attempts: int = defaults.EUREKA_ROUNDS, backoff: float = defaults.EUREKA_ROUND_BACKOFF_SECONDS,
                 ca_bundle: str | None = None) -> None:
        if not urls:
            raise ValueError("at least one Eureka URL is required")
        self.servers = tuple(EurekaServer.parse(url) for url in urls)
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self._http = [HttpClient(server.url, timeout, ca_bundle=ca_bundle, headers={"Accept": JSON},
                                 auth=server.auth) for server in self.servers]
        self._preferred = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: RegistrarConfig) -> EurekaClient:
        return cls(settings.eureka_url, settings.eureka_timeout, ca_bundle=settings.eureka_ca_bundle)

    def register(self, instance: dict[str, Any]) -> None:
        """POST the instance (Eureka answers 204, also when it already knows the id), then set its
        status: Eureka keeps a status override across re-registration (a DOWN set while an earlier
        container on the same address was being stopped, say), and the override would win."""
        self._request("POST", _path("apps", instance["app"]), json={"instance": instance})
        self.set_status(instance["app"], instance["instanceId"], instance["status"])

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
        answer = self._request("GET", _path("apps", app, instance_id), missing_ok=True)
        return None if answer is None else self._body(answer, "instance")

    def applications(self) -> list[dict[str, Any]]:
        """Every application with its instances (`[{"name": ..., "instance": [...]}, ...]`; some servers
        give a lone application or instance as an object rather than a list: here it is always a list)."""
        answer = self._request("GET", _path("apps"))
        assert answer is not None
        applications = _as_list(self._body(answer, "applications").get("application"))
        return [{**application, "instance": _as_list(application.get("instance"))} for application in applications]

    def _body(self, answer: _Answer, root: str) -> Any:
        try:
            return answer.response.json()[root]
        except (ValueError, KeyError, TypeError):
            raise EurekaBadAnswer(f"{answer.method} {answer.url}: expected a JSON {root!r} document, "
                                  f"got {answer.response.text[:200]!r}") from None

    def _request(self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None,
                 missing_ok: bool = False) -> _Answer | None:
        if params:
            path += "?" + urlencode(params)
        body = None if json is None else jsonlib.dumps(json).encode()
        failures: list[str] = []
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            answer = self._try_servers(method, path, body, failures, missing_ok)
            if answer is None:
                continue
            status = answer.response.status
            if status == 404 and missing_ok:
                return None
            if status in FINAL_STATUSES:
                raise EurekaRejected(f"{method} {answer.url}: HTTP {status}: {answer.response.text[:200]!r}", status)
            return answer
        raise EurekaUnavailable(f"{method} {path}: no Eureka server answered after {self.attempts} rounds: "
                                + "; ".join(failures[-len(self.servers):]))

    def _try_servers(self, method: str, path: str, body: bytes | None, failures: list[str],
                     missing_ok: bool) -> _Answer | None:
        """One round over the servers, preferred first: the first answer that is a success, a final
        refusal or (with `missing_ok`) a 404; None when every server failed."""
        with self._lock:
            first = self._preferred
        for offset in range(len(self.servers)):
            index = (first + offset) % len(self.servers)
            server = self.servers[index]
            try:
                response = self._http[index].request(method, path, body, _JSON_BODY if body is not None else None)
            except HttpFailure as err:
                failures.append(f"{server.url}: {err.kind}")
                continue
            if not _usable(response.status, missing_ok):
                failures.append(f"{server.url}: HTTP {response.status}")
                continue
            with self._lock:
                if self._preferred != index:
                    log.warning("Eureka %s answers; using it from now on", server.url)
                self._preferred = index
            return _Answer(method, server.url + path, response)
        return None


def _usable(status: int, missing_ok: bool) -> bool:
    """Whether an answer settles the request (anything else is worth another server or round)."""
    return status < 400 or status in FINAL_STATUSES or (status == 404 and missing_ok)
