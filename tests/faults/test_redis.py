"""Redis faults: restarted with its data lost, rolled back to an older snapshot.

Invariant: the watcher notices any loss or rollback at its next liveness renewal (Redis's count of the
changes it published differs from its own) and publishes its whole host again; the registrars converge
Eureka to it. Workers survive Redis going away and coming back.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import docker
import pytest
import redis

from shared import keys
from tests.conftest import FAST_LEASE, HOST_IP, Components, run_web, start_system
from tests.faults.convergence import wait_converged, web_key
from tests.support import DevEureka, DockerEngine, RedisServer, free_port, wait_until

# Noticed at the next renewal (1 s), re-published at once, applied within a job or two.
AFTER_LOSS_BOUND = 10



@pytest.fixture
def own_system(tmp_path: Path, eureka: DevEureka, docker_engine: DockerEngine,
               docker_client: docker.DockerClient) -> Iterator[SimpleNamespace]:
    """The whole system on a Redis of its own, which the test may restart."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    components = Components(tmp_path, {"REDIS_URL": server.url, "LOG_LEVEL": "DEBUG",
                                       "REGISTRATOR_RETRY_INTERVAL": "200", "REGISTRATOR_MIN_RENEWAL_INTERVAL": "1"})
    env = {"EUREKA_URL": eureka.url, "DOCKER_HOST": docker_engine.host}
    try:
        start_system(components, env, server.url)
        yield SimpleNamespace(redis_server=server, redis=client, eureka=eureka, docker=docker_client,
                              components=components)
    finally:
        components.stop_all()
        client.close()
        server.stop()


def test_redis_restarted_with_its_data_lost(own_system: SimpleNamespace) -> None:
    system = own_system
    port, later = free_port(), free_port()
    run_web(system.docker, "web1", port, environment=FAST_LEASE)
    wait_converged(system.redis, system.eureka, 3, "the start", expect={web_key(port)})

    system.redis_server.stop()
    system.redis_server.start()  # no persistence: empty
    wait_converged(system.redis, system.eureka, AFTER_LOSS_BOUND, "Redis restarted empty", expect={web_key(port)})
    run_web(system.docker, "web2", later, environment=FAST_LEASE)
    wait_converged(system.redis, system.eureka, 3, "a start after the restart", expect={web_key(port), web_key(later)})


def test_redis_rolled_back_to_an_older_snapshot(own_system: SimpleNamespace) -> None:
    system = own_system
    first, second = free_port(), free_port()
    old = run_web(system.docker, "old", first, environment=FAST_LEASE)
    wait_converged(system.redis, system.eureka, 3, "the first start", expect={web_key(first)})
    system.redis.save()
    snapshot = Path(system.redis_server.workdir) / "snapshot.rdb"
    shutil.copy(Path(system.redis_server.workdir) / "dump.rdb", snapshot)

    # Changes the snapshot does not have: one container more, one less.
    run_web(system.docker, "new", second, environment=FAST_LEASE)
    old.remove(force=True)
    wait_converged(system.redis, system.eureka, 3, "the changes", expect={web_key(second)})
    assert system.eureka.instance("WEB", f"{HOST_IP}_{first}") is None

    assert rolled_back_instances(snapshot, keys.source(system.docker.info()["Name"], old.id)), \
        "the rollback brings the removed container back in Redis"
    system.redis_server.stop()
    shutil.copy(snapshot, Path(system.redis_server.workdir) / "dump.rdb")
    system.redis_server.start()

    wait_converged(system.redis, system.eureka, AFTER_LOSS_BOUND, "Redis rolled back", expect={web_key(second)})
    wait_until(lambda: system.eureka.instance("WEB", f"{HOST_IP}_{first}") is None, 3, "the removed one stays gone")
    assert "Redis lost changes this watcher published" in system.components.logs()


def rolled_back_instances(snapshot: Path, source: str) -> set[bytes]:
    """The instances `source` has in `snapshot`, read on a Redis of its own: once the rolled-back Redis
    is up, the system may already be undoing the rollback."""
    workdir = snapshot.parent / "snapshot-check"
    workdir.mkdir()
    shutil.copy(snapshot, workdir / "dump.rdb")
    server = RedisServer(workdir, name="snapshot-check").start()
    try:
        with server.client() as client:
            return client.smembers(keys.source_instances(source))
    finally:
        server.stop()
