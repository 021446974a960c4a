"""`registrator-status` on the running system: containers in several situations (UP, DOWN, an instance a second
host is refused, one Eureka lost, one nobody vouches for any more), then the table and the JSON checked row by
row. It runs as a Redis user that may only read (no write, no SCAN or KEYS): it works through the indexes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from types import SimpleNamespace
from typing import Mapping

import pytest
import redis

from shared import defaults, keys, queues
from shared.eureka import EurekaClient
from shared.models import ContainerState, InstanceStatus, Phase, ServiceRecord
from shared.store import Store
from status.snapshot import read_eureka
from tests.conftest import FAST_LEASE, HOST, HOST_IP, run_web
from tests.stub_http import Answer, LoopbackServer, StubServer
from tests.support import REPO, free_port, wait_until

READER_PASSWORD = "status-reader-pw"
# The status view's last outputs (table, JSON), kept like the dashboard's screenshots.
ARTIFACTS = REPO / ".artifacts" / "status"
OTHER_HOST = "host-b"


def status(system: SimpleNamespace, *args: str, eureka: bool = True) -> subprocess.CompletedProcess[str]:
    port = system.redis.connection_pool.connection_kwargs["port"]
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": f"redis://reader:{READER_PASSWORD}@127.0.0.1:{port}/0"}
    if eureka:
        env["EUREKA_URL"] = system.eureka.url
    return subprocess.run([sys.executable, "-m", "status", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)


def rows_by_instance(system: SimpleNamespace) -> dict[tuple[str, str], dict]:
    result = status(system, "--json")
    assert result.returncode == 0, result.stderr
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "status.json").write_text(result.stdout)
    document = json.loads(result.stdout)
    return {(row["host"], row["instance"]): row for row in document["instances"]}


@pytest.fixture
def reader(system: SimpleNamespace) -> None:
    """A Redis user that may read keys, and nothing else."""
    system.redis.execute_command("ACL", "SETUSER", "reader", "on", f">{READER_PASSWORD}", "~*", "&*", "+@read",
                                 "-@dangerous", "-scan", "-keys", "+time", "+ping")


TWIN_ID = "c" * 64
TWIN_SOURCE = keys.source(OTHER_HOST, TWIN_ID)


def publish_from_another_host(system: SimpleNamespace, port: int | None) -> None:
    """A second host's container deriving the same Eureka instance on `port` (None: the container is gone),
    its watcher played by the test, and its reconcile job for the real registrar."""
    state = None
    if port is not None:
        record = ServiceRecord(service_id=f"{OTHER_HOST}:twin:80", name="web", ip=HOST_IP, port=port,
                               exposed_port=80, protocol="tcp", host_ip=HOST_IP, container_id=TWIN_ID,
                               container_name="/twin")
        state = ContainerState(host=OTHER_HOST, container_id=TWIN_ID, container_name="/twin", phase=Phase.RUNNING,
                               status=InstanceStatus.UP, services=(record,))
    store = Store(system.redis)
    store.claim_host(OTHER_HOST, "test-watcher", 60)
    job_id = queues.new_job_id()
    store.publish_state(TWIN_SOURCE, state, ttl=60, sweep_after=5, job_id=job_id, force=True)
    rq_connection = redis.Redis(port=system.redis.connection_pool.connection_kwargs["port"])
    queues.enqueue_reconcile(queues.registrar_queue(rq_connection), TWIN_SOURCE, "/twin", job_id)


def test_status_shows_every_instance_and_why_it_differs(system: SimpleNamespace, reader: None) -> None:
    up_port, down_port, lost_port = free_port(), free_port(), free_port()
    up = run_web(system.docker, "web-up", up_port, environment=FAST_LEASE)
    down = run_web(system.docker, "web-down", down_port, environment=FAST_LEASE)
    # The default renewal interval (30 s): no heartbeat puts it back in Eureka while the test looks.
    run_web(system.docker, "web-lost", lost_port)
    for port in (up_port, down_port, lost_port):
        wait_until(lambda: system.eureka.instance("WEB", f"{HOST_IP}_{port}"), 10,  # noqa: B023
                   f"WEB/{HOST_IP}_{port}")
    down.pause()
    wait_until(lambda: system.eureka.instance("WEB", f"{HOST_IP}_{down_port}")["status"] == "DOWN", 10, "DOWN")
    system.eureka.session.delete(f"{system.eureka.address}/apps/WEB/{HOST_IP}_{lost_port}", timeout=5)
    publish_from_another_host(system, up_port)
    wait_until(lambda: system.redis.smembers(keys.instance_claimants(f"WEB/{HOST_IP}_{up_port}")), 10,
               "the second host refused")

    rows = rows_by_instance(system)
    up_row = rows[(HOST, f"WEB/{HOST_IP}_{up_port}")]
    assert up_row["container_name"] == "web-up" and up_row["container_id"] == up.id[:12]
    assert up_row["wanted"] == "UP" and up_row["eureka"] == "UP" and up_row["registered"] is True
    assert 0 < up_row["liveness_ttl_seconds"] <= 3
    # Renewed every second, its 3 s lease (Netflix: renewal time + 3 s, expiring 3 s after that) ends in 3-6 s.
    assert up_row["last_heartbeat_seconds_ago"] < 2.5 and 2 < up_row["lease_expires_in_seconds"] <= 6
    assert up_row["reasons"] == [] and up_row["ok"] is True

    down_row = rows[(HOST, f"WEB/{HOST_IP}_{down_port}")]
    assert (down_row["wanted"], down_row["eureka"], down_row["liveness_ttl_seconds"]) == ("DOWN", "DOWN", None)
    assert down_row["reasons"] == ["not vouched: container DOWN (no heartbeats: its lease expires)"]

    lost_row = rows[(HOST, f"WEB/{HOST_IP}_{lost_port}")]
    assert lost_row["eureka"] == "missing" and lost_row["registered"] is True
    assert lost_row["reasons"] == ["missing in Eureka; the next heartbeat registers it again"]
    assert 0 < lost_row["next_heartbeat_in_seconds"] <= 30

    refused = rows[(OTHER_HOST, f"WEB/{HOST_IP}_{up_port}")]
    assert refused["container_name"] == "twin" and refused["owner"] == keys.source(HOST, up.id)
    assert refused["registered"] is False and refused["wanted"] == "UP"
    assert refused["reasons"][0] == f"refused: instance owned by container web-up ({up.id[:12]}) on host {HOST}"
    assert refused["reasons"][1].startswith("pending") and "next try in" in refused["reasons"][1]
    assert refused["pending"]["tries"] >= 0
    assert len(rows) == 4

    table = status(system)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["HOST", "CONTAINER", "INSTANCE", "WANTED", "EUREKA", "TTL", "HEARTBEAT", "WHY"]
    line = next(line for line in lines if line.startswith(f"{HOST} ") and f"web-up ({up.id[:12]})" in line)
    assert f"WEB/{HOST_IP}_{up_port}" in line and line.endswith(" ok") and " UP " in line
    assert any(f"twin ({TWIN_ID[:12]})" in line and "UP (refused)" in line and "refused: instance owned by"
               in line for line in lines)
    assert any("web-lost" in line and "missing in Eureka" in line for line in lines)
    (ARTIFACTS / "status-table.txt").write_text(table.stdout)

    # Without Eureka's view: what Redis says, Eureka's column unknown.
    redis_only = status(system, eureka=False)
    assert redis_only.returncode == 0, redis_only.stderr
    assert all(" ? " in line for line in redis_only.stdout.splitlines()[1:])

    # The twin goes first: with the owner's watcher dead, it would rightly take the instance over.
    publish_from_another_host(system, None)
    wait_until(lambda: system.redis.zscore(keys.PENDING, TWIN_SOURCE) is None, 10, "the twin's end applied")
    assert all(row["container_name"] != "twin" for row in rows_by_instance(system).values())
    # The watcher dies: nobody vouches for the running container any more; Eureka still holds it for now.
    system.watcher.kill9()
    wait_until(lambda: system.redis.ttl(keys.live(keys.source(HOST, up.id))) == -2, 6, "the liveness entry to expire")
    stale = rows_by_instance(system)[(HOST, f"WEB/{HOST_IP}_{up_port}")]
    assert stale["liveness_ttl_seconds"] is None and stale["eureka"] == "UP"
    assert stale["reasons"][0].startswith("stale in Eureka: nobody vouches (no heartbeats: its lease expires); "
                                          f"the watcher of {HOST} is gone, last seen ")
    after = status(system)
    assert after.returncode == 0, after.stderr
    (ARTIFACTS / "status-table-watcher-gone.txt").write_text(after.stdout)


def test_status_names_a_redis_it_cannot_read_without_its_password(tmp_path) -> None:
    port = free_port()
    result = subprocess.run([sys.executable, "-m", "status", "-redis-url", f"redis://:hidden-pw@127.0.0.1:{port}/0"],
                            cwd=REPO, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert result.stderr.startswith("registrator-status: error: cannot read Redis: ConnectionError")
    assert "hidden-pw" not in result.stderr + result.stdout


class EurekaHoldingEachBatch(LoopbackServer):
    """Answers GET /eureka/apps/WEB/{id} only once `defaults.STATUS_EUREKA_READS` requests wait for their
    answers together: a status view that asks one at a time is never answered (500 after 10 s). Even ports
    are registered (200), odd ones unknown (404)."""

    def __init__(self) -> None:
        super().__init__()
        self.url = f"{self.base_url}/eureka"
        self.batch = threading.Barrier(defaults.STATUS_EUREKA_READS, timeout=10)

    def answer(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        try:
            self.batch.wait()
        except threading.BrokenBarrierError:
            return Answer(500, "asked one at a time")
        instance_id = path.rsplit("/", 1)[1]
        if int(instance_id.rsplit("_", 1)[1]) % 2:
            return Answer(404)
        return Answer(200, json.dumps({"instance": {"instanceId": instance_id, "app": "WEB", "status": "UP"}}))


def test_status_reads_eureka_several_instances_at_a_time() -> None:
    ports = range(20000, 20000 + 4 * defaults.STATUS_EUREKA_READS)
    asked = [keys.instance_key("WEB", f"10.0.0.1_{port}") for port in ports]
    with EurekaHoldingEachBatch() as eureka:
        view = read_eureka(EurekaClient([eureka.url], 15, attempts=1), asked)
    assert view.trouble is None
    assert list(view.records) == asked
    for port, key in zip(ports, asked):
        wanted = None if port % 2 else {"instanceId": f"10.0.0.1_{port}", "app": "WEB", "status": "UP"}
        assert view.records[key] == wanted


def test_status_stops_asking_an_unavailable_eureka() -> None:
    asked = [keys.instance_key("WEB", f"10.0.0.1_{port}") for port in range(20000, 20100)]
    with StubServer(Answer(503, "overloaded")) as eureka:
        view = read_eureka(EurekaClient([eureka.url], 5, attempts=1), asked)
    assert view.records == {}
    assert view.trouble is not None and view.trouble.startswith("Eureka not read: ")
    assert "503" in view.trouble
    # Only the requests already on their way when the first one failed.
    assert 1 <= len(eureka.requests) <= defaults.STATUS_EUREKA_READS
