"""Configuration of every component: each option is a CLI flag and an environment variable.

Flags follow registrator's names and accept one or two leading dashes (`-ttl 30` and `--ttl 30`).
A flag wins over its environment variable, which wins over the default. Any invalid value ends the
program before anything starts: one line naming the option, exit code 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping, NoReturn, Sequence
from urllib.parse import urlsplit

from redis.connection import parse_url

from shared import defaults
from shared.connection import SENTINEL_SCHEME, parse_sentinel_url

TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})


def parse_bool(raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError("expected true or false")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected an integer") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number") from None
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return raw

    return parse


def _port_or_off(raw: str) -> int:
    port = _int_at_least(0)(raw)
    if port > 65535:
        raise ValueError("expected a port number (0 to 65535)")
    return port


def _ip_address(raw: str) -> str:
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ValueError("expected an IP address") from None


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")
    return raw


def _http_urls(raw: str) -> tuple[str, ...]:
    urls = tuple(_http_url(part.strip()).rstrip("/") for part in raw.split(",") if part.strip())
    if not urls:
        raise ValueError("expected one or more comma-separated http(s) URLs")
    return urls


def _redis_url(raw: str) -> str:
    scheme = urlsplit(raw).scheme
    if scheme == SENTINEL_SCHEME:
        parse_sentinel_url(raw)
    elif scheme in ("redis", "rediss", "unix"):
        parse_url(raw)  # redis-py's own reading: a bad port or option, named without the password
    else:
        raise ValueError(f"expected a redis://, rediss://, unix:// or {SENTINEL_SCHEME}:// URL")
    return raw


def _docker_address(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme == "unix" and parts.path or parts.scheme in ("tcp", "http") and parts.hostname:
        return raw
    raise ValueError("expected unix:///path/to/docker.sock, tcp://host:port or http://host:port")


def _readable_file(raw: str) -> str:
    if not os.access(raw, os.R_OK):
        raise ValueError("not a readable file")
    return raw


def valid_host_name(raw: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}", raw) is not None


def _host_name(raw: str) -> str:
    if not valid_host_name(raw):
        raise ValueError("expected a host name (letters, digits, '.', '_', '-')")
    return raw


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _text(raw: str) -> str:
    return raw


def _is_utf8(text: str) -> bool:
    """False when `text` holds lone surrogates: bytes that were not UTF-8, as Python decodes argv and
    the environment."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Option:
    flag: str
    env: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    switch: bool = False
    aliases: tuple[str, ...] = ()
    secret: bool = False

    @property
    def field(self) -> str:
        """`ttl-refresh` -> `ttl_refresh`, registrator's `useIpFromLabel` -> `use_ip_from_label`."""
        return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", self.flag).replace("-", "_").lower()


REDIS_URL = Option("redis-url", "REDIS_URL", _redis_url, "redis://127.0.0.1:6379/0",
                   f"Redis URL: redis://, rediss://, unix://, or {SENTINEL_SCHEME}://host:port,.../service[/db]")
REDIS_SENTINEL_PASSWORD = Option(
    "redis-sentinel-password", "REDIS_SENTINEL_PASSWORD", _text, None,
    "password of the Redis sentinels themselves (the URL's password is the Redis servers')", secret=True,
)
LOG_LEVEL = Option("log-level", "LOG_LEVEL", _log_level, "INFO", "log level")
LOG_FORMAT = Option("log-format", "LOG_FORMAT", _choice("text", "json"), "text",
                    "log lines as text or as JSON objects (one per line)")
RETRY_ATTEMPTS = Option(
    "retry-attempts", "REGISTRATOR_RETRY_ATTEMPTS", _int_at_least(-1), 30,
    "connection attempts at startup for Redis, Docker and Eureka (-1: forever)",
)
RETRY_INTERVAL = Option(
    "retry-interval", "REGISTRATOR_RETRY_INTERVAL", _int_at_least(1), 2000,
    "milliseconds between startup connection attempts",
)
EUREKA_URL = Option(
    "eureka-url", "EUREKA_URL", _http_urls, None,
    "Eureka base URL(s), comma-separated, e.g. http://127.0.0.1:8761/eureka (required)",
)
EUREKA_TIMEOUT = Option(
    "eureka-timeout", "EUREKA_TIMEOUT", _positive_float, defaults.EUREKA_TIMEOUT_SECONDS,
    "seconds before a Eureka request times out"
)
EUREKA_CA_BUNDLE = Option(
    "eureka-ca-bundle", "EUREKA_CA_BUNDLE", _readable_file, None,
    "PEM file of the certificate authorities to trust for https Eureka URLs (default: the system's)",
)

METRICS_ADDRESS = Option(
    "metrics-address", "METRICS_ADDRESS", _ip_address, "0.0.0.0",
    "address /metrics and /healthz listen on (0.0.0.0: every interface, as a container's health check and a "
    "Prometheus server elsewhere need)",
)


def _metrics_port(default: int) -> Option:
    return Option("metrics-port", "METRICS_PORT", _port_or_off, default,
                  f"port of /metrics (Prometheus) and /healthz (0: not served; default {default})")


COMMON = (REDIS_URL, REDIS_SENTINEL_PASSWORD, LOG_LEVEL, LOG_FORMAT, RETRY_ATTEMPTS, RETRY_INTERVAL, METRICS_ADDRESS)

WATCHER_OPTIONS = COMMON + (
    _metrics_port(defaults.WATCHER_METRICS_PORT),
    Option("docker-host", "DOCKER_HOST", _docker_address, "unix:///var/run/docker.sock",
           "Docker Engine API address (unix:// socket, or tcp:// without TLS)"),
    Option("hostname", "REGISTRATOR_HOSTNAME", _host_name, None,
           "this host's identity: first part of service IDs, docker-host metadata, its name in Redis "
           "(default: the Docker engine's name, as `docker info` shows it)"),
    Option("ip", "REGISTRATOR_IP", _ip_address, None, "IP for ports mapped to the host"),
    Option("internal", "REGISTRATOR_INTERNAL", parse_bool, False,
           "use exposed ports and the container's own IP instead of published ones", switch=True),
    Option("tags", "REGISTRATOR_TAGS", _text, "", "tags added to every service, comma-separated"),
    Option("ttl", "REGISTRATOR_TTL", _int_at_least(1), 30,
           "seconds a liveness entry lives without renewal"),
    Option("ttl-refresh", "REGISTRATOR_TTL_REFRESH", _int_at_least(1), 10,
           "seconds between liveness renewals (must be less than -ttl)"),
    Option("resync", "REGISTRATOR_RESYNC", _int_at_least(0), 0,
           "seconds between full re-syncs of all containers (0: never)"),
    Option("deregister", "REGISTRATOR_DEREGISTER", _choice("always", "on-success"), "always",
           "deregister exited containers always, or only on exit code 0 / killed by a signal"),
    Option("require-label", "REGISTRATOR_REQUIRE_LABEL", parse_bool, False,
           "register only containers with SERVICE_REGISTER=true", switch=True),
    Option("useIpFromLabel", "REGISTRATOR_USE_IP_FROM_LABEL", _text, None,
           "take the service IP from this container label (a CIDR suffix is dropped)",
           aliases=("use-ip-from-label",)),
    Option("name-from-image", "REGISTRATOR_NAME_FROM_IMAGE", parse_bool, False,
           "name services without SERVICE_NAME after their image instead of skipping them", switch=True),
    Option("ip-lookup-source", "REGISTRATOR_IP_LOOKUP_SOURCE", _http_url, None,
           "URL whose answer is this host's IP (used like -ip, re-checked every -ip-lookup-interval)"),
    Option("ip-lookup-retries", "REGISTRATOR_IP_LOOKUP_RETRIES", _int_at_least(1), 1,
           "attempts at the IP lookup at startup, -retry-interval apart"),
    Option("ip-lookup-interval", "REGISTRATOR_IP_LOOKUP_INTERVAL", _int_at_least(1), 10,
           "seconds between checks of -ip-lookup-source for a new IP"),
    Option("exit-on-ip-lookup-failure", "REGISTRATOR_EXIT_ON_IP_LOOKUP_FAILURE", parse_bool, False,
           "exit (status 1) when the IP lookup at startup fails, instead of using the hostname's IP",
           switch=True),
    Option("cleanup", "REGISTRATOR_CLEANUP", parse_bool, False,
           "after each re-sync, remove Eureka instances this host registered for containers it no longer has",
           switch=True),
    Option("ec2-metadata-url", "EC2_METADATA_URL", _http_url, "http://169.254.169.254",
           "EC2 instance metadata service, asked when a service sets eureka_datacenterinfo_auto_populate"),
)

EUREKA_OPTIONS = (EUREKA_URL, EUREKA_TIMEOUT, EUREKA_CA_BUNDLE)
ALB_CHECK_INTERVAL = Option(
    "alb-check-interval", "REGISTRATOR_ALB_CHECK_INTERVAL", _positive_float,
    float(defaults.ALB_RENEWAL_INTERVAL_SECONDS),
    "seconds between checks of an ALB's target health and of its load balancer's existence, fleet-wide",
)

REGISTRAR_OPTIONS = COMMON + EUREKA_OPTIONS + (
    _metrics_port(defaults.REGISTRAR_METRICS_PORT),
    Option("min-renewal-interval", "REGISTRATOR_MIN_RENEWAL_INTERVAL", _int_at_least(1),
           defaults.MIN_RENEWAL_INTERVAL_SECONDS,
           "shortest lease renewal interval (seconds) a container may ask for; lower only for tests"),
    Option("host-forget-margin", "REGISTRATOR_HOST_FORGET_MARGIN", _int_at_least(0),
           defaults.HOST_FORGET_MARGIN_SECONDS,
           "a host whose watcher is gone longer than its liveness TTL + 2 x its longest lease + this many "
           "seconds is forgotten"),
    ALB_CHECK_INTERVAL,
)

HEARTBEATER_OPTIONS = COMMON + EUREKA_OPTIONS + (
    _metrics_port(defaults.HEARTBEATER_METRICS_PORT),
    Option("tick", "HEARTBEAT_TICK", _positive_float, defaults.HEARTBEAT_TICK_SECONDS,
           "seconds between looks for heartbeats that are due"),
    Option("batch-size", "HEARTBEAT_BATCH_SIZE", _int_at_least(1), defaults.HEARTBEAT_BATCH_SIZE,
           "instances per heartbeat job"),
    ALB_CHECK_INTERVAL,
)

STATUS_OPTIONS = (
    REDIS_URL,
    REDIS_SENTINEL_PASSWORD,
    Option("eureka-url", "EUREKA_URL", _http_urls, None,
           "Eureka base URL(s), comma-separated, to read each instance from (default: Eureka is not asked)"),
    EUREKA_TIMEOUT,
    EUREKA_CA_BUNDLE,
    Option("json", "STATUS_JSON", parse_bool, False, "print JSON (one object per instance) instead of a table",
           switch=True),
)


@dataclass(frozen=True)
class CommonConfig:
    redis_url: str = field(repr=False)
    redis_sentinel_password: str | None = field(repr=False)
    log_level: str
    log_format: str
    retry_attempts: int
    retry_interval: int
    metrics_address: str
    metrics_port: int

    @property
    def retry_interval_seconds(self) -> float:
        return self.retry_interval / 1000


@dataclass(frozen=True)
class WatcherConfig(CommonConfig):
    docker_host: str
    hostname: str | None
    ip: str | None
    internal: bool
    tags: str
    ttl: int
    ttl_refresh: int
    resync: int
    deregister: str
    require_label: bool
    use_ip_from_label: str | None
    name_from_image: bool
    ip_lookup_source: str | None
    ip_lookup_retries: int
    ip_lookup_interval: int
    exit_on_ip_lookup_failure: bool
    cleanup: bool
    ec2_metadata_url: str


@dataclass(frozen=True)
class EurekaConfig(CommonConfig):
    eureka_url: tuple[str, ...]
    eureka_timeout: float
    eureka_ca_bundle: str | None


@dataclass(frozen=True)
class RegistrarConfig(EurekaConfig):
    min_renewal_interval: int
    host_forget_margin: int
    alb_check_interval: float


@dataclass(frozen=True)
class HeartbeaterConfig(EurekaConfig):
    tick: float
    batch_size: int
    alb_check_interval: float


@dataclass(frozen=True)
class StatusConfig:
    redis_url: str = field(repr=False)
    redis_sentinel_password: str | None = field(repr=False)
    eureka_url: tuple[str, ...] | None
    eureka_timeout: float
    eureka_ca_bundle: str | None
    json: bool


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {without_passwords(message)}\n")


# The password in `user:password@host`, with or without a scheme before it, in lists of URLs too (a
# password may hold commas: a redis+sentinel:// URL lists its hosts after it).
URL_PASSWORD = re.compile(r"([^/@:,\s]*):[^@/\s]*@")


def without_passwords(text: str) -> str:
    """`text` with every URL password replaced by `***`, for messages."""
    return URL_PASSWORD.sub(r"\1:***@", text)


def _fail(prog: str, message: str) -> NoReturn:
    sys.stderr.write(f"{prog}: error: {message}\n")
    raise SystemExit(2)


def _resolve(prog: str, options: Sequence[Option], argv: Sequence[str] | None,
             environ: Mapping[str, str]) -> dict[str, Any]:
    parser = _OneLineParser(prog=prog, allow_abbrev=False)
    for option in options:
        names = [f"{dashes}{flag}" for flag in (option.flag, *option.aliases) for dashes in ("--", "-")]
        env_note = f" [env {option.env}]"
        if option.switch:
            parser.add_argument(*names, dest=option.field, action="store_const", const="true",
                                help=option.help + env_note)
        else:
            parser.add_argument(*names, dest=option.field, metavar=option.field.upper(),
                                help=option.help + env_note)
    given = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    for option in options:
        raw, origin = given[option.field], f"-{option.flag}"
        if raw is None and environ.get(option.env, "") != "":
            raw, origin = environ[option.env], option.env
        if raw is None:
            values[option.field] = option.default
            continue
        shown = "" if option.secret else f"{without_passwords(raw)!r} "
        if not _is_utf8(raw):
            _fail(prog, f"invalid value {shown}for {origin}: not valid UTF-8")
        try:
            values[option.field] = option.parse(raw)
        except ValueError as err:
            _fail(prog, f"invalid value {shown}for {origin}: {err}")
    return values


def _build(cls: type, values: dict[str, Any]) -> Any:
    return cls(**{f.name: values[f.name] for f in fields(cls)})


def load_watcher(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> WatcherConfig:
    prog = "watcher"
    values = _resolve(prog, WATCHER_OPTIONS, argv, os.environ if environ is None else environ)
    if values["ttl"] <= values["ttl_refresh"]:
        _fail(prog, f"-ttl ({values['ttl']}) must be greater than -ttl-refresh ({values['ttl_refresh']})")
    return _build(WatcherConfig, values)


def load_registrar(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> RegistrarConfig:
    return _build(RegistrarConfig, _with_eureka("registrar", REGISTRAR_OPTIONS, argv, environ))


def load_heartbeater(argv: Sequence[str] | None = None,
                     environ: Mapping[str, str] | None = None) -> HeartbeaterConfig:
    return _build(HeartbeaterConfig, _with_eureka("heartbeater", HEARTBEATER_OPTIONS, argv, environ))


def load_status(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> StatusConfig:
    return _build(StatusConfig, _resolve("registrator-status", STATUS_OPTIONS, argv,
                                         os.environ if environ is None else environ))


def _with_eureka(prog: str, options: Sequence[Option], argv: Sequence[str] | None,
                 environ: Mapping[str, str] | None) -> dict[str, Any]:
    values = _resolve(prog, options, argv, os.environ if environ is None else environ)
    if not values["eureka_url"]:
        _fail(prog, "-eureka-url (env EUREKA_URL) is required")
    if not defaults.eureka_call_fits_in_a_job(values["eureka_timeout"], len(values["eureka_url"])):
        _fail(prog, f"-eureka-timeout ({values['eureka_timeout']}) is too long for {len(values['eureka_url'])} "
                    f"Eureka servers: one call could outlast a job ({defaults.JOB_TIMEOUT_SECONDS}s)")
    return values
