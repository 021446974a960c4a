"""Redis credentials stay secret: the whole system on a password-protected redis-server, then every
component's output, process title, and every job and key in Redis is searched for the password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import docker
import pytest
import redis
from rq.job import Job

from tests.conftest import FAST_LEASE, HOST_IP, Components, run_web, start_system
from tests.support import REPO, DevEureka, DockerEngine, RedisServer, free_port, wait_until

PASSWORD = "s3cret-Redis-pw"
WRONG_PASSWORD = "wr0ng-Redis-pw"


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, password=PASSWORD).start()
    yield server
    server.stop()


def everything_in(client: redis.Redis) -> Iterator[Any]:
    """Every key with its value, and the arguments and description of every RQ job (stored compressed)."""
    readers = {b"string": client.get, b"hash": client.hgetall, b"set": client.smembers,
               b"zset": lambda key: client.zrange(key, 0, -1), b"list": lambda key: client.lrange(key, 0, -1),
               b"stream": client.xrange}
    for key in client.scan_iter():
        kind = client.type(key)
        yield key, readers[kind](key)
        if key.startswith(b"rq:job:") and kind == b"hash":
            job = Job.fetch(key.decode().removeprefix("rq:job:"), connection=client)
            yield job.args, job.kwargs, job.description, job.meta


def test_no_component_shows_the_redis_password(
        protected_redis: RedisServer, components: Components, eureka: DevEureka, docker_engine: DockerEngine,
        docker_client: docker.DockerClient) -> None:
    env = {"REDIS_URL": protected_redis.url, "EUREKA_URL": eureka.url, "DOCKER_HOST": docker_engine.host}
    assert PASSWORD in env["REDIS_URL"]
    start_system(components, env, protected_redis.url)
    port = free_port()
    container = run_web(docker_client, "web1", port, environment=FAST_LEASE)
    registered = wait_until(lambda: eureka.instance("WEB", f"{HOST_IP}_{port}"), 5, "the registration")
    wait_until(lambda: eureka.instance("WEB", f"{HOST_IP}_{port}")["leaseInfo"]["lastRenewalTimestamp"]
               > registered["leaseInfo"]["lastRenewalTimestamp"], 5, "a heartbeat")
    container.stop(timeout=1)
    wait_until(lambda: eureka.instance("WEB", f"{HOST_IP}_{port}") is None, 5, "the deregistration")

    wrong = components.start("registrar", "-retry-attempts", "1", name="registrar-wrong-password",
                             env={**env, "REDIS_URL": protected_redis.url.replace(PASSWORD, WRONG_PASSWORD)})
    assert wrong.popen is not None and wrong.popen.wait(30) == 1
    assert "giving up on Redis" in wrong.log()

    for process in components.started:
        if process.running:
            assert PASSWORD not in Path(f"/proc/{process.popen.pid}/cmdline").read_text(errors="replace")
        assert PASSWORD not in process.log() and WRONG_PASSWORD not in process.log(), process.name
    with protected_redis.client() as client:
        contents = repr(list(everything_in(client)))
    assert "web1" in contents
    assert PASSWORD not in contents


@pytest.mark.parametrize("argv", [["-redis-url", f"http://:{PASSWORD}@127.0.0.1:6379/0"],
                                  ["-redis-url", f"redis+sentinel://:{PASSWORD}@127.0.0.1:26379"]])
def test_a_bad_redis_url_is_named_without_its_password(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "watcher", *argv], cwd=REPO, capture_output=True, text=True,
                            timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "-redis-url" in result.stderr and ":***@127.0.0.1" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
