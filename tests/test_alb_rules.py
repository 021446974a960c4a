"""Which services go through an ALB, and the ALB's Eureka record (SPEC section 5): the pure rules."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.alb import (AlbDecision, AlbEndpoint, AlbIntent, AlbLookup, ExplicitAlb, alb_intent, alb_registration,
                        alb_status, endpoint_json, needs_host_instance_id, parse_endpoint, with_alb_endpoint,
                        with_alb_health)
from shared.models import InstanceStatus, ServiceRecord
from shared.registration import registration

TARGET_GROUP = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
LOAD_BALANCER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/fedcba9876543210"
CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/prod"
TASK = "arn:aws:ecs:us-east-1:123456789012:task/prod/5a6b7c8d9e0f"
ECS_LABELS = {"com.amazonaws.ecs.cluster": CLUSTER, "com.amazonaws.ecs.task-arn": TASK,
              "com.amazonaws.ecs.container-name": "app", "com.amazonaws.ecs.task-definition-family": "web"}
EXPLICIT = {"eureka_elbv2_hostname": "Web-123.us-east-1.elb.amazonaws.com", "eureka_elbv2_port": "443",
            "eureka_elbv2_targetgroup": TARGET_GROUP}
ENDPOINT = AlbEndpoint(dns_name="web-123.us-east-1.elb.amazonaws.com", port=8080, target_group_arn=TARGET_GROUP,
                       load_balancer_arn=LOAD_BALANCER)
WHERE = "container web (cccccccccccc)"


def record(**attrs: str) -> ServiceRecord:
    return ServiceRecord(service_id="h:web:80", name="web", ip="10.0.0.5", port=32768, exposed_port=80,
                         protocol="tcp", host_ip="10.0.0.9", attrs=attrs, container_id="c" * 64,
                         container_name="/web")


def decide(**attrs: str) -> AlbDecision:
    return alb_intent(record(**attrs))


# --- enablement ---------------------------------------------------------------------------------

def test_plain_container_without_alb_attributes() -> None:
    assert decide(**ECS_LABELS) == AlbDecision(None, ())
    assert decide(eureka_lookup_elbv2_endpoint="false", **ECS_LABELS) == AlbDecision(None, ())


def test_lookup_through_ecs_labels() -> None:
    assert decide(eureka_lookup_elbv2_endpoint="true", **ECS_LABELS) == AlbDecision(AlbIntent(
        AlbLookup(container_port=80, host_port=32768, cluster=CLUSTER, task_arn=TASK, ecs_container_name="app"),
        only_registration=True), ())


def test_lookup_through_the_named_ecs_service() -> None:
    intent = decide(eureka_lookup_elbv2_endpoint="yes", ecs_service="web-svc", **ECS_LABELS).intent
    assert intent is not None and isinstance(intent.target, AlbLookup)
    assert intent.target.ecs_service == "web-svc" and intent.target.via_ecs
    assert not intent.needs_host_instance_id


def test_lookup_without_ecs_labels_goes_through_the_host_instance() -> None:
    intent = decide(eureka_lookup_elbv2_endpoint="true").intent
    assert intent == AlbIntent(AlbLookup(container_port=80, host_port=32768), only_registration=True)
    assert intent.needs_host_instance_id


def test_ecs_service_without_cluster_label_is_reported_and_the_host_instance_used() -> None:
    decision = decide(eureka_lookup_elbv2_endpoint="true", ecs_service="web-svc")
    assert decision.intent == AlbIntent(AlbLookup(container_port=80, host_port=32768), only_registration=True)
    assert decision.problems == (f"{WHERE}: attribute ecs_service: needs the ECS label com.amazonaws.ecs.cluster; "
                                 "looking the ALB up by this host's EC2 instance id and the host port instead",)


def test_explicit_trio_wins_over_lookup() -> None:
    decision = decide(eureka_lookup_elbv2_endpoint="true", **EXPLICIT, **ECS_LABELS)
    assert decision == AlbDecision(AlbIntent(
        ExplicitAlb("web-123.us-east-1.elb.amazonaws.com", 443, TARGET_GROUP), only_registration=True), ())
    assert not decision.intent.needs_host_instance_id


def test_explicit_trio_alone_enables() -> None:
    assert isinstance(decide(**EXPLICIT).intent.target, ExplicitAlb)


@pytest.mark.parametrize(("raw", "expected"), [("false", False), ("0", False), ("TRUE", True), ("", True)])
def test_only_registration(raw: str, expected: bool) -> None:
    decision = decide(eureka_lookup_elbv2_endpoint="true", eureka_elbv2_only_registration=raw)
    assert decision.intent.only_registration is expected and decision.problems == ()


@pytest.mark.parametrize(("attrs", "problem"), [
    ({"eureka_lookup_elbv2_endpoint": "sure"},
     "attribute eureka_lookup_elbv2_endpoint: 'sure' is not a boolean; registered as a plain container"),
    ({"eureka_lookup_elbv2_endpoint": "true", "eureka_elbv2_only_registration": "maybe"},
     "attribute eureka_elbv2_only_registration: 'maybe' is not a boolean; registered as a plain container"),
    ({"eureka_elbv2_hostname": "web.example.com", "eureka_elbv2_port": "80"},
     "attribute eureka_elbv2_targetgroup: missing: eureka_elbv2_hostname, eureka_elbv2_port, "
     "eureka_elbv2_targetgroup go together (set: eureka_elbv2_hostname, eureka_elbv2_port); "
     "registered as a plain container"),
    ({"eureka_lookup_elbv2_endpoint": "true", "eureka_elbv2_port": "80"},
     "attribute eureka_elbv2_hostname: missing: eureka_elbv2_hostname, eureka_elbv2_port, eureka_elbv2_targetgroup "
     "go together (set: eureka_elbv2_port); registered as a plain container"),
    ({**EXPLICIT, "eureka_elbv2_port": "65536"},
     "attribute eureka_elbv2_port: '65536' is not a port number from 1 to 65535; registered as a plain container"),
    ({**EXPLICIT, "eureka_elbv2_port": "0"},
     "attribute eureka_elbv2_port: '0' is not a port number from 1 to 65535; registered as a plain container"),
    ({**EXPLICIT, "eureka_elbv2_port": "http"},
     "attribute eureka_elbv2_port: 'http' is not a port number from 1 to 65535; registered as a plain container"),
    ({**EXPLICIT, "eureka_elbv2_hostname": "web_1.example.com"},
     "attribute eureka_elbv2_hostname: 'web_1.example.com' is not a DNS name; registered as a plain container"),
    ({**EXPLICIT, "eureka_elbv2_targetgroup": "web"},
     "attribute eureka_elbv2_targetgroup: 'web' is not a target group ARN "
     "(arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>); registered as a plain container"),
    ({"eureka_lookup_elbv2_endpoint": "true", "eureka_datacenterinfo_name": "MyOwn"},
     "attribute eureka_lookup_elbv2_endpoint: an ALB needs datacenter Amazon, eureka_datacenterinfo_name is MyOwn; "
     "registered as a plain container"),
    ({**EXPLICIT, "eureka_datacenterinfo_name": "myown"},
     "attribute eureka_elbv2_hostname: an ALB needs datacenter Amazon, eureka_datacenterinfo_name is MyOwn; "
     "registered as a plain container"),
    ({"eureka_lookup_elbv2_endpoint": "true", "ecs_service": "web svc", **ECS_LABELS},
     "attribute ecs_service: 'web svc' is not an ECS service name or ARN; registered as a plain container"),
])
def test_bad_settings_make_a_plain_container_with_one_problem(attrs: dict[str, str], problem: str) -> None:
    assert decide(**attrs) == AlbDecision(None, (f"{WHERE}: {problem}",))


def test_bad_lookup_flag_with_a_good_trio_is_still_plain() -> None:
    decision = decide(eureka_lookup_elbv2_endpoint="sure", **EXPLICIT)
    assert decision.intent is None and len(decision.problems) == 1


def test_invalid_datacenter_name_is_reported_as_registration_does() -> None:
    attrs = {"eureka_lookup_elbv2_endpoint": "true", "eureka_datacenterinfo_name": "Moon"}
    decision = decide(**attrs)
    assert decision.intent is not None  # Amazon, as for the container's own record
    assert decision.problems == registration(record(**attrs), InstanceStatus.UP, host="h").problems


def test_alb_settings_are_ignored_when_no_alb_is_asked_for() -> None:
    assert decide(eureka_elbv2_only_registration="maybe", ecs_service="web svc") == AlbDecision(None, ())


# --- the ALB's Eureka record ---------------------------------------------------------------------

def test_alb_document() -> None:
    result = alb_registration(record(eureka_lookup_elbv2_endpoint="true", eureka_metadata_branch="main",
                                     eureka_ipaddr="10.9.9.9", eureka_datacenterinfo_publicipv4="1.2.3.4",
                                     **ECS_LABELS), ENDPOINT, InstanceStatus.STARTING)
    assert result.problems == ()
    assert result.document == {
        "instanceId": "web-123.us-east-1.elb.amazonaws.com_8080",
        "hostName": "web-123.us-east-1.elb.amazonaws.com",
        "app": "WEB",
        "ipAddr": "web-123.us-east-1.elb.amazonaws.com",
        "vipAddress": "web-123.us-east-1.elb.amazonaws.com",
        "status": "STARTING",
        "port": {"$": 8080, "@enabled": "true"},
        "securePort": {"$": 443, "@enabled": "false"},
        "dataCenterInfo": {
            "@class": "com.netflix.appinfo.AmazonInfo",
            "name": "Amazon",
            "metadata": {"instance-id": "web-123.us-east-1.elb.amazonaws.com_8080",
                         "hostname": "web-123.us-east-1.elb.amazonaws.com",
                         "public-hostname": "web-123.us-east-1.elb.amazonaws.com"},
        },
        "leaseInfo": {"renewalIntervalInSecs": 10, "durationInSecs": 35},
        "metadata": {"branch": "main", "has-elbv2": "true",
                     "elbv2-endpoint": "web-123.us-east-1.elb.amazonaws.com_8080"},
    }
    assert (result.app, result.instance_id, result.renewal_interval) == (
        "WEB", "web-123.us-east-1.elb.amazonaws.com_8080", 10)


def test_alb_document_is_the_same_from_every_container_behind_it() -> None:
    first = record(eureka_lookup_elbv2_endpoint="true", eureka_metadata_branch="main", **ECS_LABELS)
    second = replace(first, container_id="d" * 64, container_name="/web-2", ip="10.0.0.6", port=32770,
                     host_ip="10.0.0.10", attrs={**first.attrs, "com.amazonaws.ecs.task-arn": TASK + "ff"})
    assert (alb_registration(first, ENDPOINT, InstanceStatus.UP).document
            == alb_registration(second, ENDPOINT, InstanceStatus.UP).document)


@pytest.mark.parametrize(("attrs", "min_renewal", "lease", "problem"), [
    ({"eureka_leaseinfo_durationinsecs": "90"}, 5, (10, 90), None),
    ({"eureka_leaseinfo_renewalintervalinsecs": "1", "eureka_leaseinfo_durationinsecs": "3"}, 1, (1, 3), None),
    ({"eureka_leaseinfo_renewalintervalinsecs": "1"}, 5, (5, 35),
     "attribute eureka_leaseinfo_renewalintervalinsecs: 1 s is under the minimum renewal interval of 5 s; using 5"),
    ({"eureka_leaseinfo_durationinsecs": "8"}, 5, (10, 30),
     "attribute eureka_leaseinfo_durationinsecs: a lease of 8 s would expire before its renewal every 10 s; "
     "using a lease of 30 s"),
])
def test_alb_lease_follows_the_service_overrides_checked_as_for_containers(
        attrs: dict[str, str], min_renewal: int, lease: tuple[int, int], problem: str | None) -> None:
    result = alb_registration(record(**attrs), ENDPOINT, InstanceStatus.UP, min_renewal=min_renewal)
    assert result.document["leaseInfo"] == {"renewalIntervalInSecs": lease[0], "durationInSecs": lease[1]}
    assert result.problems == ((f"{WHERE}: {problem}",) if problem else ())


def test_alb_document_reports_bad_attributes_like_registration() -> None:
    attrs = {"eureka_leaseinfo_durationinsecs": "soon", "eureka_metadata_1bad": "x", "eureka_status": "sideways"}
    result = alb_registration(record(**attrs), ENDPOINT, InstanceStatus.UP)
    assert result.document["leaseInfo"]["durationInSecs"] == 35
    assert "1bad" not in result.document["metadata"] and result.document["status"] == "UP"
    assert result.problems == (
        f"{WHERE}: attribute eureka_status: 'sideways' is not a Eureka status; using UP",
        f"{WHERE}: attribute eureka_leaseinfo_durationinsecs: 'soon' is not a whole number of seconds from 1 to "
        "86400; using 35",
        f"{WHERE}: attribute eureka_metadata_1bad: metadata key '1bad' is not a valid XML element name; not sent",
    )


def test_eureka_status_override_applies_while_targets_are_healthy() -> None:
    service = record(eureka_status="OUT_OF_SERVICE")
    assert alb_registration(service, ENDPOINT, InstanceStatus.UP).document["status"] == "OUT_OF_SERVICE"
    assert alb_registration(service, ENDPOINT, InstanceStatus.STARTING).document["status"] == "STARTING"


@pytest.mark.parametrize(("healthy", "previous", "status"), [
    (0, None, InstanceStatus.STARTING),
    (0, InstanceStatus.STARTING, InstanceStatus.STARTING),
    (1, None, InstanceStatus.UP),
    (3, InstanceStatus.STARTING, InstanceStatus.UP),
    (0, InstanceStatus.UP, InstanceStatus.DOWN),
    (0, InstanceStatus.DOWN, InstanceStatus.DOWN),
    (2, InstanceStatus.DOWN, InstanceStatus.UP),
])
def test_alb_status_follows_target_health(healthy: int, previous: InstanceStatus | None,
                                          status: InstanceStatus) -> None:
    assert alb_status(healthy, previous) is status


@pytest.mark.parametrize(("attrs", "health", "status"), [
    ({}, InstanceStatus.UP, "UP"),
    ({}, InstanceStatus.STARTING, "STARTING"),
    ({}, InstanceStatus.DOWN, "DOWN"),
    ({"eureka_status": "OUT_OF_SERVICE"}, InstanceStatus.UP, "OUT_OF_SERVICE"),
    ({"eureka_status": "OUT_OF_SERVICE"}, InstanceStatus.DOWN, "DOWN"),
])
def test_the_stored_document_takes_the_status_target_health_calls_for(attrs: dict[str, str], health: InstanceStatus,
                                                                      status: str) -> None:
    """The registrar keeps the document as for a healthy target; each status comes from it as alb_registration
    would make it."""
    kept = alb_registration(record(**attrs), ENDPOINT, InstanceStatus.UP).document
    assert with_alb_health(kept, health) == alb_registration(record(**attrs), ENDPOINT, health).document
    assert with_alb_health(kept, health)["status"] == status


@pytest.mark.parametrize(("attrs", "needed"), [
    ({}, False),
    ({"eureka_lookup_elbv2_endpoint": "true"}, True),
    ({"eureka_lookup_elbv2_endpoint": "true", **ECS_LABELS}, False),
    (EXPLICIT, False),
    ({"eureka_lookup_elbv2_endpoint": "true", "eureka_datacenterinfo_name": "MyOwn"}, False),
])
def test_the_host_instance_id_is_needed_only_for_the_lookup_without_ecs_labels(attrs: dict[str, str],
                                                                               needed: bool) -> None:
    assert needs_host_instance_id(record(**attrs)) is needed


def test_container_record_names_its_alb_when_not_only_the_alb_registers() -> None:
    own = registration(record(eureka_metadata_branch="main"), InstanceStatus.UP, host="host-a")
    named = with_alb_endpoint(own, ENDPOINT)
    assert named.document["metadata"] == {**own.document["metadata"], "has-elbv2": "true",
                                          "elbv2-endpoint": "web-123.us-east-1.elb.amazonaws.com_8080"}
    assert {**named.document, "metadata": own.document["metadata"]} == own.document
    assert "has-elbv2" not in own.document["metadata"]  # the original is left as it was


def test_endpoint_dns_name_is_case_insensitive() -> None:
    upper = replace(ENDPOINT, dns_name="WEB-123.us-east-1.ELB.amazonaws.com")
    assert upper.instance_id == ENDPOINT.instance_id
    stored = endpoint_json(ENDPOINT).replace(ENDPOINT.dns_name, "WEB-123.us-east-1.ELB.amazonaws.com")
    assert parse_endpoint(stored) == ENDPOINT


def test_a_stored_endpoint_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="surprise"):
        parse_endpoint(endpoint_json(ENDPOINT)[:-1] + ',"surprise":1}')
