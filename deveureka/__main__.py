"""Command line: ``python -m deveureka`` (console script ``registrator-dev-eureka``)."""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from werkzeug.serving import make_server

from deveureka.app import DEFAULT_RESPONSE_CACHE_SECONDS, create_app, response_cache
from deveureka.registry import LEASE_EXPIRIES, Evictor, LeaseExpiry, Registry

PROG = "deveureka"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

log = logging.getLogger(PROG)


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    eviction_interval: float
    response_cache_seconds: float
    lease_expiry: LeaseExpiry
    self_preservation: bool
    strict: bool
    log_level: str
    tls_cert: str
    tls_key: str
    basic_auth: tuple[str, str] | None


def _host(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid value {raw!r}: must be an integer 0-65535")
    return port


def _seconds(minimum: float, inclusive: bool) -> Callable[[str], float]:
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"

    def convert(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise ValueError(f"invalid value {raw!r}: must be a number of seconds {bound}")
        return value

    return convert


def _readable_file(raw: str) -> str:
    if raw and not os.access(raw, os.R_OK):
        raise ValueError(f"invalid value {raw!r}: not a readable file")
    return raw


def _credentials(raw: str) -> tuple[str, str] | None:
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not sep or not user or not password:
        raise ValueError("must be user:password")
    return user, password


def _lease_expiry(raw: str) -> LeaseExpiry:
    for choice in LEASE_EXPIRIES:
        if raw == choice:
            return choice
    raise ValueError(f"invalid value {raw!r}: must be one of {', '.join(LEASE_EXPIRIES)}")


def _boolean(raw: str) -> bool:
    if raw.lower() not in ("true", "false"):
        raise ValueError(f"invalid value {raw!r}: must be true or false")
    return raw.lower() == "true"


def _log_level(raw: str) -> str:
    if raw.upper() not in LOG_LEVELS:
        raise ValueError(f"invalid value {raw!r}: must be one of {', '.join(LOG_LEVELS)}")
    return raw.upper()


@dataclass(frozen=True)
class _Option:
    flag: str
    env: str
    default: str
    convert: Callable[[str], Any]
    help: str
    switch: bool = False  # a flag without a value: given means "true"

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


OPTIONS = (
    _Option("--host", "DEVEUREKA_HOST", "127.0.0.1", _host, "address to listen on"),
    _Option("--port", "DEVEUREKA_PORT", "8761", _port, "port to listen on; 0 picks a free one"),
    _Option(
        "--eviction-interval",
        "DEVEUREKA_EVICTION_INTERVAL",
        "60",
        _seconds(0, inclusive=False),
        "seconds between eviction runs",
    ),
    _Option(
        "--response-cache-seconds",
        "DEVEUREKA_RESPONSE_CACHE_SECONDS",
        f"{DEFAULT_RESPONSE_CACHE_SECONDS:g}",
        _seconds(0, inclusive=True),
        "seconds between refreshes of the cache GET /apps, /apps/delta and /apps/{APP} are served "
        "from; 0 = no cache",
    ),
    _Option(
        "--lease-expiry",
        "DEVEUREKA_LEASE_EXPIRY",
        "netflix",
        _lease_expiry,
        "netflix: a renewed lease lasts 2 x durationInSecs, as Netflix's; "
        "duration: it lasts durationInSecs after the last renewal",
    ),
    _Option(
        "--self-preservation",
        "DEVEUREKA_SELF_PRESERVATION",
        "false",
        _boolean,
        "stop expiring leases while heartbeats fall below 85%% of those expected, as Netflix does "
        "by default",
        switch=True,
    ),
    _Option(
        "--strict",
        "DEVEUREKA_STRICT",
        "false",
        _boolean,
        "refuse (400) registrations and metadata Netflix would silently alter: metadata keys that "
        "are not XML names, unknown statuses, bad ports and numbers, text XML cannot carry",
        switch=True,
    ),
    _Option(
        "--log-level", "DEVEUREKA_LOG_LEVEL", "INFO", _log_level, "one of " + ", ".join(LOG_LEVELS)
    ),
    _Option(
        "--tls-cert",
        "DEVEUREKA_TLS_CERT",
        "",
        _readable_file,
        "PEM certificate: serve https (needs --tls-key)",
    ),
    _Option("--tls-key", "DEVEUREKA_TLS_KEY", "", _readable_file, "PEM private key of --tls-cert"),
    _Option(
        "--basic-auth",
        "DEVEUREKA_BASIC_AUTH",
        "",
        _credentials,
        "user:password every request must carry (HTTP basic auth)",
    ),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Flags win over environment variables, which win over defaults. Bad values exit 2."""
    environ = os.environ if environ is None else environ
    parser = _Parser(
        prog=PROG, description="In-memory Netflix Eureka server for development and tests."
    )
    for option in OPTIONS:
        parser.add_argument(
            option.flag,
            help=f"{option.help} (env {option.env}, default {option.default})",
            **({"action": "store_const", "const": "true"} if option.switch else {}),
        )
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw, source = getattr(args, option.dest), option.flag
        if raw is None and option.env in environ:
            raw, source = environ[option.env], f"{option.env} ({option.flag})"
        try:
            values[option.dest] = option.convert(option.default if raw is None else raw)
        except ValueError as exc:
            parser.exit(2, f"{PROG}: {source}: {exc}\n")
    if bool(values["tls_cert"]) != bool(values["tls_key"]):
        parser.exit(2, f"{PROG}: --tls-cert and --tls-key go together\n")
    return Settings(**values)


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_settings(argv)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    registry = Registry(
        lease_expiry=settings.lease_expiry, self_preservation=settings.self_preservation
    )
    app = create_app(
        registry,
        response_cache_seconds=settings.response_cache_seconds,
        basic_auth=settings.basic_auth,
        strict=settings.strict,
    )
    tls = (settings.tls_cert, settings.tls_key) if settings.tls_cert else None
    try:
        server = make_server(settings.host, settings.port, app, threaded=True, ssl_context=tls)
    except OSError as exc:
        sys.exit(f"{PROG}: cannot listen on {settings.host}:{settings.port}: {exc}")

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    evictor = Evictor(registry, settings.eviction_interval)
    evictor.start()
    cache = response_cache(app)
    cache.start()
    serving = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name="deveureka-http",
        daemon=True,
    )
    serving.start()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    scheme = "https" if tls else "http"
    print(f"{PROG}: serving {scheme}://{host}:{server.port}/eureka (also /eureka/v2)", flush=True)

    stop.wait()
    server.shutdown()
    serving.join()
    server.server_close()
    evictor.stop()
    cache.stop()
    log.info("stopped")


if __name__ == "__main__":
    main()
