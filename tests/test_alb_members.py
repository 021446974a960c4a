"""An ALB's Eureka record follows its members, fleet-wide, with every order of events forced (SPEC section 5).

The reconcile and renewal steps run in this process, in the order each test chooses, against real Redis, the
dev Eureka over HTTP (behind a recording proxy) and moto (behind the counting stand-in): the first member
registers the ALB, the last one leaving deletes it at once, two hosts losing their last containers at once
leave nothing behind, a container arriving at that moment keeps it, a dead watcher's members stop counting at
the next renewal, a deleted load balancer is deleted and never renewed again, the status follows target
health, and a lookup AWS throttles holds up neither the job nor the containers queued behind it.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
import redis

from heartbeater.heartbeat import Heartbeater
from registrar.albs import alb_resolver
from registrar.albs.resolver import AlbResolver
from registrar.hosts import forget_dead_hosts
from registrar.reconcile import Reconciler
from shared import keys, queues
from shared.eureka import EurekaClient
from shared.models import ContainerState, InstanceStatus, Phase, ServiceRecord
from shared.store import Store
from tests.aws import ecs_error, web_service
from tests.faults.proxies import EurekaProxy, Fault
from tests.support import DevEureka, wait_until

CHECK_INTERVAL = 1.0
APP = "WEB"


@pytest.fixture
def web(aws: SimpleNamespace) -> SimpleNamespace:
    """The `web` ALB, its ECS service and five of its tasks (one per container of the tests)."""
    service = web_service(aws.world)
    service.tasks = [service.task, *aws.world.run_tasks("prod", service.task_definition, "service:web", count=4)]
    service.key = keys.instance_key(APP, service.endpoint.instance_id)
    return service


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client)


@pytest.fixture
def resolver(aws: SimpleNamespace, redis_client: redis.Redis) -> AlbResolver:
    return alb_resolver(redis_client, check_interval=CHECK_INTERVAL, budget_seconds=30)


@pytest.fixture
def reconciler(store: Store, eureka_proxy: EurekaProxy, redis_url: str, resolver: AlbResolver) -> Reconciler:
    return Reconciler(store, EurekaClient([eureka_proxy.url]), queues.registrar_queue(redis.Redis.from_url(redis_url)),
                      min_renewal=1, resolver=resolver)


@pytest.fixture
def heartbeater(store: Store, eureka_proxy: EurekaProxy, redis_url: str, resolver: AlbResolver) -> Heartbeater:
    return Heartbeater(store, EurekaClient([eureka_proxy.url]), queues.registrar_queue(redis.Redis.from_url(redis_url)),
                       resolver=resolver)


def web_record(host: str, container_id: str, task: str, port: int = 32768, **attrs: str) -> ServiceRecord:
    return ServiceRecord(
        service_id=f"{host}:web-{container_id[:4]}:80", name="web", ip="10.0.0.5", port=port, exposed_port=80,
        protocol="tcp", host_ip="10.0.0.5", container_id=container_id, container_name=f"/web-{container_id[:4]}",
        attrs={"eureka_lookup_elbv2_endpoint": "true", "com.amazonaws.ecs.cluster": "prod",
               "com.amazonaws.ecs.task-arn": task, "com.amazonaws.ecs.container-name": "app",
               "eureka_metadata_branch": "main", **attrs})


def running(record: ServiceRecord, host: str, status: InstanceStatus = InstanceStatus.UP) -> ContainerState:
    return ContainerState(host=host, container_id=record.container_id, container_name=record.container_name,
                          phase=Phase.RUNNING, status=status, services=(record,))


def exited(record: ServiceRecord, host: str) -> ContainerState:
    return ContainerState(host=host, container_id=record.container_id, container_name=record.container_name,
                          phase=Phase.EXITED, status=InstanceStatus.DOWN)


def publish(store: Store, state: ContainerState) -> str:
    """What the watcher of `state.host` does; returns the source. Its liveness follows the state."""
    source = keys.source(state.host, state.container_id)
    store.claim_host(state.host, f"watcher-of-{state.host}", 30)
    store.publish_state(source, state, ttl=30, sweep_after=60)
    return source


def start(store: Store, reconciler: Reconciler, web: SimpleNamespace, number: int, host: str,
          **attrs: str) -> tuple[str, ServiceRecord]:
    """Container `number` of the tests, running on `host` behind the `web` ALB, reconciled until applied
    (its lookups done)."""
    record = web_record(host, f"{number:x}" * 64, web.tasks[number], **attrs)
    source = publish(store, running(record, host))
    settle(reconciler, source)
    return source, record


def settle(reconciler: Reconciler, source: str) -> None:
    """Reconcile until applied: what the requeue after a lookup and the sweep do."""
    wait_until(lambda: reconciler.reconcile(source), 30, f"{source} applied")


def alb_in_eureka(eureka: DevEureka, web: SimpleNamespace) -> dict | None:
    return eureka.instance(APP, web.endpoint.instance_id)


def writes(proxy: EurekaProxy, web: SimpleNamespace, method: str) -> int:
    """Requests `method` to the ALB instance itself (not its status) that reached Eureka; registrations
    (POST) of any WEB instance, of which the ALB is the only one here."""
    path = f"/eureka/apps/{APP}" + ("" if method == "POST" else f"/{web.endpoint.instance_id}")
    return sum(1 for _, seen, request, _ in proxy.requests if seen == method and request.split("?")[0] == path)


def nothing_left(store: Store, web: SimpleNamespace, *sources: str) -> None:
    """Redis holds nothing of the ALB: no record, no member, no place in the heartbeat schedule."""
    assert store.alb(web.key) is None
    assert store.alb_members(web.key) == set()
    assert store.redis.zscore(keys.HEARTBEAT_DUE, keys.alb_schedule_entry(web.key)) is None
    assert all(store.source_albs(source) == set() for source in sources)


def test_the_first_member_registers_the_alb_and_the_last_one_deletes_it(
        store: Store, reconciler: Reconciler, eureka: DevEureka, eureka_proxy: EurekaProxy, web: SimpleNamespace,
        aws: SimpleNamespace) -> None:
    first, first_record = start(store, reconciler, web, 0, "host-a")
    alb = alb_in_eureka(eureka, web)
    assert alb is not None and alb["status"] == "STARTING", "no healthy target yet"
    assert alb["hostName"] == web.dns_name.lower() and alb["port"]["$"] == 8080
    assert alb["metadata"]["elbv2-endpoint"] == web.endpoint.instance_id and alb["metadata"]["branch"] == "main"
    assert "container-id" not in alb["metadata"]
    assert eureka.instance(APP, "10.0.0.5_32768") is None, "only the ALB is registered"

    aws.world.register(web.target_group, web.instance, 32768)  # moto: a running instance's target is healthy
    second, second_record = start(store, reconciler, web, 1, "host-b")
    assert store.alb_members(web.key) == {first, second}
    assert writes(eureka_proxy, web, "POST") == 1, "the second member finds it registered"

    publish(store, exited(first_record, "host-a"))
    assert reconciler.reconcile(first)
    assert alb_in_eureka(eureka, web) is not None, "host b's container still points at it"
    publish(store, exited(second_record, "host-b"))
    assert reconciler.reconcile(second)
    assert alb_in_eureka(eureka, web) is None, "deleted with its last member"
    nothing_left(store, web, first, second)


LAST_TWO_GO = {
    "a's job first": ["a", "b"],
    "b's job first": ["b", "a"],
}


@pytest.mark.parametrize("order", list(LAST_TWO_GO))
def test_two_hosts_losing_their_last_containers_at_once_leave_nothing_behind(
        store: Store, reconciler: Reconciler, eureka: DevEureka, web: SimpleNamespace, order: str) -> None:
    sources = {}
    records = {}
    for number, host in enumerate(("a", "b")):
        sources[host], records[host] = start(store, reconciler, web, number, f"host-{host}")
    for host in ("a", "b"):  # both containers stop before either job runs
        publish(store, exited(records[host], f"host-{host}"))
    for host in LAST_TWO_GO[order]:
        assert reconciler.reconcile(sources[host])
    assert alb_in_eureka(eureka, web) is None
    nothing_left(store, web, *sources.values())


def test_two_hosts_losing_their_last_containers_in_two_workers_at_once(
        store: Store, reconciler: Reconciler, eureka: DevEureka, eureka_proxy: EurekaProxy, redis_url: str,
        resolver: AlbResolver, web: SimpleNamespace) -> None:
    """Two registrar workers (each its own Redis and Eureka clients) run the two jobs at the same moment."""
    sources = [start(store, reconciler, web, number, f"host-{number}") for number in range(2)]
    for number, (_, record) in enumerate(sources):
        publish(store, exited(record, f"host-{number}"))
    workers = [Reconciler(Store(redis.Redis.from_url(redis_url, decode_responses=True)),
                          EurekaClient([eureka_proxy.url]), reconciler.queue, min_renewal=1, resolver=resolver)
               for _ in sources]
    barrier = threading.Barrier(len(workers))
    results: list[bool] = []

    def job(worker: Reconciler, source: str) -> None:
        barrier.wait()
        results.append(worker.reconcile(source))

    threads = [threading.Thread(target=job, args=(worker, source)) for worker, (source, _) in zip(workers, sources)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True, True]
    assert alb_in_eureka(eureka, web) is None
    nothing_left(store, web, *(source for source, _ in sources))


ARRIVALS = {
    # The leaving container's job runs first: the ALB goes, and the arriving one registers it again.
    "last one leaves, then the new one's job": ["old dies", "reconcile old", "new starts", "reconcile new"],
    "new one published, the leaving one's job first": ["new starts", "old dies", "reconcile old", "reconcile new"],
    "new one joins first": ["new starts", "reconcile new", "old dies", "reconcile old"],
    "old one dies, new one joins before the old one's job": ["old dies", "new starts", "reconcile new",
                                                              "reconcile old"],
}


@pytest.mark.parametrize("order", list(ARRIVALS))
def test_a_container_arriving_as_the_last_one_leaves_is_not_lost(
        store: Store, reconciler: Reconciler, eureka: DevEureka, web: SimpleNamespace, order: str) -> None:
    old, old_record = start(store, reconciler, web, 0, "host-a")
    new_record = web_record("host-b", "b" * 64, web.tasks[1])
    new = keys.source("host-b", new_record.container_id)
    for step in ARRIVALS[order]:
        if step == "old dies":
            publish(store, exited(old_record, "host-a"))
        elif step == "new starts":
            publish(store, running(new_record, "host-b"))
        elif step == "reconcile old":
            assert reconciler.reconcile(old)
        else:
            settle(reconciler, new)
    assert alb_in_eureka(eureka, web) is not None
    assert store.alb_members(web.key) == {new}
    assert store.alb(web.key).registered


def test_a_container_joining_while_the_last_ones_deletion_is_under_way_registers_it_again(
        store: Store, reconciler: Reconciler, eureka: DevEureka, eureka_proxy: EurekaProxy,
        web: SimpleNamespace) -> None:
    """The leaving job has decided to delete and its DELETE is on its way (held back by the proxy) when the
    arriving container's job runs: the arriving one must not take the record for registered."""
    old, old_record = start(store, reconciler, web, 0, "host-a")
    eureka_proxy.faults.append(Fault(lambda method, _: method == "DELETE", delay=1.0))
    publish(store, exited(old_record, "host-a"))
    leaving = threading.Thread(target=reconciler.reconcile, args=(old,))
    leaving.start()
    wait_until(lambda: any(method == "DELETE" for _, method, _ in eureka_proxy.arrivals), 10, "the DELETE sent")
    new = publish(store, running(web_record("host-b", "b" * 64, web.tasks[1]), "host-b"))
    arriving = Reconciler(store, EurekaClient([eureka_proxy.url]), reconciler.queue, min_renewal=1,
                          resolver=reconciler.albs.lookups.resolver)  # another registrar worker
    settle(arriving, new)
    leaving.join()
    assert alb_in_eureka(eureka, web) is not None
    assert store.alb_members(web.key) == {new} and store.alb(web.key).registered


def test_not_registered_itself_carries_the_alb_endpoint(store: Store, reconciler: Reconciler, eureka: DevEureka,
                                                        web: SimpleNamespace) -> None:
    source, record = start(store, reconciler, web, 0, "host-a", eureka_elbv2_only_registration="false")
    own = eureka.instance(APP, "10.0.0.5_32768")
    assert own is not None and own["metadata"]["container-id"] == record.container_id
    assert own["metadata"]["has-elbv2"] == "true"
    assert own["metadata"]["elbv2-endpoint"] == web.endpoint.instance_id
    assert alb_in_eureka(eureka, web) is not None
    publish(store, exited(record, "host-a"))
    assert reconciler.reconcile(source)
    assert eureka.instance(APP, "10.0.0.5_32768") is None and alb_in_eureka(eureka, web) is None


def test_unhealthy_and_being_stopped_stop_counting(store: Store, reconciler: Reconciler, eureka: DevEureka,
                                                   web: SimpleNamespace) -> None:
    source, record = start(store, reconciler, web, 0, "host-a")
    publish(store, running(record, "host-a", InstanceStatus.DOWN))
    assert reconciler.reconcile(source)
    assert alb_in_eureka(eureka, web) is None
    publish(store, running(record, "host-a"))
    settle(reconciler, source)
    assert alb_in_eureka(eureka, web) is not None


def renew(heartbeater: Heartbeater, web: SimpleNamespace) -> None:
    """The ALB's turn in the heartbeat schedule."""
    heartbeater.beat([keys.alb_schedule_entry(web.key)])


def test_the_renewal_deletes_it_once_no_member_is_live_and_registers_it_again_when_one_is(
        store: Store, reconciler: Reconciler, heartbeater: Heartbeater, eureka: DevEureka,
        eureka_proxy: EurekaProxy, web: SimpleNamespace) -> None:
    sources = [start(store, reconciler, web, number, f"host-{number}")[0] for number in range(2)]
    renew(heartbeater, web)
    assert writes(eureka_proxy, web, "PUT") == 1, "one renewal for both members"

    store.redis.delete(keys.live(sources[0]))  # host 0's watcher died: its liveness expired
    renew(heartbeater, web)
    assert alb_in_eureka(eureka, web) is not None and writes(eureka_proxy, web, "PUT") == 2
    store.redis.delete(keys.live(sources[1]))
    renew(heartbeater, web)
    assert alb_in_eureka(eureka, web) is None
    assert store.alb_members(web.key) == set(sources), "still members: their containers run"
    assert store.redis.zscore(keys.HEARTBEAT_DUE, keys.alb_schedule_entry(web.key)) is not None

    renew(heartbeater, web)
    assert writes(eureka_proxy, web, "DELETE") == 1 and writes(eureka_proxy, web, "PUT") == 2
    store.redis.set(keys.live(sources[1]), "1", ex=30)  # host 1's watcher is back and vouches again
    renew(heartbeater, web)
    assert alb_in_eureka(eureka, web)["status"] == "STARTING"


def test_a_forgotten_host_leaves_its_albs(store: Store, reconciler: Reconciler, eureka: DevEureka,
                                         web: SimpleNamespace) -> None:
    source, _ = start(store, reconciler, web, 0, "host-a")
    store.redis.delete(keys.host_watcher("host-a"), keys.live(source))  # host a died long ago
    store.redis.zadd(keys.HOSTS, {"host-a": store.now() - 1000})
    assert forget_dead_hosts(reconciler, 1) == ["host-a"]
    assert alb_in_eureka(eureka, web) is None
    nothing_left(store, web, source)


def test_a_deleted_load_balancer_is_deleted_and_never_renewed_again(
        store: Store, reconciler: Reconciler, heartbeater: Heartbeater, eureka: DevEureka,
        eureka_proxy: EurekaProxy, web: SimpleNamespace, aws: SimpleNamespace) -> None:
    source, _ = start(store, reconciler, web, 0, "host-a")
    aws.world.delete_load_balancer(web.load_balancer)
    wait_until(lambda: renew(heartbeater, web) or alb_in_eureka(eureka, web) is None, CHECK_INTERVAL + 2,
               "the deletion noticed by a renewal")
    nothing_left(store, web, source)
    assert store.redis.zscore(keys.PENDING, source) is not None, "its container looks for its ALB again"
    puts = writes(eureka_proxy, web, "PUT")
    assert not reconciler.reconcile(source), "no load balancer forwards to its target group any more"
    renew(heartbeater, web)
    assert writes(eureka_proxy, web, "PUT") == puts and alb_in_eureka(eureka, web) is None


def test_status_follows_target_health_as_a_status_change(
        store: Store, reconciler: Reconciler, heartbeater: Heartbeater, eureka: DevEureka,
        eureka_proxy: EurekaProxy, web: SimpleNamespace, aws: SimpleNamespace) -> None:
    health = aws.stand_in.target_health[web.target_group] = [(web.instance, 32768, "initial")]
    start(store, reconciler, web, 0, "host-a")
    assert alb_in_eureka(eureka, web)["status"] == "STARTING"
    for state, status in (("healthy", "UP"), ("unhealthy", "DOWN"), ("healthy", "UP")):
        health[0] = (web.instance, 32768, state)
        wait_until(lambda: renew(heartbeater, web) or alb_in_eureka(eureka, web)["status"] == status,
                   CHECK_INTERVAL + 2, f"{status} after the target turned {state}")
    assert writes(eureka_proxy, web, "POST") == 1, "status changes, not registrations"


def test_a_throttled_lookup_holds_up_neither_its_job_nor_the_next_one(
        store: Store, reconciler: Reconciler, eureka: DevEureka, web: SimpleNamespace,
        aws: SimpleNamespace) -> None:
    aws.stand_in.script["DescribeTasks"] = [ecs_error("ThrottlingException", "Rate exceeded")] * 2
    aws.stand_in.delays["DescribeTasks"] = 1.0  # and slow: what a cold cache in a busy region costs
    behind = publish(store, running(web_record("host-a", "a" * 64, web.tasks[0]), "host-a"))
    plain_record = ServiceRecord(service_id="host-a:plain:80", name="plain", ip="10.0.0.6", port=18080,
                                 exposed_port=80, protocol="tcp", host_ip="10.0.0.6", container_id="c" * 64,
                                 container_name="/plain")
    plain = publish(store, running(plain_record, "host-a"))

    began = time.monotonic()
    assert not reconciler.reconcile(behind), "pending: AWS did not answer"
    held_up = time.monotonic() - began
    assert held_up < 0.1, f"the job behind it waited {held_up:.3f}s"
    assert reconciler.reconcile(plain)
    assert eureka.instance("PLAIN", "10.0.0.6_18080")["status"] == "UP"

    # The throttled lookup is tried again, after the fleet-wide pause, and then succeeds.
    wait_until(lambda: reconciler.reconcile(behind), 30, "the ALB once AWS answers")
    assert alb_in_eureka(eureka, web) is not None
    assert aws.stand_in.calls["DescribeTasks"] == 3

