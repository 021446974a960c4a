"""Nothing grows without bound: dead hosts are forgotten, queued jobs stay O(sources), retries back off."""

from __future__ import annotations


import redis
from rq import Queue

from shared import keys, queues
from shared.models import ContainerState, InstanceStatus, Phase
from shared.store import Store
from tests.conftest import FAST_LEASE, HOST_IP, run_web, start_system
from tests.support import free_port, wait_until


def test_a_host_whose_watcher_is_gone_for_good_is_forgotten(components, eureka, docker_engine, docker_client,
                                                            redis_client: redis.Redis, redis_url: str) -> None:
    env = {"EUREKA_URL": eureka.url, "DOCKER_HOST": docker_engine.host, "REGISTRATOR_HOST_FORGET_MARGIN": "1"}
    watcher = start_system(components, env, redis_url)
    host = docker_client.info()["Name"]
    port = free_port()
    run_web(docker_client, "web1", port, environment=FAST_LEASE)
    wait_until(lambda: eureka.instance("WEB", f"{HOST_IP}_{port}"), 3, "registration")

    watcher.kill9()
    # Liveness TTL 3 s + 2 x lease 3 s + margin 1 s, plus a sweep.
    wait_until(lambda: redis_client.zscore(keys.HOSTS, host) is None, 15, "the host forgotten")
    assert not redis_client.exists(keys.host_sources(host), keys.host(host))
    assert redis_client.zcard(keys.HEARTBEAT_DUE) == 0 and redis_client.hlen(keys.HEARTBEAT_INTERVAL) == 0
    assert not [key for key in redis_client.scan_iter(f"{keys.PREFIX}state:*")]
    assert eureka.instance("WEB", f"{HOST_IP}_{port}") is None
    assert "forgot host" in components.logs()


def test_queued_reconciles_stay_one_per_source_however_often_states_change(redis_client: redis.Redis,
                                                                          redis_url: str) -> None:
    """No registrar is running (Eureka down, workers busy): 200 changes of 10 containers leave 10 pending
    states, and the sweep, however often it runs, queues 10 jobs."""
    store = Store(redis_client)
    queue = queues.registrar_queue(redis.Redis.from_url(redis_url))
    store.claim_host("host-a", "token", 30)
    for change in range(20):
        for number in range(10):
            container_id = f"{number:064x}"
            state = ContainerState(host="host-a", container_id=container_id, container_name=f"/c{number}",
                                   phase=Phase.RUNNING if change % 2 else Phase.EXITED, status=InstanceStatus.UP)
            store.publish_state(keys.source("host-a", container_id), state, ttl=30, sweep_after=0)
    assert redis_client.zcard(keys.PENDING) == 10 and queue.count == 0

    for _ in range(3):
        for source in store.claim_pending(100):
            queues.requeue_reconcile(store, queue, source)
        redis_client.zadd(keys.PENDING, {source: 0 for source in redis_client.zrange(keys.PENDING, 0, -1)})
    assert queue.count == 10
    assert sorted(job.description for job in queue.jobs)[:2] == ["reconcile c0 on host-a", "reconcile c1 on host-a"]


def test_each_source_backs_off_on_its_own(redis_client: redis.Redis) -> None:
    store = Store(redis_client)
    for source in ("host-a:x", "host-a:y"):
        redis_client.zadd(keys.PENDING, {source: 0})
    delays = []
    for _ in range(8):
        now = store.now()
        redis_client.zadd(keys.PENDING, {"host-a:x": 0})  # due again at once, as if its time had come
        assert "host-a:x" in store.claim_pending(10)
        delays.append(round(redis_client.zscore(keys.PENDING, "host-a:x") - now))
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300]
    assert redis_client.hget(keys.PENDING_TRIES, "host-a:y") == "1", "claimed once, with the first sweep"


def test_heartbeat_jobs_expire_once_their_interval_has_passed(redis_client: redis.Redis, redis_url: str) -> None:
    queue = Queue(queues.HEARTBEAT_QUEUE, connection=redis.Redis.from_url(redis_url))
    job = queues.enqueue_heartbeats(queue, ["WEB/10.0.0.5_18080", "WEB/10.0.0.5_18081"], expires_after=1.5)
    assert job.description == "heartbeat WEB/10.0.0.5_18080 and 1 more"
    assert 0 < redis_client.pttl(job.key) <= 1000
    wait_until(lambda: not redis_client.exists(job.key), 3, "the unstarted job to expire")
