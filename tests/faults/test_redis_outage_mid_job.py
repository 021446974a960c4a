"""Fault: Redis goes away while a heartbeater worker is in the middle of a job, for longer than a Redis
command waits (REDIS_WAIT_SECONDS), and comes back (restarted, empty).

Invariant: the pool member survives without being restarted. RQ's work loop rides out Redis errors only
while it waits for a job; this one fails while recording the job's end, and RQ's loop ends. The process then
starts a new RQ worker (after WORKER_RESTART_SECONDS), which runs the next jobs once Redis answers again.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from shared import keys
from shared.connection import connect
from shared.defaults import REDIS_WAIT_SECONDS, WORKER_RESTART_SECONDS
from shared.store import Store
from tests.conftest import Components
from tests.stub_http import Answer, StubServer
from tests.support import RedisServer, wait_until

SOURCE = keys.source("host-a", "f" * 64)
INSTANCE = "WEB/10.1.2.3_18080"
HEARTBEAT = "PUT /eureka/apps/WEB/10.1.2.3_18080"
EUREKA_ANSWER_SECONDS = 2.0


def track_live_instance(redis_url: str) -> None:
    """What the registrar and the watcher would have written: an instance due for heartbeats every second,
    whose container is vouched for."""
    store = Store(connect(SimpleNamespace(redis_url=redis_url, redis_sentinel_password=None)))
    store.track(INSTANCE, SOURCE, {"instance": {"app": "WEB"}}, 1)
    store.redis.set(keys.live(SOURCE), "1", ex=300)


def test_a_pool_member_starts_a_new_rq_worker_when_redis_fails_it_mid_job(components: Components,
                                                                          tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    try:
        with StubServer(Answer(200, delay=EUREKA_ANSWER_SECONDS),
                        by_method={"GET": Answer(200, '{"applications": {"application": []}}')}) as eureka:
            heartbeater = components.start("heartbeater", env={"REDIS_URL": server.url, "EUREKA_URL": eureka.url})
            wait_until(lambda: "heartbeater started" in heartbeater.log(), 15, "the heartbeater to start")
            track_live_instance(server.url)
            wait_until(lambda: HEARTBEAT in eureka.requests, 10, "a heartbeat job to call Eureka")

            server.process.kill9()  # while the job waits for Eureka's answer
            wait_until(lambda: "found an unhandled exception, quitting" in heartbeater.log(),
                       EUREKA_ANSWER_SECONDS + 2 * REDIS_WAIT_SECONDS + 10, "RQ's work loop to end")
            server.start()  # empty, as after a restart without persistence
            track_live_instance(server.url)
            heartbeats = eureka.requests.count(HEARTBEAT)

            wait_until(lambda: eureka.requests.count(HEARTBEAT) > heartbeats,
                       REDIS_WAIT_SECONDS + WORKER_RESTART_SECONDS + 10, "heartbeats again")
            assert heartbeater.running
            assert "ended on a Redis error; starting another" in heartbeater.log()
            assert heartbeater.stop() == 0
    finally:
        components.stop_all()  # while Redis still answers: a worker stopping mid-job records it there
        server.stop()
