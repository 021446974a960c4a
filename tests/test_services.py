"""Registrator's container-to-service rules (SPEC section 3) on inspect documents captured from a real
dockerd (tests/fixtures/inspect, made by tests/fixtures/capture_inspect.py), some with labels or
environment variables patched in."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shared.models import ContainerState, InstanceStatus, Phase, parse_state, state_json
from watcher.services import Derivation, Rules, derive_services, split_tags

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "inspect"
HOST_IP = "10.0.0.5"
RULES = Rules(hostname="host-a")
INTERNAL = replace(RULES, internal=True)
OWNER_IP = "172.31.250.6"  # network_owner.json's IP on the default bridge


def inspect(case: str, labels: dict[str, str] | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """A captured inspect document, with `labels` and `env` added (env as Docker lists it: KEY=value)."""
    document = json.loads((FIXTURES / f"{case}.json").read_text())
    config = document["Config"]
    config["Labels"] = {**(config.get("Labels") or {}), **(labels or {})}
    config["Env"] = [*(config.get("Env") or []), *(f"{key}={value}" for key, value in (env or {}).items())]
    return document


def derive(document: dict[str, Any], rules: Rules = RULES, *, resolved: str | None = HOST_IP,
           network_container: dict[str, Any] | None = None) -> Derivation:
    return derive_services(document, rules, resolved, network_container)


def endpoints(derivation: Derivation) -> list[tuple[str, str, str, int]]:
    return [(record.service_id, record.name, record.ip, record.port) for record in derivation.services]


@pytest.mark.parametrize(("case", "rules", "expected"), [
    ("published", RULES, [("host-a:published:80", "web", HOST_IP, 28080)]),
    ("published", replace(RULES, forced_ip="10.9.9.9"), [("host-a:published:80", "web", "10.9.9.9", 28080)]),
    ("published", INTERNAL, [("host-a:published:80", "web", "172.31.250.2", 80)]),
    ("published_host_ip", RULES, [("host-a:published-host-ip:80", "web", "127.0.0.1", 28081)]),
    ("healthcheck", RULES, [("host-a:healthcheck:80", "web", HOST_IP, 28094)]),
    # Exposed but not published: only with -internal.
    ("exposed_only", RULES, []),
    ("exposed_only", INTERNAL, [("host-a:exposed-only:80", "web", "172.31.250.4", 80)]),
    # SERVICE_USE_EXPOSED_PORTS: the exposed port numbers, published or not, on the host's IP.
    ("use_exposed_ports", RULES, [("host-a:use-exposed-ports:80", "web-80", HOST_IP, 80),
                                  ("host-a:use-exposed-ports:8080", "web-8080", HOST_IP, 8080)]),
    # Host networking: the exposed ports, on the host's IP (also with -internal: no IP of its own).
    ("host_network", RULES, [("host-a:host-network:28083", "hostnet", HOST_IP, 28083)]),
    ("host_network", INTERNAL, [("host-a:host-network:28083", "hostnet", HOST_IP, 28083)]),
    ("none_network", RULES, []),
    ("none_network", INTERNAL, []),
    # A user-defined network: the IP on that network.
    ("user_network", RULES, [("host-a:user-network:80", "web", "172.31.252.2", 28085)]),
    ("user_network", INTERNAL, [("host-a:user-network:80", "web", "172.31.252.2", 80)]),
    ("user_network", replace(RULES, forced_ip="10.9.9.9"), [("host-a:user-network:80", "web", "10.9.9.9", 28085)]),
    # Several ports and one container-wide name: -<port> suffix; a port-specific name has none.
    ("several_ports", RULES, [("host-a:several-ports:80", "multi-80", HOST_IP, 28088),
                              ("host-a:several-ports:443", "secure", HOST_IP, 28089),
                              ("host-a:several-ports:8080", "multi-8080", HOST_IP, 28090)]),
    ("udp", RULES, [("host-a:udp:53", "dns-53", HOST_IP, 28087), ("host-a:udp:53:udp", "dns-53", HOST_IP, 28086)]),
    ("unnamed", RULES, []),
    ("unnamed", replace(RULES, name_from_image=True), [("host-a:unnamed:80", "busybox", HOST_IP, 28093)]),
    # -useIpFromLabel: the label's IP without its CIDR suffix; without the label, the usual IP.
    ("labels", replace(RULES, use_ip_from_label="com.example.ip"),
     [("host-a:labels:80", "from-label", "10.9.8.7", 28091)]),
    ("labels", replace(RULES, use_ip_from_label="com.example.absent"),
     [("host-a:labels:80", "from-label", HOST_IP, 28091)]),
])
def test_ports_names_ids_and_ips(case: str, rules: Rules, expected: list[tuple[str, str, str, int]]) -> None:
    derivation = derive(inspect(case), rules)
    assert endpoints(derivation) == expected
    assert derivation.problems == ()


def test_container_network_mode_takes_the_ip_of_the_network_owner() -> None:
    sidecar, owner = inspect("container_network"), inspect("network_owner")
    assert endpoints(derive(sidecar, network_container=owner)) == [
        ("host-a:container-network:8080", "sidecar", OWNER_IP, 8080)]
    host_network_owner = inspect("host_network")
    assert endpoints(derive(sidecar, network_container=host_network_owner)) == [
        ("host-a:container-network:8080", "sidecar", HOST_IP, 8080)]


def test_udp_ports_are_tagged_and_forced_tags_apply_to_every_service() -> None:
    records = derive(inspect("udp"), replace(RULES, tags="blue,x\\,y")).services
    assert [(record.protocol, record.tags) for record in records] == [
        ("tcp", ("blue", "x,y")), ("udp", ("blue", "x,y", "udp"))]


def test_labels_and_per_port_settings_become_lower_cased_attributes() -> None:
    [record] = derive(inspect("labels")).services
    assert record.tags == ("a", "b,c")
    assert record.attrs == {"eureka_metadata_branch": "main", "eureka_metadata_role": "front"}


def test_environment_wins_over_labels() -> None:
    [record] = derive(inspect("labels_and_env")).services
    assert record.name == "from-env"
    assert record.attrs == {"eureka_metadata_branch": "label", "eureka_metadata_owner": "env"}


@pytest.mark.parametrize(("labels", "env", "expected"), [
    # SERVICE_<port>_<KEY> wins over SERVICE_<KEY> for that port only.
    ({"SERVICE_80_NAME": "front"}, {}, {80: "front", 443: "secure", 8080: "multi-8080"}),
    ({}, {"SERVICE_8080_NAME": "admin", "SERVICE_80_EUREKA_METADATA_ROLE": "web"},
     {80: "multi-80", 443: "secure", 8080: "admin"}),
    # An environment variable wins over a label of the same name, per port too.
    ({"SERVICE_443_NAME": "from-label"}, {"SERVICE_443_NAME": "from-env"},
     {80: "multi-80", 443: "from-env", 8080: "multi-8080"}),
    # A setting for a port the container does not have changes nothing.
    ({"SERVICE_9999_NAME": "nowhere"}, {}, {80: "multi-80", 443: "secure", 8080: "multi-8080"}),
    ({"SERVICE_IGNORE": "true"}, {}, {}),
    ({"SERVICE_IGNORE": "false"}, {}, {80: "multi-80", 443: "secure", 8080: "multi-8080"}),
    ({}, {"SERVICE_443_IGNORE": "1"}, {80: "multi-80", 8080: "multi-8080"}),
    ({"SERVICE_IGNORE": "true", "SERVICE_80_IGNORE": "false"}, {}, {80: "multi-80"}),
])
def test_per_port_settings(labels: dict[str, str], env: dict[str, str], expected: dict[int, str]) -> None:
    records = derive(inspect("several_ports", labels, env)).services
    assert {record.exposed_port: record.name for record in records} == expected


def test_per_port_attributes_stay_on_their_port() -> None:
    records = derive(inspect("several_ports", env={"SERVICE_80_EUREKA_METADATA_ROLE": "web",
                                                   "SERVICE_EUREKA_METADATA_BRANCH": "main"})).services
    assert {record.exposed_port: record.attrs for record in records} == {
        80: {"eureka_metadata_role": "web", "eureka_metadata_branch": "main"},
        443: {"eureka_metadata_branch": "main"},
        8080: {"eureka_metadata_branch": "main"},
    }


@pytest.mark.parametrize(("labels", "env", "expected"), [
    ({}, {}, {}),
    ({"SERVICE_REGISTER": "true"}, {}, {80: "multi-80", 443: "secure", 8080: "multi-8080"}),
    ({"SERVICE_REGISTER": "true"}, {"SERVICE_REGISTER": "false"}, {}),
    ({}, {"SERVICE_443_REGISTER": "yes"}, {443: "secure"}),
])
def test_require_label_registers_only_containers_asking_for_it(labels: dict[str, str], env: dict[str, str],
                                                               expected: dict[int, str]) -> None:
    records = derive(inspect("several_ports", labels, env), replace(RULES, require_label=True)).services
    assert {record.exposed_port: record.name for record in records} == expected


@pytest.mark.parametrize(("env", "service_ids"), [
    ({"SERVICE_ID": "custom"}, ["custom", "custom", "custom"]),
    ({"SERVICE_443_ID": "tls"}, ["host-a:several-ports:80", "tls", "host-a:several-ports:8080"]),
])
def test_service_id_override(env: dict[str, str], service_ids: list[str]) -> None:
    records = derive(inspect("several_ports", env=env)).services
    assert [record.service_id for record in records] == service_ids
    assert all("id" not in record.attrs for record in records)


def test_ecs_labels_are_carried_into_the_attributes() -> None:
    [record] = derive(inspect("ecs")).services
    assert record.attrs == {
        "com.amazonaws.ecs.cluster": "prod",
        "com.amazonaws.ecs.container-name": "web",
        "com.amazonaws.ecs.task-arn": "arn:aws:ecs:us-east-1:123456789012:task/prod/0123456789abcdef",
        "com.amazonaws.ecs.task-definition-family": "web",
        "com.amazonaws.ecs.task-definition-version": "42",
    }


@pytest.mark.parametrize(("raw", "tags"), [
    ("", []),
    ("a,b", ["a", "b"]),
    ("a\\,b,c", ["a,b", "c"]),
    (",a,,b,", ["a", "b"]),
    ("a\\b", ["a\\b"]),
    ("trailing\\", ["trailing\\"]),
])
def test_split_tags(raw: str, tags: list[str]) -> None:
    assert split_tags(raw) == tags


# Bad input: each case is (case, labels, env, rules, network container, culprit named in the one problem,
# what is still registered as {exposed port: name}).
BAD_INPUT = [
    ("published", {}, {"SERVICE_8O_NAME": "x"}, RULES, "env SERVICE_8O_NAME", {80: "web"}),
    ("published", {"SERVICE_80": "x"}, {}, RULES, "label SERVICE_80", {80: "web"}),
    ("published", {"SERVICE_": "x"}, {}, RULES, "label SERVICE_", {80: "web"}),
    ("published", {"SERVICE_IGNORE": "maybe"}, {}, RULES, "label SERVICE_IGNORE", {}),
    ("published", {}, {"SERVICE_REGISTER": "sure"}, replace(RULES, require_label=True), "env SERVICE_REGISTER", {}),
    ("use_exposed_ports", {}, {"SERVICE_USE_EXPOSED_PORTS": "perhaps"}, RULES, "env SERVICE_USE_EXPOSED_PORTS",
     {80: "web"}),
    ("published", {}, {"SERVICE_NAME": ""}, RULES, "env SERVICE_NAME", {}),
    ("unnamed", {"SERVICE_NAME": ""}, {}, replace(RULES, name_from_image=True), "label SERVICE_NAME",
     {80: "busybox"}),
    ("published", {}, {"SERVICE_NAME": "no spaces please"}, RULES, "env SERVICE_NAME", {}),
    ("several_ports", {}, {"SERVICE_443_NAME": "bad/name"}, RULES, "env SERVICE_443_NAME",
     {80: "multi-80", 8080: "multi-8080"}),
    ("published", {"SERVICE_EUREKA_METADATA_NOTES": "x" * 5000}, {}, RULES, "label SERVICE_EUREKA_METADATA_NOTES",
     {80: "web"}),
    ("published", {"SERVICE_" + "K" * 300: "x"}, {}, RULES, "label SERVICE_KKK", {80: "web"}),
    ("published", {"SERVICE_EUREKA_METADATA_BRANCH": "bad\udcff"}, {}, RULES,
     "label SERVICE_EUREKA_METADATA_BRANCH", {80: "web"}),
    ("published", {"SERVICE_EUREKA_METADATA_\udcffX": "v"}, {}, RULES, "label 'SERVICE_EUREKA_METADATA_\\udcffX'",
     {80: "web"}),
    ("published", {}, {"SERVICE_EUREKA_METADATA_BELL": "ding\x07"}, RULES, "env SERVICE_EUREKA_METADATA_BELL",
     {80: "web"}),
    ("ecs", {"com.amazonaws.ecs.cluster": "prod\ufffd"}, {}, RULES, "label com.amazonaws.ecs.cluster", {80: "web"}),
    ("labels", {"com.example.ip": "not-an-ip/24"}, {}, replace(RULES, use_ip_from_label="com.example.ip"),
     "label com.example.ip", {80: "from-label"}),
    ("container_network", {}, {}, RULES, "network mode container:", {}),
]


@pytest.mark.parametrize(("case", "labels", "env", "rules", "culprit", "registered"), BAD_INPUT)
def test_bad_input_is_one_problem_naming_container_and_culprit(
        case: str, labels: dict[str, str], env: dict[str, str], rules: Rules, culprit: str,
        registered: dict[int, str]) -> None:
    document = inspect(case, labels, env)
    derivation = derive(document, rules)
    container = f"container {document['Name'].lstrip('/')} ({document['Id'][:12]})"
    assert len(derivation.problems) == 1, derivation.problems
    assert derivation.problems[0].startswith(f"{container}: {culprit}"), derivation.problems
    assert {record.exposed_port: record.name for record in derivation.services} == registered
    derivation.problems[0].encode("utf-8")  # loggable as is


def test_bytes_docker_could_not_decode_are_named_and_left_out() -> None:
    derivation = derive(inspect("not_utf8"))
    [record] = derivation.services
    assert record.attrs == {}
    assert [problem.split(": ")[1] for problem in derivation.problems] == [
        "label SERVICE_EUREKA_METADATA_BRANCH", "env SERVICE_EUREKA_METADATA_OWNER"]
    assert all("not valid UTF-8" in problem for problem in derivation.problems)


def test_a_bad_value_never_affects_the_other_ports() -> None:
    document = inspect("several_ports", env={"SERVICE_8080_EUREKA_METADATA_X": "\udcff", "SERVICE_443_IGNORE": "?"})
    derivation = derive(document)
    assert {record.exposed_port: record.attrs for record in derivation.services} == {80: {}, 8080: {}}
    assert len(derivation.problems) == 2


def test_an_unresolvable_hostname_costs_only_ports_bound_to_all_interfaces() -> None:
    derivation = derive(inspect("published"), resolved=None)
    assert derivation.services == ()
    assert "does not resolve" in derivation.problems[0]
    assert endpoints(derive(inspect("published_host_ip"), resolved=None))[0][2] == "127.0.0.1"


@pytest.mark.parametrize("case", sorted(path.stem for path in FIXTURES.glob("*.json")))
@pytest.mark.parametrize("rules", [RULES, INTERNAL, replace(RULES, name_from_image=True, tags="t")])
def test_every_derived_state_can_be_published(case: str, rules: Rules) -> None:
    hostile = {"SERVICE_EUREKA_METADATA_A": "\udcff", "SERVICE_\udcfe": "x", "com.amazonaws.ecs.\udcfd": "y"}
    document = inspect(case, labels=hostile, env={"SERVICE_EUREKA_METADATA_B": "\ufffd"})
    derivation = derive(document, rules, network_container=inspect("network_owner"))
    state = ContainerState(host="host-a", container_id=document["Id"], container_name=document["Name"],
                           phase=Phase.RUNNING, status=InstanceStatus.UP, services=derivation.services)
    assert parse_state(state_json(state)) == state
    for culprit in ("label SERVICE_EUREKA_METADATA_A:", "label 'SERVICE_\\udcfe':",
                    "label 'com.amazonaws.ecs.\\udcfd':", "env SERVICE_EUREKA_METADATA_B:"):
        assert any(culprit in problem for problem in derivation.problems), (culprit, derivation.problems)


def test_a_container_with_more_services_than_the_limit_registers_the_first_ones() -> None:
    document = inspect("use_exposed_ports")
    document["Config"]["ExposedPorts"] = {f"{port}/tcp": {} for port in range(10000, 10100)}
    document["NetworkSettings"]["Ports"] = {}
    derivation = derive(document)
    assert [record.exposed_port for record in derivation.services] == list(range(10000, 10064))
    assert derivation.problems == ("container use-exposed-ports (" + document["Id"][:12] + "): ports: 100 services, "
                                   "over the limit of 64; ports 10064 to 10099 not registered",)
