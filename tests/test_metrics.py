"""/metrics and /healthz of every component on real parts: a container registered, renewed and deregistered,
then real numbers read from each component's /metrics, a 200 from each /healthz, a 503 from a watcher whose
Docker is gone and from a worker whose job is stuck."""

from __future__ import annotations

import os
import signal
import socket
import time
from types import SimpleNamespace

import docker
import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue, Worker

from shared import queues
from tests.conftest import FAST_LEASE, HOST_IP, Components, run_web, start_watcher
from tests.faults.proxies import DockerProxy
from tests.support import DevEureka, free_port, wait_until

COMPONENTS = ("watcher", "registrar", "heartbeater")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    response.raise_for_status()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def health(port: int) -> tuple[int, dict]:
    response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    return response.status_code, response.json()


@pytest.fixture
def observed(components: Components, eureka: DevEureka, docker_proxy: DockerProxy, docker_client: docker.DockerClient,
             redis_url: str) -> SimpleNamespace:
    """The whole system, each component serving /metrics and /healthz on a free loopback port; the watcher
    reads Docker through `docker_proxy`."""
    ports = {component: free_port() for component in COMPONENTS}
    env = {"EUREKA_URL": eureka.url, "DOCKER_HOST": docker_proxy.host, "METRICS_ADDRESS": "127.0.0.1"}
    for pool in ("registrar", "heartbeater"):
        components.start(pool, env={**env, "METRICS_PORT": str(ports[pool])})
    rq_connection = redis.Redis.from_url(redis_url)
    wait_until(lambda: len(Worker.all(connection=rq_connection)) == 2, 20, "registrar and heartbeater workers")
    watcher = start_watcher(components, {**env, "METRICS_PORT": str(ports["watcher"])})
    return SimpleNamespace(ports=ports, watcher=watcher, eureka=eureka, docker=docker_client,
                           docker_proxy=docker_proxy, components=components, redis=rq_connection)


def test_every_component_counts_what_it_did_and_is_healthy(observed: SimpleNamespace) -> None:
    ports = observed.ports
    port = free_port()
    container = run_web(observed.docker, "web1", port, environment=FAST_LEASE)
    instance_id = f"{HOST_IP}_{port}"
    registered = wait_until(lambda: observed.eureka.instance("WEB", instance_id), 10, "the registration")
    wait_until(lambda: observed.eureka.instance("WEB", instance_id)["leaseInfo"]["lastRenewalTimestamp"]
               > registered["leaseInfo"]["registrationTimestamp"], 10, "a heartbeat")
    # The watcher vouches for it from its next liveness renewal on (-ttl-refresh 1).
    watcher = wait_until(lambda: samples if value(samples := scrape(ports["watcher"]),
                                                  "registrator_liveness_entries") == 1 else None,
                         5, "the watcher to count its liveness entry")
    assert value(watcher, "registrator_docker_events_total", action="start") >= 1
    assert value(watcher, "registrator_states_published_total", outcome="changed") >= 1
    assert value(watcher, "registrator_liveness_renewals_total", outcome="ok") >= 1
    assert value(watcher, "registrator_liveness_renewals_total", outcome="failed") == 0
    assert value(watcher, "registrator_resyncs_total") >= 1
    assert 10e6 < value(watcher, "process_resident_memory_bytes") < 200e6

    registrar = scrape(ports["registrar"])
    # The change came on the registrars' fast lane: no RQ job ran for it.
    assert value(registrar, "registrator_jobs_total", kind="reconcile-fast-lane", outcome="done") >= 1
    assert value(registrar, "registrator_jobs_total", kind="reconcile-fast-lane", outcome="failed") == 0
    assert value(registrar, "registrator_jobs_total", kind="reconcile", outcome="done") == 0
    registrations = value(registrar, "registrator_event_to_eureka_seconds_count", action="register")
    assert registrations == 1
    # From the Docker event to the registration: the same machine's clock on both ends here.
    assert 0 < value(registrar, "registrator_event_to_eureka_seconds_sum", action="register") < 10
    assert value(registrar, "registrator_instances_registered") == 1
    assert value(registrar, "registrator_hosts") == 1
    assert value(registrar, "registrator_states_pending") == 0
    assert ("registrator_fast_lane_changes", frozenset()) in registrar
    assert ("registrator_queue_jobs", frozenset({("queue", "registrar"), ("state", "queued")})) in registrar

    heartbeater = wait_until(lambda: samples if value(samples := scrape(ports["heartbeater"]),
                                                      "registrator_jobs_total", kind="heartbeat", outcome="done")
                             else None, 5, "a heartbeat job counted")
    assert value(heartbeater, "registrator_heartbeats_total", outcome="renewed") >= 1
    assert value(heartbeater, "registrator_heartbeats_total", outcome="not_found") == 0
    assert value(heartbeater, "registrator_heartbeat_lateness_seconds_count") >= 1
    assert ("registrator_heartbeats_missed_total", frozenset()) in heartbeater
    assert ("registrator_queue_jobs", frozenset({("queue", "heartbeat"), ("state", "failed")})) in heartbeater

    for component in COMPONENTS:
        port = ports[component]
        _, body = wait_until(lambda: answer if (answer := health(port))[0] == 200 else None,  # noqa: B023
                             10, f"{component} healthy")
        assert body["healthy"] is True
        assert {check["name"] for check in body["checks"]} >= {"redis"}
        assert all(check["ok"] for check in body["checks"])
        if component == "registrar":
            assert "registrar-fast-lane" in {check["name"] for check in body["checks"]}

    container.stop(timeout=1)
    wait_until(lambda: observed.eureka.instance("WEB", instance_id) is None, 10, "the deregistration")
    registrar = wait_until(lambda: samples if value(samples := scrape(ports["registrar"]),
                                                    "registrator_event_to_eureka_seconds_count",
                                                    action="deregister") == 1 else None,
                           5, "the deregistration counted")
    assert 0 < value(registrar, "registrator_event_to_eureka_seconds_sum", action="deregister") < 10
    assert value(scrape(ports["watcher"]), "registrator_docker_events_total", action="die") >= 1


def test_a_watcher_whose_docker_is_gone_is_unhealthy(observed: SimpleNamespace) -> None:
    port = observed.ports["watcher"]
    wait_until(lambda: health(port)[0] == 200, 10, "the watcher healthy")

    observed.docker_proxy.go_away()
    _, body = wait_until(lambda: answer if (answer := health(port))[0] == 503 else None, 10,
                         "the watcher to answer 503")
    checks = {check["name"]: check for check in body["checks"]}
    assert body["healthy"] is False
    assert checks["docker-events"]["ok"] is False
    assert checks["docker-events"]["detail"].startswith(("cannot follow Docker events", "the Docker event stream "
                                                                                        "ended"))
    assert checks["redis"]["ok"] is True
    # Without Docker no liveness renewal succeeds either: after 3 x -ttl-refresh that check fails too.
    wait_until(lambda: not {c["name"]: c for c in health(port)[1]["checks"]}["liveness-renewal"]["ok"], 10,
               "the liveness check to fail")
    assert value(scrape(port), "registrator_liveness_renewals_total", outcome="failed") >= 1
    # The workers do not depend on Docker.
    assert health(observed.ports["registrar"])[0] == 200
    assert health(observed.ports["heartbeater"])[0] == 200


def test_a_worker_whose_job_outlives_its_timeout_is_unhealthy(observed: SimpleNamespace) -> None:
    port = observed.ports["registrar"]
    wait_until(lambda: health(port)[0] == 200, 10, "the registrar healthy")
    queue = Queue(queues.REGISTRAR_QUEUE, connection=observed.redis)
    # RQ's timeout of 1 s is swallowed; the job keeps the worker for 14 s (the margin is 10 s).
    queue.enqueue("tests.support.stubborn_job", 14, job_timeout=1, description="stubborn job")
    _, body = wait_until(lambda: answer if (answer := health(port))[0] == 503 else None, 16,
                         "the registrar to answer 503", interval=0.5)
    [worker_check] = [check for check in body["checks"] if check["name"] == "rq-worker"]
    assert "'stubborn job'" in worker_check["detail"] and "stuck" in worker_check["detail"]
    wait_until(lambda: health(port)[0] == 200, 10, "the registrar healthy again once the job ended")


def test_a_metrics_port_in_use_ends_the_component_with_a_message_naming_it(components: Components) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        registrar = components.start("registrar", env={"EUREKA_URL": "http://127.0.0.1:1/eureka",
                                                       "METRICS_ADDRESS": "127.0.0.1", "METRICS_PORT": str(port)})
        assert registrar.popen.wait(30) == 1
    assert f"registrar: cannot serve /healthz and /metrics on 127.0.0.1 port {port}: Address already in use" \
        in registrar.log()


def test_renewals_sent_late_are_counted_as_missed(observed: SimpleNamespace) -> None:
    port = observed.ports["heartbeater"]
    run_web(observed.docker, "web1", free_port(), environment=FAST_LEASE)
    wait_until(lambda: value(scrape(port), "registrator_heartbeats_total", outcome="renewed") >= 2, 10,
               "renewals every second")
    missed = value(scrape(port), "registrator_heartbeats_missed_total")
    heartbeater = next(process for process in observed.components.started if process.name == "heartbeater")
    # Frozen for 2 s, it claims nothing: its next renewal comes about 2 s after it was due (tolerance: a tenth
    # of the 1 s interval plus the 0.5 s tick).
    os.kill(heartbeater.popen.pid, signal.SIGSTOP)
    try:
        time.sleep(2)
    finally:
        os.kill(heartbeater.popen.pid, signal.SIGCONT)
    late = wait_until(lambda: samples if value(samples := scrape(port), "registrator_heartbeats_missed_total")
                      > missed else None, 10, "a missed renewal counted")
    assert value(late, "registrator_heartbeat_lateness_seconds_bucket", le="1.0") \
        < value(late, "registrator_heartbeat_lateness_seconds_count")
