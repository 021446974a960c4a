"""Fault: Redis Sentinel fails over while the whole system runs (primary killed with SIGKILL, replica promoted).

Invariant: a failover costs Eureka nothing, and nothing has to be restarted.
- Every component keeps its process and finds the new primary by itself: a command waits up to
  REDIS_WAIT_SECONDS for one; past that its error reaches the component's own retry (the watcher re-syncs,
  periodic rounds run again, RQ waits for jobs again or the pool member starts a new RQ worker).
- A container registered before the failover stays registered and UP throughout (read per instance, every
  0.1 s, from the kill until the checks below pass): nothing deletes an instance unless its container's
  wanted state says so, and that state was written long before the kill, so the replica has it.
- Its lease is renewed again within RECOVERY_SECONDS of the failover (the sentinels naming the new primary).
  While Redis has no primary its liveness entry (-ttl 3 s) may expire, which pauses its heartbeats; the
  watcher renews the entry within -ttl-refresh (1 s) of reaching the new primary, and heartbeats follow. The
  lease (LEASE_SECONDS, which the dev Eureka, as Netflix's, ends 2 x LEASE_SECONDS after the last renewal)
  outlasts that pause many times over.
- A container started after the failover is registered within RECOVERY_SECONDS: three times what the
  system takes without a fault (tests/test_system.py), and less than a client stuck on the dead primary
  would need (REDIS_WAIT_SECONDS, then RQ's pause).
- RQ still lists a registrar and a heartbeater worker that reported after the failover: their registrations
  were replicated, and each RQ worker reports whenever it finishes a job.
- Every component still stops by itself on SIGTERM (exit status 0).
Not relied on: the watcher's detection of Redis losing writes. Replication is asynchronous, so the last
liveness renewals and heartbeat claims before the kill may be lost; both are rewritten within a second.
Run with a failover faster than REDIS_WAIT_SECONDS (commands just wait) and one slower (errors reach the
components' loops).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from types import SimpleNamespace

import docker
import pytest
from rq import Worker

from shared import keys, queues
from shared.connection import connect
from shared.defaults import REDIS_WAIT_SECONDS
from shared.store import Store
from tests.conftest import HOST, HOST_IP, Components, run_web, start_system
from tests.support import DevEureka, DockerEngine, SentinelGroup, free_port, wait_until

LEASE_SECONDS = 40
LEASE = {"SERVICE_EUREKA_LEASEINFO_RENEWALINTERVALINSECS": "1",
         "SERVICE_EUREKA_LEASEINFO_DURATIONINSECS": str(LEASE_SECONDS)}
RECOVERY_SECONDS = 6
QUICK_FAILOVER_MS = SentinelGroup.DOWN_AFTER_MS
SLOW_FAILOVER_MS = int(REDIS_WAIT_SECONDS * 1000) + 2000


class InstancePoll:
    """Reads one instance from Eureka every 0.1 s in a thread; remembers every read that was not UP."""

    def __init__(self, eureka: DevEureka, app: str, instance_id: str) -> None:
        self.eureka, self.app, self.instance_id = eureka, app, instance_id
        self.reads = 0
        self.not_up: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> InstancePoll:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                instance = self.eureka.instance(self.app, self.instance_id)
                status = "absent" if instance is None else instance["status"]
            except Exception as err:  # noqa: BLE001 - the dev Eureka must answer; count it as a miss
                status = repr(err)
            self.reads += 1
            if status != "UP":
                self.not_up.append(f"{time.strftime('%H:%M:%S')} {status}")


def last_renewal(eureka: DevEureka, instance_id: str) -> int:
    """The instance's `lastRenewalTimestamp`, which each renewal moves on (0 when it is not UP)."""
    instance = eureka.instance("WEB", instance_id)
    return instance["leaseInfo"]["lastRenewalTimestamp"] if instance and instance["status"] == "UP" else 0


@pytest.mark.parametrize("sentinel_group", [QUICK_FAILOVER_MS, SLOW_FAILOVER_MS], indirect=True,
                         ids=["failover-within-redis-wait", "failover-longer-than-redis-wait"])
def test_the_system_keeps_registering_through_a_sentinel_failover_and_eureka_keeps_its_instances(
        sentinel_group: SentinelGroup, components: Components, eureka: DevEureka, docker_engine: DockerEngine,
        docker_client: docker.DockerClient) -> None:
    env = {"REDIS_URL": sentinel_group.url, "REDIS_SENTINEL_PASSWORD": sentinel_group.sentinel_password or "",
           "EUREKA_URL": eureka.url, "DOCKER_HOST": docker_engine.host}
    start_system(components, env, sentinel_group.url)
    before = f"{HOST_IP}_{free_port()}"
    run_web(docker_client, "before", int(before.rpartition("_")[2]), environment=LEASE)
    registered = wait_until(lambda: last_renewal(eureka, before), 15, "the first container registered")
    wait_until(lambda: last_renewal(eureka, before) > registered, 10, "the first container's lease renewed")
    pids = {process.name: process.popen.pid for process in components.started}

    with InstancePoll(eureka, "WEB", before) as poll:
        old = sentinel_group.kill_primary()
        killed_at = time.monotonic()
        new = sentinel_group.wait_for_new_primary(old, timeout=sentinel_group.down_after_ms / 1000 + 20)
        failed_over_at, failed_over_utc = time.monotonic(), datetime.now(timezone.utc)
        renewed_before = last_renewal(eureka, before)
        after = f"{HOST_IP}_{free_port()}"
        after_container = run_web(docker_client, "after", int(after.rpartition("_")[2]), environment=LEASE)

        wait_until(lambda: eureka.instance("WEB", after), RECOVERY_SECONDS,
                   "the container started after the failover registered")
        registered_at = time.monotonic()
        wait_until(lambda: last_renewal(eureka, before) > renewed_before,
                   RECOVERY_SECONDS - (time.monotonic() - failed_over_at),
                   "the first container's lease renewed after the failover")
        renewed_at = time.monotonic()

    print(f"failover {failed_over_at - killed_at:.1f}s after the kill (primary now port {new.port}); then "
          f"new container registered after {registered_at - failed_over_at:.1f}s, first lease renewed after "
          f"{renewed_at - failed_over_at:.1f}s; {poll.reads} reads of the first instance")
    assert poll.not_up == []
    assert poll.reads > (renewed_at - killed_at) * 5
    assert {process.name: process.popen.pid for process in components.started if process.running} == pids
    rq_connection = connect(SimpleNamespace(redis_url=sentinel_group.url,
                                            redis_sentinel_password=sentinel_group.sentinel_password), decode=False)

    def reported_after_the_failover() -> set[str]:
        return {worker.name.partition(".")[0] for worker in Worker.all(connection=rq_connection)
                if worker.last_heartbeat and worker.last_heartbeat > failed_over_utc}

    # Each reports when it has finished a job: the heartbeater's next batch is due within a second; the
    # registrar's RQ worker is given one (the change above came on the registrars' fast lane).
    queues.requeue_reconcile(Store(connect(SimpleNamespace(redis_url=sentinel_group.url,
                                                           redis_sentinel_password=sentinel_group.sentinel_password))),
                             queues.registrar_queue(rq_connection), keys.source(HOST, after_container.id))
    wait_until(lambda: reported_after_the_failover() == {"registrar", "heartbeater"}, RECOVERY_SECONDS,
               "the registrar's and the heartbeater's RQ workers to report after the failover")
    for process in reversed(components.started):
        assert process.stop() == 0, f"{process.name} did not stop by itself"
    for process in components.started:
        assert sentinel_group.password not in process.log()
        assert sentinel_group.sentinel_password not in process.log()
