"""Redis connections: `redis+sentinel://` URLs, Redis credentials in configuration errors, and a client that
follows a real Sentinel failover."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from shared import config
from shared.connection import SentinelUrl, connect, parse_sentinel_url
from shared.defaults import REDIS_WAIT_SECONDS
from tests.support import RedisServer, SentinelGroup, configuration_error, wait_until


@pytest.mark.parametrize(("url", "expected"), [
    ("redis+sentinel://h1:26380,h2,10.0.0.3:26381/mymaster",
     SentinelUrl((("h1", 26380), ("h2", 26379), ("10.0.0.3", 26381)), "mymaster", 0)),
    ("redis+sentinel://:p%40ss@h1:1/svc/3", SentinelUrl((("h1", 1),), "svc", 3, None, "p@ss")),
    ("redis+sentinel://app:secret@[::1]:26379/svc/", SentinelUrl((("::1", 26379),), "svc", 0, "app", "secret")),
])
def test_sentinel_urls(url: str, expected: SentinelUrl) -> None:
    parsed = parse_sentinel_url(url)
    assert parsed == expected
    assert (parsed.username, parsed.password) == (expected.username, expected.password)


@pytest.mark.parametrize(("url", "complaint"), [
    ("redis+sentinel://:secret@h1:26379", "service name"),
    ("redis+sentinel://:secret@h1:26379/svc/one", "db must be a number"),
    ("redis+sentinel://:secret@h1:26379/svc/0/extra", "service name"),
    ("redis+sentinel://:secret@h1:port/svc", "bad sentinel address 'h1:port'"),
    ("redis+sentinel://:secret@h1:0/svc", "bad sentinel address 'h1:0'"),
    ("redis+sentinel://:secret@h1,,h2/svc", "bad sentinel address ''"),
    ("redis+sentinel://:secret@/svc", "bad sentinel address ''"),
    ("redis+sentinel://:secret@h1/svc?ssl=true", "expected redis+sentinel://"),
])
def test_bad_sentinel_urls_say_what_is_wrong_without_the_password(url: str, complaint: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_sentinel_url(url)
    assert complaint in str(error.value)
    assert "secret" not in str(error.value)


@pytest.mark.parametrize(("argv", "environ", "culprit"), [
    ([], {"REDIS_URL": "redis+sentinel://:s3cr3t-pw@h1:26379"}, "REDIS_URL"),
    (["-redis-url", "http://:s3cr3t-pw@h1:6379/0"], {}, "-redis-url"),
    (["-redis-url", "redis://:s3cr3t-pw@h1:port/0"], {}, "-redis-url"),
    ([], {"REDIS_URL": "redis://:s3cr3t-pw@h1:6379/0?socket_timeout=soon"}, "REDIS_URL"),
    (["-redis-url", "redis+sentinel://user:s3cr3t-pw@h1:x/svc"], {}, "-redis-url"),
    ([], {"REDIS_SENTINEL_PASSWORD": "s3cr3t-pw\udcff"}, "REDIS_SENTINEL_PASSWORD"),
    (["-redis-sentinel-password", "s3cr3t-pw\udcff"], {}, "-redis-sentinel-password"),
    (["-redis-uri", "redis://:s3cr3t-pw@h1/0"], {}, "-redis-uri"),
])
def test_configuration_errors_never_show_a_redis_password(
        argv: list[str], environ: dict[str, str], culprit: str, capsys: pytest.CaptureFixture[str]) -> None:
    error = configuration_error(config.load_watcher, argv, environ, capsys)
    assert culprit in error
    assert "s3cr3t" not in error


def test_configuration_accepts_sentinel_urls_and_keeps_passwords_out_of_its_repr() -> None:
    settings = config.load_registrar(["-redis-sentinel-password", "s3cr3t-sentinel"], {
        "REDIS_URL": "redis+sentinel://:s3cr3t-redis@h1:26379,h2:26379/svc/1", "EUREKA_URL": "http://e/eureka"})
    assert settings.redis_url == "redis+sentinel://:s3cr3t-redis@h1:26379,h2:26379/svc/1"
    assert settings.redis_sentinel_password == "s3cr3t-sentinel"
    assert "s3cr3t" not in repr(settings)


def test_a_password_protected_redis_server(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, password="p@ss word").start()
    try:
        url = f"redis://:p%40ss%20word@127.0.0.1:{server.port}/2"
        client = connect(SimpleNamespace(redis_url=url, redis_sentinel_password=None))
        client.set("key", "value")
        assert server.client(db=2, decode_responses=True).get("key") == "value"
        wrong = connect(SimpleNamespace(redis_url=f"redis://:wrong-s3cr3t@127.0.0.1:{server.port}/0",
                                        redis_sentinel_password=None))
        with pytest.raises(redis.AuthenticationError) as error:
            wrong.ping()
        assert "s3cr3t" not in str(error.value)
    finally:
        server.stop()


def test_a_client_follows_a_sentinel_failover(sentinel_group: SentinelGroup) -> None:
    client = connect(SimpleNamespace(redis_url=sentinel_group.url,
                                     redis_sentinel_password=sentinel_group.sentinel_password))
    client.set("before", "1")
    assert client.wait(1, 5000) == 1  # the replica has it too (replication is asynchronous)
    old = sentinel_group.server(sentinel_group.primary_port())
    assert old.client(decode_responses=True).get("before") == "1"

    sentinel_group.kill_primary()
    killed_at = time.monotonic()
    client.set("after", "2")  # waits while the sentinels promote the replica, then lands there
    waited = time.monotonic() - killed_at

    new = sentinel_group.wait_for_new_primary(old, timeout=1)
    assert new.client(decode_responses=True).mget("before", "after") == ["1", "2"]
    assert waited < REDIS_WAIT_SECONDS
    assert client.get("after") == "2"


def test_a_blocking_read_in_progress_moves_to_the_new_primary(sentinel_group: SentinelGroup) -> None:
    """As an RQ worker waits for jobs: the BLPOP in progress when the primary dies is sent again to the new
    one (not to the dead one's address until the retries run out)."""
    settings = SimpleNamespace(redis_url=sentinel_group.url, redis_sentinel_password=sentinel_group.sentinel_password)
    waiting, pushing = connect(settings), connect(settings)
    popped: list[object] = []
    reader = threading.Thread(target=lambda: popped.append(waiting.blpop(["jobs"], timeout=30)), daemon=True)
    reader.start()
    wait_until(lambda: any(client["cmd"] == "blpop" for client in pushing.client_list()), 5, "the BLPOP to wait")

    old = sentinel_group.kill_primary()
    sentinel_group.wait_for_new_primary(old, timeout=20)
    pushing.rpush("jobs", "job-1")

    reader.join(timeout=REDIS_WAIT_SECONDS / 2)
    assert popped == [("jobs", "job-1")]


def test_a_read_interrupted_by_a_signal_leaves_no_answer_behind(sentinel_group: SentinelGroup) -> None:
    """As SIGTERM stops an RQ worker waiting for jobs, or RQ's job timeout interrupts a job: the connection of
    the interrupted BLPOP must not be handed to the next command, which would wait behind it and get its
    answer."""
    client = connect(SimpleNamespace(redis_url=sentinel_group.url,
                                     redis_sentinel_password=sentinel_group.sentinel_password))

    class Interrupted(Exception):
        pass

    def interrupt(*_: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(Interrupted):
            client.blpop(["jobs"], timeout=5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    started = time.monotonic()
    assert client.set("key", "value") is True
    assert client.get("key") == "value"
    assert time.monotonic() - started < 2


def test_a_wrong_sentinel_password_fails_without_showing_it(sentinel_group: SentinelGroup) -> None:
    client = connect(SimpleNamespace(redis_url=sentinel_group.url, redis_sentinel_password="wrong-s3cr3t"))
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError) as error:
        client.ping()
    assert "No master found" in str(error.value)
    assert f"sentinel 127.0.0.1:{sentinel_group.sentinel_ports[0]} - auth:AuthenticationError" in str(error.value)
    assert "s3cr3t" not in str(error.value) and sentinel_group.password not in str(error.value)
    assert time.monotonic() - started < REDIS_WAIT_SECONDS + 5
