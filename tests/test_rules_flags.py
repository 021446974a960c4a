"""The watcher's registrator flags on real containers, through the whole system, down to what Eureka holds:
-internal, -require-label, -name-from-image, -useIpFromLabel, -tags, -deregister on-success, -resync,
-cleanup, -ip-lookup-source."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from shared import keys
from tests.conftest import FAST_LEASE, HOST, HOST_IP, run_web, start_watcher
from tests.stub_http import Answer, StubServer
from tests.support import REPO, free_port, image_exposing, wait_until
from tests.test_rules_containers import HTTPD, deregistered, registered, state_of

OTHER_HOST = "other-host"


def forget_everything(system: SimpleNamespace) -> None:
    """What the registrar and the watcher keep in Redis is lost (Redis flushed or replaced); RQ's own keys stay."""
    stale = list(system.redis.scan_iter(match=f"{keys.PREFIX}*"))
    if stale:
        system.redis.delete(*stale)


def eureka_delete(system: SimpleNamespace, app: str, instance_id: str) -> None:
    system.eureka.session.delete(f"{system.eureka.address}/apps/{app}/{instance_id}", timeout=5).raise_for_status()


def eureka_register(system: SimpleNamespace, ip: str, port: int, metadata: dict[str, str]) -> None:
    """An instance of app WEB registered by someone else than this host's watcher."""
    instance = {"instanceId": f"{ip}_{port}", "hostName": ip, "app": "WEB", "ipAddr": ip, "status": "UP",
                "port": {"$": port, "@enabled": "true"}, "metadata": metadata,
                "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                                   "name": "MyOwn"}}
    system.eureka.session.post(f"{system.eureka.address}/apps/WEB", json={"instance": instance},
                               timeout=5).raise_for_status()


@pytest.mark.watcher_args("-internal")
def test_internal_registers_exposed_ports_on_the_container_ip(system: SimpleNamespace) -> None:
    published = run_web(system.docker, "published", free_port())
    exposed_only = system.docker.containers.run(image_exposing(system.docker, 8080), ["sleep", "600"],
                                                name="exposed-only", detach=True,
                                                environment={"SERVICE_NAME": "exposed"})
    published.reload()
    exposed_only.reload()

    registered(system, "WEB", published.attrs["NetworkSettings"]["IPAddress"], 80)
    registered(system, "EXPOSED", exposed_only.attrs["NetworkSettings"]["IPAddress"], 8080)


@pytest.mark.watcher_args("-require-label", "-name-from-image", "-useIpFromLabel", "com.example.ip",
                          "-tags", "fleet,x\\,y")
def test_require_label_name_from_image_ip_from_label_and_forced_tags(system: SimpleNamespace) -> None:
    skipped, unnamed, labelled = free_port(), free_port(), free_port()
    run_web(system.docker, "not-asking", skipped)
    system.docker.containers.run("local/busybox", HTTPD, name="unnamed", detach=True, ports={"80/tcp": unnamed},
                                 environment={"SERVICE_REGISTER": "true"})
    container = run_web(system.docker, "labelled", labelled, environment={"SERVICE_REGISTER": "true"},
                        labels={"com.example.ip": "10.1.2.3/16"})

    registered(system, "BUSYBOX", HOST_IP, unnamed)
    registered(system, "WEB", "10.1.2.3", labelled)
    assert system.eureka.instance("WEB", f"{HOST_IP}_{skipped}") is None
    assert state_of(system, container.id).services[0].tags == ("fleet", "x,y")


@pytest.mark.watcher_args("-deregister", "on-success")
def test_deregister_on_success_leaves_a_failed_container_to_lease_expiry(system: SimpleNamespace) -> None:
    until_told = "httpd -p 80 -h /; while [ ! -f /exit ]; do sleep 0.1; done; exit $CODE"
    ports = {"failing": free_port(), "succeeding": free_port(), "killed": free_port()}
    containers = {name: system.docker.containers.run(
        "local/busybox", ["sh", "-c", until_told], name=name, detach=True, ports={"80/tcp": port},
        environment={"SERVICE_NAME": "web", "CODE": "3" if name == "failing" else "0", **FAST_LEASE})
        for name, port in ports.items()}
    for port in ports.values():
        registered(system, "WEB", HOST_IP, port)

    containers["failing"].exec_run(["touch", "/exit"])
    containers["succeeding"].exec_run(["touch", "/exit"])
    containers["killed"].kill()

    deregistered(system, "WEB", HOST_IP, ports["succeeding"])
    deregistered(system, "WEB", HOST_IP, ports["killed"])
    failing = keys.source(HOST, containers["failing"].id)
    wait_until(lambda: not system.redis.smembers(keys.source_instances(failing)), 5, "the failed one untracked")
    assert system.eureka.instance("WEB", f"{HOST_IP}_{ports['failing']}") is not None
    containers["failing"].reload()
    assert containers["failing"].attrs["State"]["ExitCode"] == 3
    # No heartbeats any more: its 3 s lease runs out.
    deregistered(system, "WEB", HOST_IP, ports["failing"], timeout=10)


@pytest.mark.watcher_args("-resync", "1")
def test_resync_republishes_what_redis_and_eureka_lost(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port)
    run_web(system.docker, "web2", free_port())
    registered(system, "WEB", HOST_IP, port)

    # One container's state and registration are lost; the host's other state stays, so nothing but
    # the periodic re-sync can notice.
    source = keys.source(HOST, container.id)
    system.redis.delete(keys.state(source), keys.source_instances(source), keys.instance(f"WEB/{HOST_IP}_{port}"))
    system.redis.srem(keys.host_sources(HOST), source)
    eureka_delete(system, "WEB", f"{HOST_IP}_{port}")

    registered(system, "WEB", HOST_IP, port, timeout=6)


def test_redis_losing_everything_makes_the_watcher_publish_again(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port, environment=FAST_LEASE)
    registered(system, "WEB", HOST_IP, port)

    forget_everything(system)  # as a Redis restarted without persistence would

    source = keys.source(HOST, container.id)
    wait_until(lambda: system.redis.smembers(keys.source_instances(source)) == {f"WEB/{HOST_IP}_{port}"}, 6,
               "the registration tracked again")
    renewed = system.eureka.instance("WEB", f"{HOST_IP}_{port}")["leaseInfo"]["lastRenewalTimestamp"]
    wait_until(lambda: system.eureka.instance("WEB", f"{HOST_IP}_{port}")["leaseInfo"]["lastRenewalTimestamp"]
               > renewed, 5, "heartbeats again")
    assert "Redis lost changes this watcher published" in system.watcher.log()


def test_cleanup_removes_what_this_host_left_in_eureka_while_its_watcher_was_down(system: SimpleNamespace) -> None:
    kept, removed = free_port(), free_port()
    run_web(system.docker, "kept", kept)
    gone = run_web(system.docker, "gone", removed)
    registered(system, "WEB", HOST_IP, kept)
    registered(system, "WEB", HOST_IP, removed)
    eureka_register(system, "10.99.0.1", 1000, {"docker-host": OTHER_HOST, "container-id": "f" * 64})
    eureka_register(system, "10.99.0.2", 1000, {})
    # The first pass sees what the cached listing shows; a listing not yet showing the instance is the second
    # pass's case, 35 s later (tests/test_rules_cleanup.py).
    system.eureka.apps_xml_listing(f"{HOST_IP}_{removed}")

    system.watcher.stop()
    gone.remove(force=True)
    forget_everything(system)
    start_watcher(system.components, system.env, "-cleanup", name="watcher-restarted")

    deregistered(system, "WEB", HOST_IP, removed, timeout=10)
    for instance_id in (f"{HOST_IP}_{kept}", "10.99.0.1_1000", "10.99.0.2_1000"):
        assert system.eureka.instance("WEB", instance_id) is not None, instance_id
    assert f"cleanup: deleted WEB/{HOST_IP}_{removed}" in system.components.logs()


def test_ip_lookup_source_moves_services_to_each_new_ip(system: SimpleNamespace) -> None:
    port = free_port()
    with StubServer(Answer(status=503)) as lookup:
        system.watcher.stop()
        watcher = start_watcher(system.components, system.env, "-ip-lookup-source", lookup.url,
                                "-ip-lookup-interval", "1", name="watcher-lookup")
        assert "IP lookup from" in watcher.log() and "using the IP the host's name resolves to" in watcher.log()
        run_web(system.docker, "web1", port)
        registered(system, "WEB", HOST_IP, port)

        lookup.default = Answer(body="10.20.30.40\n", content_type="text/plain")
        registered(system, "WEB", "10.20.30.40", port)
        deregistered(system, "WEB", HOST_IP, port)

        lookup.default = Answer(body="garbage", content_type="text/plain")
        wait_until(lambda: "keeping the current IP" in watcher.log(), 3, "a failed lookup")
        lookup.default = Answer(body=" 10.20.30.41 ", content_type="text/plain")
        registered(system, "WEB", "10.20.30.41", port)
        deregistered(system, "WEB", "10.20.30.40", port)


def test_ip_found_at_startup_is_the_host_ip(system: SimpleNamespace) -> None:
    port = free_port()
    with StubServer(Answer(body="10.20.30.50", content_type="text/plain")) as lookup:
        system.watcher.stop()
        start_watcher(system.components, system.env, "-ip-lookup-source", lookup.url,
                      "-exit-on-ip-lookup-failure", name="watcher-lookup")
        run_web(system.docker, "web1", port)
        registered(system, "WEB", "10.20.30.50", port)


def test_failed_ip_lookup_at_startup_ends_the_watcher_with_exit_on_ip_lookup_failure() -> None:
    unanswered = f"http://127.0.0.1:{free_port()}/ip"
    result = subprocess.run([sys.executable, "-m", "watcher", "-ip-lookup-source", unanswered,
                             "-exit-on-ip-lookup-failure", "-ip-lookup-retries", "2", "-retry-interval", "100"],
                            cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:1/0", "METRICS_PORT": "0"})
    assert result.returncode == 1
    assert result.stderr.count("IP lookup attempt") == 2
    assert f"IP lookup from {unanswered} failed 2 times; exiting (-exit-on-ip-lookup-failure)" in result.stderr
