"""Redis clients for every component: a Redis server named by a `redis://`, `rediss://` or `unix://` URL,
or the primary of a Redis Sentinel deployment named by a `redis+sentinel://` URL.

Through Sentinel, a client asks the sentinels where the primary is each time it opens a connection, and
drops a connection whose server was demoted to a replica, so it follows a failover by itself. Either way,
a command that cannot reach Redis is tried again, with growing pauses, for up to
`defaults.REDIS_WAIT_SECONDS` (a failover, a restart) before its error reaches the caller.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from shared import defaults

T = TypeVar("T")

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_URL_FORM = "redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]"
DEFAULT_SENTINEL_PORT = 26379

_SENTINEL_ADDRESS = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\[\]:/]+)(?::(?P<port>\d{1,5}))?")


class RedisSettings(Protocol):
    redis_url: str
    redis_sentinel_password: str | None


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of a `redis+sentinel://` URL. A ValueError says what is wrong without repeating the
    credentials."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME or parts.query or parts.fragment:
        raise ValueError(f"expected {SENTINEL_URL_FORM}")
    hosts = parts.netloc.rpartition("@")[2]
    sentinels = tuple(_sentinel_address(member) for member in hosts.split(","))
    path = parts.path.strip("/").split("/") if parts.path.strip("/") else []
    if not path or len(path) > 2:
        raise ValueError(f"expected the service name (and a db number) after the sentinels: {SENTINEL_URL_FORM}")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"db must be a number, not {path[1]!r}")
    return SentinelUrl(sentinels, unquote(path[0]), int(path[1]) if len(path) == 2 else 0,
                       unquote(parts.username) if parts.username else None,
                       unquote(parts.password) if parts.password is not None else None)


def _sentinel_address(member: str) -> tuple[str, int]:
    match = _SENTINEL_ADDRESS.fullmatch(member.strip())
    if match is None or not 0 < int(match["port"] or DEFAULT_SENTINEL_PORT) < 65536:
        raise ValueError(f"bad sentinel address {member.strip()!r}: expected host[:port]")
    return match["host"].strip("[]"), int(match["port"] or DEFAULT_SENTINEL_PORT)


def connect(settings: RedisSettings, *, decode: bool = True) -> redis.Redis:
    """A client of the Redis primary that `settings.redis_url` names (RQ needs `decode=False`)."""
    options: dict[str, Any] = {
        "decode_responses": decode, "socket_timeout": defaults.REDIS_SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": defaults.REDIS_CONNECT_TIMEOUT_SECONDS,
        "health_check_interval": defaults.REDIS_HEALTH_CHECK_SECONDS,
        "retry": _RetryWithin(defaults.REDIS_WAIT_SECONDS),
    }
    if urlsplit(settings.redis_url).scheme != SENTINEL_SCHEME:
        return redis.Redis.from_url(settings.redis_url, **options)
    url = parse_sentinel_url(settings.redis_url)
    sentinel_options = {
        "password": settings.redis_sentinel_password, "socket_timeout": defaults.SENTINEL_TIMEOUT_SECONDS,
        "socket_connect_timeout": defaults.SENTINEL_TIMEOUT_SECONDS, "retry": Retry(NoBackoff(), 0),
    }
    sentinel = Sentinel([], sentinel_kwargs=sentinel_options)
    sentinel.sentinels = [_SentinelClient(host, port, **sentinel_options) for host, port in url.sentinels]
    return sentinel.master_for(url.service, db=url.db, username=url.username, password=url.password,
                               connection_class=_PrimaryConnection, **options)


class _PrimaryConnection(SentinelManagedConnection):
    """redis-py's Sentinel connection, mended in two ways (redis-py 8.1):
    - It asks the sentinels for the primary whenever it reconnects. redis-py's own reconnects a connection
      dropped during a command (a blocking BLMOVE of an RQ worker, say) to the address it had, the dead
      primary, until the command's retries run out (redis-py issue 3874).
    - It closes when a read is interrupted (a stop signal, an RQ job timeout), as plain connections do.
      redis-py's own keeps it, and the interrupted command's late answer is then read as the next one's.
    """

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if retry_socket_connect and not self._sock:
            # connect() asks the sentinels, then comes back here with retry_socket_connect=False.
            self.connect()
        else:
            super().connect_check_health(check_health=check_health, retry_socket_connect=retry_socket_connect)

    def read_response(self, *args: Any, disconnect_on_error: bool = True, **kwargs: Any) -> Any:
        return super().read_response(*args, disconnect_on_error=disconnect_on_error, **kwargs)


class _SentinelClient(redis.Redis):
    """A client of one sentinel, named by its address in errors (redis-py's own repr runs to kilobytes,
    once per sentinel, in every "No master found" error)."""

    def __repr__(self) -> str:
        options = self.connection_pool.connection_kwargs
        return f"sentinel {options['host']}:{options['port']}"


class _RetryWithin(Retry):
    """redis-py's Retry bounded by time rather than by a number of attempts (connecting is itself retried
    inside a command's retry, so counts would multiply; deadlines do not). A refused password is final."""

    def __init__(self, seconds: float) -> None:
        super().__init__(EqualJitterBackoff(cap=1.0, base=0.1), retries=-1)
        self.seconds = seconds

    def call_with_retry(self, do: Callable[[], T], fail: Callable[..., Any],
                        is_retryable: Callable[[Exception], bool] | None = None,
                        with_failure_count: bool = False) -> T:
        deadline = time.monotonic() + self.seconds

        def retryable(error: Exception) -> bool:
            return (time.monotonic() < deadline and not isinstance(error, redis.AuthenticationError)
                    and (is_retryable is None or is_retryable(error)))

        return super().call_with_retry(do, fail, retryable, with_failure_count)
