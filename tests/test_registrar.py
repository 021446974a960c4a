"""The registrar pool on its own: real worker processes, real Redis, the dev Eureka over HTTP.

The test plays the watcher: it publishes wanted states with the same store calls.
"""

from __future__ import annotations

import pytest
import redis
from rq.job import Job, JobStatus

from shared import defaults, keys, queues
from shared.models import ContainerState, InstanceStatus, Phase, ServiceRecord
from shared.store import Store
from tests.conftest import Components
from tests.stub_http import Answer, StubServer
from tests.support import DevEureka, wait_until

HOST = "host-a"
CONTAINER = "f" * 64
SOURCE = keys.source(HOST, CONTAINER)
INSTANCE = ("WEB", "10.1.2.3_18080")


def running(status: InstanceStatus = InstanceStatus.UP, **attrs: str) -> ContainerState:
    record = ServiceRecord(service_id=f"{HOST}:web:80", name="web", ip="10.1.2.3", port=18080, exposed_port=80,
                           protocol="tcp", host_ip="10.1.2.3", attrs=attrs, container_id=CONTAINER,
                           container_name="/web")
    return ContainerState(host=HOST, container_id=CONTAINER, container_name="/web", phase=Phase.RUNNING,
                          status=status, services=(record,))


EXITED = ContainerState(host=HOST, container_id=CONTAINER, container_name="/web", phase=Phase.EXITED,
                        status=InstanceStatus.DOWN)


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client)


@pytest.fixture
def queue(redis_url: str):
    return queues.registrar_queue(redis.Redis.from_url(redis_url))


def publish(store: Store, state: ContainerState | None, *, sweep_after: float = 10) -> None:
    """What the watcher does: publish; the change goes on the registrars' fast lane."""
    store.publish_state(SOURCE, state, ttl=30, sweep_after=sweep_after)


def done(job: Job) -> bool:
    return job.get_status(refresh=True) == JobStatus.FINISHED


def start_registrars(components: Components, eureka: DevEureka, count: int) -> None:
    for number in range(count):
        components.start("registrar", name=f"registrar-{number}", env={"EUREKA_URL": eureka.url})


def test_changes_go_on_the_fast_lane_and_a_forced_re_registration_is_a_job(
        store: Store, queue, redis_client: redis.Redis) -> None:
    publish(store, running())
    publish(store, running())  # no change: nothing more to do
    publish(store, running(InstanceStatus.STARTING))
    assert redis_client.lrange(keys.FAST_LANE, 0, -1) == [SOURCE, SOURCE]
    assert queue.count == 0 and redis_client.zrange(keys.PENDING, 0, -1) == [SOURCE]

    job_id = queues.new_job_id()
    store.publish_state(SOURCE, running(InstanceStatus.DOWN), ttl=30, sweep_after=10, force=True, job_id=job_id)
    assert redis_client.llen(keys.FAST_LANE) == 2, "a forced re-registration is its job's"
    assert redis_client.get(keys.job(keys.reconcile_job_name(SOURCE))) == job_id


def test_the_fast_lane_keeps_the_newest_changes(store: Store, redis_client: redis.Redis) -> None:
    """With no registrar taking them, the lane stays short; the sweep enqueues what it dropped."""
    changes = defaults.FAST_LANE_LENGTH + 5
    for number in range(changes):
        store.publish_state(keys.source(HOST, f"{number:064x}"), EXITED, ttl=30, sweep_after=10)
    lane = redis_client.lrange(keys.FAST_LANE, 0, -1)
    assert len(lane) == defaults.FAST_LANE_LENGTH
    assert lane[0] == keys.source(HOST, f"{changes - 1:064x}") and lane[-1] == keys.source(HOST, f"{5:064x}")
    assert redis_client.zcard(keys.PENDING) == changes


def test_any_job_order_on_two_workers_ends_in_the_last_published_state(
        components: Components, eureka: DevEureka, store: Store, queue, redis_client: redis.Redis) -> None:
    start_registrars(components, eureka, 2)
    statuses = [InstanceStatus.UP, InstanceStatus.STARTING]
    for flip in range(40):
        publish(store, running(statuses[flip % 2]) if flip % 3 else EXITED)
    publish(store, EXITED)

    wait_until(lambda: queue.count == 0 and not redis_client.zcard(keys.PENDING), 20, "all jobs applied")
    assert eureka.instance(*INSTANCE) is None
    assert redis_client.smembers(keys.source_instances(SOURCE)) == set()
    assert redis_client.zcard(keys.HEARTBEAT_DUE) == 0

    for flip in range(20):
        publish(store, running(statuses[flip % 2]))
    publish(store, running(InstanceStatus.STARTING))

    wait_until(lambda: queue.count == 0 and not redis_client.zcard(keys.PENDING), 20, "all jobs applied")
    assert eureka.instance(*INSTANCE)["status"] == "STARTING"
    assert redis_client.smembers(keys.source_instances(SOURCE)) == {"WEB/10.1.2.3_18080"}


def test_a_late_job_does_not_resurrect_a_dead_container(
        components: Components, eureka: DevEureka, store: Store, queue) -> None:
    start_registrars(components, eureka, 1)
    publish(store, running())
    wait_until(lambda: eureka.instance(*INSTANCE), 5, "registration")
    publish(store, EXITED)
    wait_until(lambda: eureka.instance(*INSTANCE) is None, 5, "deregistration")

    # The job enqueued for "started", delivered again late (a retry, a slow queue).
    job = queues.enqueue_reconcile(queue, SOURCE, "/web", queues.new_job_id(), force=True)
    wait_until(lambda: done(job), 5, "the late job to run")
    assert eureka.instance(*INSTANCE) is None


def test_state_published_while_eureka_is_down_is_applied_when_it_returns(
        components: Components, eureka: DevEureka, store: Store, queue, redis_url: str) -> None:
    start_registrars(components, eureka, 1)
    wait_until(lambda: "registrar started" in components.started[0].log(), 15, "the registrar to start")
    eureka.stop()

    publish(store, running())
    wait_until(lambda: "Eureka unavailable, retrying later" in components.started[0].log(), 15,
               "the reconcile job to give up while Eureka is down")
    assert store.redis.zscore(keys.PENDING, SOURCE) is not None, "not applied, so still pending"
    assert store.redis.smembers(keys.source_instances(SOURCE)) == set()

    eureka.start()
    wait_until(lambda: eureka.instance(*INSTANCE), 20, "registration once Eureka is back")
    wait_until(lambda: store.redis.zscore(keys.PENDING, SOURCE) is None, 5, "the state to count as applied")


def test_a_registration_eureka_refuses_is_logged_not_retried(
        components: Components, store: Store, queue, redis_client: redis.Redis) -> None:
    empty_registry = Answer(200, '{"applications": {"application": []}}')
    with StubServer(Answer(400, "bad registration"), by_method={"GET": empty_registry}) as picky:
        registrar = components.start("registrar", env={"EUREKA_URL": picky.url})
        wait_until(lambda: "registrar started" in registrar.log(), 15, "the registrar to start")

        publish(store, running(), sweep_after=1)

        wait_until(lambda: "Eureka refused instance WEB/10.1.2.3_18080" in registrar.log()
                   and not redis_client.zcard(keys.PENDING), 10, "the state to count as applied")
        assert "Eureka refused instance WEB/10.1.2.3_18080" in registrar.log()
        # Off the pending list, so the registrars' sweep will not enqueue it again either.
        posts = [request for request in picky.requests if request.startswith("POST")]
        assert posts == ["POST /eureka/apps/WEB"]
        assert redis_client.smembers(keys.source_instances(SOURCE)) == set()


def test_a_status_change_that_a_newer_state_makes_moot_is_not_sent(
        components: Components, store: Store, queue, redis_client: redis.Redis) -> None:
    empty_registry = Answer(200, '{"applications": {"application": []}}')
    with StubServer(Answer(204), by_method={"GET": empty_registry}) as recording:
        start_registrars(components, recording, 1)  # type: ignore[arg-type] - only its url is used
        publish(store, running())
        wait_until(lambda: not redis_client.zcard(keys.PENDING), 10, "the registration")
        registered = len(recording.requests)

        # The container is being killed: DOWN is published, and its job reads it; the instance lock, held
        # here, keeps the job from writing until the container has died (published next).
        instance_lock = redis_client.lock(keys.instance_lock("WEB/10.1.2.3_18080"), timeout=30)
        assert instance_lock.acquire(blocking=False)
        publish(store, running(InstanceStatus.DOWN))
        wait_until(lambda: redis_client.exists(keys.source_lock(SOURCE)), 10, "the DOWN job to read its state")
        publish(store, EXITED)
        instance_lock.release()

        wait_until(lambda: queue.count == 0 and not redis_client.zcard(keys.PENDING), 10, "all jobs applied")
        assert recording.requests[registered:] == ["DELETE /eureka/apps/WEB/10.1.2.3_18080"]
