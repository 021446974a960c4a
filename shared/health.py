"""The HTTP endpoint of every component, on -metrics-address:-metrics-port: `/healthz` and Prometheus `/metrics`.

`/healthz` answers whether the component is doing its job, from checks the component supplies: 200 when
every check passes, 503 naming each one that does not; the body is JSON either way:
`{"healthy": true, "checks": [{"name": "redis", "ok": true, "detail": "answers"}, ...]}`. Until the
component has started, it answers 503 `starting`. `/metrics` is prometheus-client's own WSGI app on the
component's registry (`shared.metrics.registry_for`).

A small threaded WSGI server from the standard library (the one prometheus-client's `start_http_server`
uses), in daemon threads: no web framework in any component.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from shared.config import without_passwords


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


class Pulse:
    """When something last happened (a renewal, a round of a periodic task), on the monotonic clock. It
    starts as "just now", so that a component is not unhealthy before its first round."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def beat(self) -> None:
        self._last = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self._last


def check_recent(name: str, pulse: Pulse, limit: float, what: str) -> Check:
    """Passes when `pulse` beat within `limit` seconds."""
    age = pulse.age()
    return Check(name, age <= limit, f"{what} {age:.1f}s ago (limit {limit:.0f}s)")


def check_answers(name: str, ping: Callable[[], object]) -> Check:
    """Passes when `ping` returns; its error, without any password, otherwise."""
    try:
        ping()
    except Exception as err:  # noqa: BLE001 - any failure is the answer
        return Check(name, False, without_passwords(f"{type(err).__name__}: {err}"))
    return Check(name, True, "answers")


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the standard library's name
        """Requests are not logged: health checks and scrapes come every few seconds."""


class HealthServer:
    def __init__(self, address: str, port: int, registry: CollectorRegistry) -> None:
        self.checks: Callable[[], Iterable[Check]] | None = None
        self._metrics = make_wsgi_app(registry)

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

        self._server = make_server(address, port, self._app, Server, handler_class=_Quiet)
        self.port = self._server.server_port

    def start(self) -> HealthServer:
        threading.Thread(target=self._server.serve_forever, name="health", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path != "/healthz":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /healthz or /metrics\n"]
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        checks = [Check("started", False, "starting")] if self.checks is None else list(self.checks())
        healthy = all(check.ok for check in checks)
        body = json.dumps({"healthy": healthy, "checks": [asdict(check) for check in checks]}).encode() + b"\n"
        start_response("200 OK" if healthy else "503 Service Unavailable",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def serve(component: str, address: str, port: int, registry: CollectorRegistry) -> HealthServer | None:
    """Serve /healthz and /metrics on `address`:`port` (None when `port` is 0: not served). Exits (status 1)
    when the port cannot be had: health checks would fail anyway, and say less."""
    if port == 0:
        return None
    try:
        return HealthServer(address, port, registry).start()
    except OSError as err:
        raise SystemExit(f"{component}: cannot serve /healthz and /metrics on {address} port {port}: "
                         f"{err.strerror or err} (-metrics-port / METRICS_PORT; 0 turns them off)") from None
