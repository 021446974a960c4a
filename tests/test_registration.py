"""Service record -> Eureka instance document: every eureka_* attribute and its default (SPEC section 4)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.registration import registration, wants_ec2_metadata
from shared.models import Ec2Metadata, InstanceStatus, ServiceRecord

EC2 = Ec2Metadata(instance_id="i-0abc", local_hostname="ip-10-0-0-5.ec2.internal", local_ipv4="10.0.0.5",
                  public_hostname="ec2-3-4-5-6.compute-1.amazonaws.com", public_ipv4="3.4.5.6",
                  availability_zone="us-east-1a")


def record(**attrs: str) -> ServiceRecord:
    return ServiceRecord(service_id="h:web:80", name="web", ip="10.0.0.5", port=18080, exposed_port=80,
                         protocol="tcp", host_ip="10.0.0.9", attrs=attrs, container_id="c" * 64,
                         container_name="/web")


def document(status: InstanceStatus = InstanceStatus.UP, ec2: Ec2Metadata | None = None,
             **attrs: str) -> dict[str, Any]:
    result = registration(record(**attrs), status, host="host-a", ec2=ec2)
    assert result.problems == ()
    return result.document


def test_defaults() -> None:
    assert document() == {
        "instanceId": "10.0.0.5_18080",
        "hostName": "10.0.0.5",
        "app": "WEB",
        "ipAddr": "10.0.0.5",
        "vipAddress": "10.0.0.5",
        "status": "UP",
        "port": {"$": 18080, "@enabled": "true"},
        "securePort": {"$": 443, "@enabled": "false"},
        "dataCenterInfo": {
            "@class": "com.netflix.appinfo.AmazonInfo",
            "name": "Amazon",
            "metadata": {
                "instance-id": "10.0.0.5_18080",
                "local-hostname": "10.0.0.5",
                "hostname": "10.0.0.5",
                "local-ipv4": "10.0.0.5",
                "public-hostname": "10.0.0.9",
                "public-ipv4": "10.0.0.9",
            },
        },
        "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
        "metadata": {"is-container": "true", "container-id": "c" * 64, "container-name": "/web",
                     "docker-host": "host-a"},
    }


@pytest.mark.parametrize(("attrs", "path", "expected"), [
    ({"eureka_status": "OUT_OF_SERVICE"}, ("status",), "OUT_OF_SERVICE"),
    ({"eureka_status": "down"}, ("status",), "DOWN"),
    ({"eureka_ipaddr": "192.168.1.1"}, ("ipAddr",), "192.168.1.1"),
    ({"eureka_ipaddr": "192.168.1.1"}, ("vipAddress",), "10.0.0.5"),
    ({"eureka_vip": "web.internal"}, ("vipAddress",), "web.internal"),
    ({"eureka_vip": "web.internal"}, ("ipAddr",), "10.0.0.5"),
    ({"eureka_leaseinfo_renewalintervalinsecs": "5"}, ("leaseInfo", "renewalIntervalInSecs"), 5),
    ({"eureka_leaseinfo_durationinsecs": "45"}, ("leaseInfo", "durationInSecs"), 45),
    ({"eureka_datacenterinfo_name": "myown"}, ("dataCenterInfo", "name"), "MyOwn"),
    ({"eureka_datacenterinfo_name": "AMAZON"}, ("dataCenterInfo", "name"), "Amazon"),
    ({"eureka_datacenterinfo_localhostname": "web.local"}, ("hostName",), "web.local"),
    ({"eureka_datacenterinfo_localhostname": "web.local"}, ("instanceId",), "web.local_18080"),
    ({"eureka_datacenterinfo_localhostname": "web.local"}, ("dataCenterInfo", "metadata", "instance-id"),
     "web.local_18080"),
    ({"eureka_datacenterinfo_localhostname": "web.local"}, ("dataCenterInfo", "metadata", "hostname"),
     "web.local"),
    ({"eureka_datacenterinfo_localipv4": "10.9.9.9"}, ("dataCenterInfo", "metadata", "local-ipv4"), "10.9.9.9"),
    ({"eureka_datacenterinfo_publichostname": "web.example.com"},
     ("dataCenterInfo", "metadata", "public-hostname"), "web.example.com"),
    ({"eureka_datacenterinfo_publicipv4": "3.3.3.3"}, ("dataCenterInfo", "metadata", "public-ipv4"), "3.3.3.3"),
    ({"eureka_metadata_hudl.version": "1.2.3"}, ("metadata", "hudl.version"), "1.2.3"),
    ({"eureka_metadata_branch": "main"}, ("metadata", "branch"), "main"),
    ({"eureka_metadata_thor-communal": "true"}, ("metadata", "thor-communal"), "true"),
])
def test_each_attribute_overrides_its_field(attrs: dict[str, str], path: tuple[str, ...], expected: Any) -> None:
    value: Any = document(**attrs)
    for step in path:
        value = value[step]
    assert value == expected


def test_my_own_datacenter_names_the_host_after_ip_and_port() -> None:
    result = document(eureka_datacenterinfo_name="MyOwn")
    assert result["hostName"] == "10.0.0.5_18080"
    assert result["instanceId"] == "10.0.0.5_18080_18080"
    assert result["dataCenterInfo"] == {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                                        "name": "MyOwn"}


def test_auto_populate_from_ec2_metadata() -> None:
    result = document(ec2=EC2, eureka_datacenterinfo_auto_populate="true")
    assert result["hostName"] == "ip-10-0-0-5.ec2.internal"
    assert result["instanceId"] == "ip-10-0-0-5.ec2.internal_18080"
    assert result["ipAddr"] == result["vipAddress"] == "10.0.0.5"
    assert result["dataCenterInfo"]["metadata"] == {
        "instance-id": "ip-10-0-0-5.ec2.internal_18080",
        "local-hostname": "ip-10-0-0-5.ec2.internal",
        "hostname": "ip-10-0-0-5.ec2.internal",
        "local-ipv4": "10.0.0.5",
        "public-hostname": "ec2-3-4-5-6.compute-1.amazonaws.com",
        "public-ipv4": "3.4.5.6",
        "availability-zone": "us-east-1a",
    }
    assert result["metadata"]["aws-instance-id"] == "i-0abc"


def test_overrides_win_over_ec2_metadata() -> None:
    result = document(ec2=EC2, eureka_datacenterinfo_auto_populate="true",
                      eureka_datacenterinfo_publicipv4="9.9.9.9", eureka_datacenterinfo_localhostname="web.local")
    assert result["hostName"] == "web.local"
    assert result["dataCenterInfo"]["metadata"]["public-ipv4"] == "9.9.9.9"
    assert result["dataCenterInfo"]["metadata"]["local-ipv4"] == "10.0.0.5"


def test_register_aws_public_ip() -> None:
    result = document(ec2=EC2, eureka_datacenterinfo_auto_populate="true", eureka_register_aws_public_ip="true")
    assert result["ipAddr"] == result["vipAddress"] == "3.4.5.6"
    assert document(ec2=EC2, eureka_datacenterinfo_auto_populate="true", eureka_register_aws_public_ip="true",
                    eureka_ipaddr="10.1.1.1")["ipAddr"] == "10.1.1.1"


def test_ec2_metadata_is_not_used_unless_asked_for_or_with_my_own() -> None:
    assert "aws-instance-id" not in document(ec2=EC2)["metadata"]
    assert document(ec2=EC2, eureka_datacenterinfo_auto_populate="false")["hostName"] == "10.0.0.5"
    my_own = document(ec2=EC2, eureka_datacenterinfo_auto_populate="true", eureka_datacenterinfo_name="MyOwn")
    assert my_own["hostName"] == "10.0.0.5_18080"
    assert "aws-instance-id" not in my_own["metadata"]


@pytest.mark.parametrize("status", [InstanceStatus.DOWN, InstanceStatus.STARTING])
def test_container_state_wins_over_the_status_attribute_when_not_up(status: InstanceStatus) -> None:
    assert document(status, eureka_status="OUT_OF_SERVICE")["status"] == status.value


@pytest.mark.parametrize(("attrs", "culprit"), [
    ({"eureka_leaseinfo_durationinsecs": "ninety"}, "eureka_leaseinfo_durationinsecs"),
    ({"eureka_leaseinfo_renewalintervalinsecs": "-1"}, "eureka_leaseinfo_renewalintervalinsecs"),
    ({"eureka_leaseinfo_durationinsecs": "0"}, "eureka_leaseinfo_durationinsecs"),
    ({"eureka_leaseinfo_durationinsecs": "99999999999999999999"}, "eureka_leaseinfo_durationinsecs"),
    ({"eureka_status": "SORT_OF_UP"}, "eureka_status"),
    ({"eureka_datacenterinfo_name": "Azure"}, "eureka_datacenterinfo_name"),
    ({"eureka_datacenterinfo_auto_populate": "yes please"}, "eureka_datacenterinfo_auto_populate"),
    ({"eureka_datacenterinfo_auto_populate": "true"}, "eureka_datacenterinfo_auto_populate"),  # no EC2 data
    ({"eureka_register_aws_public_ip": "true"}, "eureka_register_aws_public_ip"),  # without auto-populate
    ({"eureka_ipaddr": "10.0.0.\x01"}, "eureka_ipaddr"),
    ({"eureka_metadata_1bad<key x": "v"}, "eureka_metadata_1bad<key x"),
    ({"eureka_metadata_xmlns": "v"}, "eureka_metadata_xmlns"),
    ({"eureka_metadata_a:b": "v"}, "eureka_metadata_a:b"),
    ({"eureka_metadata_ok": "bell\x07"}, "eureka_metadata_ok"),
])
def test_bad_attribute_is_reported_by_name_and_the_default_used(attrs: dict[str, str], culprit: str) -> None:
    result = registration(record(**attrs), InstanceStatus.UP, host="host-a")
    assert result.document == document()
    assert len(result.problems) == 1
    assert f"attribute {culprit}:" in result.problems[0]
    assert "container web (cccccccccccc)" in result.problems[0]


def test_hostile_metadata_values_are_kept_as_they_are_for_the_server_to_escape() -> None:
    value = "<a href=\"x\">&amp;'</a>"
    assert document(eureka_metadata_routes=value)["metadata"]["routes"] == value


@pytest.mark.parametrize(("attrs", "wanted"), [
    ({}, False),
    ({"eureka_datacenterinfo_auto_populate": "true"}, True),
    ({"eureka_datacenterinfo_auto_populate": "false"}, False),
    ({"eureka_datacenterinfo_auto_populate": "maybe"}, False),
    ({"eureka_datacenterinfo_auto_populate": "true", "eureka_datacenterinfo_name": "MyOwn"}, False),
])
def test_wants_ec2_metadata(attrs: dict[str, str], wanted: bool) -> None:
    assert wants_ec2_metadata(record(**attrs)) is wanted


@pytest.mark.parametrize(("attrs", "culprit", "lease"), [
    ({"eureka_leaseinfo_renewalintervalinsecs": "1"}, "eureka_leaseinfo_renewalintervalinsecs",
     {"renewalIntervalInSecs": 5, "durationInSecs": 90}),
    ({"eureka_leaseinfo_durationinsecs": "30"}, "eureka_leaseinfo_durationinsecs",
     {"renewalIntervalInSecs": 30, "durationInSecs": 90}),
    ({"eureka_leaseinfo_renewalintervalinsecs": "120"}, "eureka_leaseinfo_renewalintervalinsecs",
     {"renewalIntervalInSecs": 120, "durationInSecs": 360}),
    ({"eureka_leaseinfo_renewalintervalinsecs": "2", "eureka_leaseinfo_durationinsecs": "4"},
     "eureka_leaseinfo_renewalintervalinsecs", {"renewalIntervalInSecs": 5, "durationInSecs": 15}),
])
def test_lease_limits_name_the_label_and_keep_the_lease_longer_than_the_renewal(
        attrs: dict[str, str], culprit: str, lease: dict[str, int]) -> None:
    result = registration(record(**attrs), InstanceStatus.UP, host="host-a")
    assert result.document["leaseInfo"] == lease
    assert any(f"attribute {culprit}:" in problem for problem in result.problems)
    assert all("container web (cccccccccccc)" in problem for problem in result.problems)


def test_the_minimum_renewal_interval_is_a_setting() -> None:
    result = registration(record(eureka_leaseinfo_renewalintervalinsecs="1", eureka_leaseinfo_durationinsecs="3"),
                          InstanceStatus.UP, host="host-a", min_renewal=1)
    assert result.problems == ()
    assert result.document["leaseInfo"] == {"renewalIntervalInSecs": 1, "durationInSecs": 3}


def test_metadata_over_the_size_limit_is_cut_at_the_label_that_overflows() -> None:
    big = "x" * 6000
    attrs = {f"eureka_metadata_k{n}": big for n in range(4)}
    result = registration(record(**attrs), InstanceStatus.UP, host="host-a")
    metadata = result.document["metadata"]
    assert {"k0", "k1"} <= set(metadata) and not {"k2", "k3"} & set(metadata)
    assert [problem.split(": ")[1] for problem in result.problems] == [
        "attribute eureka_metadata_k2", "attribute eureka_metadata_k3"]
    assert all("16384 bytes" in problem for problem in result.problems)


@pytest.mark.parametrize("name", ["host\nname", "host name", "\x1b[31mred", "a/b"])
def test_a_local_hostname_that_cannot_be_an_instance_id_is_ignored(name: str) -> None:
    result = registration(record(eureka_datacenterinfo_localhostname=name), InstanceStatus.UP, host="host-a")
    assert result.document["instanceId"] == "10.0.0.5_18080"
    assert len(result.problems) == 1 and "eureka_datacenterinfo_localhostname" in result.problems[0]
    assert "\n" not in result.problems[0] and "\x1b" not in result.problems[0]
