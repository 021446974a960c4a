"""Registrator's rules on real containers, through the whole system, down to what Eureka holds: labels
and environment, per-port settings, UDP, ignore, host / container / user-defined networks, bad input."""

from __future__ import annotations

import json
from types import SimpleNamespace

import docker

from shared import keys
from shared.models import ContainerState, parse_state
from tests.conftest import HOST, HOST_IP, run_web
from tests.support import create_raw_container, free_port, image_exposing, wait_until

HTTPD = ["httpd", "-f", "-p", "80", "-h", "/"]
USER_SUBNET = "172.31.253.0/24"


def state_of(system: SimpleNamespace, container_id: str) -> ContainerState:
    return parse_state(system.redis.hget(keys.state(keys.source(HOST, container_id)), "doc"))


def registered(system: SimpleNamespace, app: str, ip: str, port: int, timeout: float = 5) -> dict:
    return wait_until(lambda: system.eureka.instance(app, f"{ip}_{port}"), timeout, f"{app} at {ip}:{port}")


def deregistered(system: SimpleNamespace, app: str, ip: str, port: int, timeout: float = 3) -> None:
    wait_until(lambda: system.eureka.instance(app, f"{ip}_{port}") is None, timeout, f"{app} at {ip}:{port} gone")


def test_environment_wins_over_labels_and_per_port_settings_win_over_container_wide(
        system: SimpleNamespace) -> None:
    front, admin = free_port(), free_port()
    system.docker.containers.run(
        "local/busybox", HTTPD, name="shop", detach=True, ports={"80/tcp": front, "81/tcp": admin},
        labels={"SERVICE_NAME": "from-label", "SERVICE_81_NAME": "admin",
                "SERVICE_EUREKA_METADATA_BRANCH": "label-branch", "SERVICE_EUREKA_METADATA_TEAM": "blue"},
        environment={"SERVICE_NAME": "shop", "SERVICE_EUREKA_METADATA_BRANCH": "env-branch",
                     "SERVICE_80_EUREKA_METADATA_ROLE": "front"})

    shop = registered(system, "SHOP-80", HOST_IP, front)
    admin_instance = registered(system, "ADMIN", HOST_IP, admin)

    assert {key: shop["metadata"].get(key) for key in ("branch", "team", "role")} == {
        "branch": "env-branch", "team": "blue", "role": "front"}
    assert {key: admin_instance["metadata"].get(key) for key in ("branch", "team", "role")} == {
        "branch": "env-branch", "team": "blue", "role": None}
    assert system.eureka.app_instances("FROM-LABEL-80") == []
    assert system.eureka.app_instances("SHOP-81") == []


def test_ignore_unnamed_and_udp(system: SimpleNamespace) -> None:
    ignored, unignored, kept_port, ignored_port, unnamed, dns = (free_port() for _ in range(6))
    run_web(system.docker, "ignored", ignored, environment={"SERVICE_IGNORE": "true"})
    run_web(system.docker, "unignored", unignored, environment={"SERVICE_IGNORE": "false"})
    system.docker.containers.run("local/busybox", HTTPD, name="half", detach=True,
                                 ports={"80/tcp": kept_port, "81/tcp": ignored_port},
                                 environment={"SERVICE_NAME": "half", "SERVICE_81_IGNORE": "yes"})
    system.docker.containers.run("local/busybox", HTTPD, name="unnamed", detach=True, ports={"80/tcp": unnamed})
    udp = system.docker.containers.run("local/busybox", ["sleep", "600"], name="dns", detach=True,
                                       ports={"53/udp": dns}, environment={"SERVICE_NAME": "dns"})

    registered(system, "WEB", HOST_IP, unignored)
    registered(system, "HALF-80", HOST_IP, kept_port)
    registered(system, "DNS", HOST_IP, dns)
    # Containers are handled in order: the ones started before the last one registered are done.
    assert system.eureka.instance("WEB", f"{HOST_IP}_{ignored}") is None
    assert system.eureka.app_instances("HALF-81") == []
    assert system.eureka.app_instances("BUSYBOX") == []
    [record] = state_of(system, udp.id).services
    assert (record.service_id, record.protocol, record.tags) == (f"{HOST}:dns:53:udp", "udp", ("udp",))


def test_host_network_container_network_and_user_defined_network(system: SimpleNamespace) -> None:
    host_port = free_port()
    system.docker.containers.run(image_exposing(system.docker, host_port), ["httpd", "-f", "-p", str(host_port)],
                                 name="hostnet", detach=True, network_mode="host",
                                 environment={"SERVICE_NAME": "hostnet"})
    owner = run_web(system.docker, "owner", free_port())
    system.docker.containers.run(image_exposing(system.docker, 8081), ["sleep", "600"], name="sidecar",
                                 detach=True, network_mode=f"container:{owner.id}",
                                 environment={"SERVICE_NAME": "sidecar"})
    network = system.docker.networks.create("rules-net", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet=USER_SUBNET)]))
    on_network = None
    try:
        published = free_port()
        on_network = system.docker.containers.run("local/busybox", HTTPD, name="on-network", detach=True,
                                                  network="rules-net", ports={"80/tcp": published},
                                                  environment={"SERVICE_NAME": "onnet"})
        owner.reload()
        on_network.reload()

        registered(system, "HOSTNET", HOST_IP, host_port)
        registered(system, "SIDECAR", owner.attrs["NetworkSettings"]["IPAddress"], 8081)
        network_ip = on_network.attrs["NetworkSettings"]["Networks"]["rules-net"]["IPAddress"]
        assert network_ip.startswith("172.31.253.")
        registered(system, "ONNET", network_ip, published)
    finally:
        if on_network is not None:
            on_network.remove(force=True)
        network.remove()


def test_bad_labels_cost_only_what_they_touch(system: SimpleNamespace) -> None:
    good_port, bad_port, other_port = free_port(), free_port(), free_port()
    placeholder = "@@NOT-UTF8@@"
    body = json.dumps({
        "Image": "local/busybox", "Cmd": HTTPD, "ExposedPorts": {"80/tcp": {}, "81/tcp": {}},
        "Labels": {"SERVICE_NAME": "mixed", "SERVICE_EUREKA_METADATA_BRANCH": placeholder,
                   "SERVICE_EUREKA_METADATA_TEAM": "blue", "SERVICE_81_NAME": "no spaces", "SERVICE_8O_TAGS": "x"},
        "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": str(good_port)}],
                                        "81/tcp": [{"HostPort": str(bad_port)}]}},
    }).encode().replace(placeholder.encode(), b"\xff\xfe")
    mixed = create_raw_container(system.docker, "mixed", body)
    # Containers that are gone by the time the watcher inspects them.
    for number in range(3):
        system.docker.containers.run("local/busybox", ["true"], name=f"flash{number}", remove=True,
                                     ports={"80/tcp": free_port()}, environment={"SERVICE_NAME": "flash"})
    run_web(system.docker, "other", other_port)

    instance = registered(system, "MIXED-80", HOST_IP, good_port)
    registered(system, "WEB", HOST_IP, other_port)

    assert instance["metadata"]["team"] == "blue"
    assert "branch" not in instance["metadata"]
    assert system.eureka.app_instances("NO SPACES") == []
    log = system.watcher.log()
    container = f"container mixed ({mixed[:12]})"
    for line in (f"{container}: label SERVICE_EUREKA_METADATA_BRANCH: not valid UTF-8; ignored",
                 f"{container}: label SERVICE_81_NAME: 'no spaces' is not a valid service name",
                 f"{container}: label SERVICE_8O_TAGS: expected SERVICE_<port>_<KEY> with a numeric port"):
        assert log.count(line) == 1, line
    assert "Traceback" not in log
    wait_until(lambda: system.eureka.app_instances("FLASH") == [], 5, "no trace of the vanished containers")
