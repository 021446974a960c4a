"""Service record -> Eureka instance document."""

from __future__ import annotations

import pytest

from shared.instance import registration
from shared.models import InstanceStatus, ServiceRecord


def record(**attrs: str) -> ServiceRecord:
    return ServiceRecord(service_id="h:web:80", name="web", ip="10.0.0.5", port=18080, exposed_port=80,
                         protocol="tcp", host_ip="10.0.0.9", attrs=attrs, container_id="c" * 64,
                         container_name="/web")


def test_defaults() -> None:
    result = registration(record(), InstanceStatus.UP, host="host-a")
    assert result.problems == ()
    assert result.document == {
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


def test_my_own_datacenter_names_the_host_after_ip_and_port() -> None:
    document = registration(record(eureka_datacenterinfo_name="MyOwn"), InstanceStatus.UP, host="host-a").document
    assert document["hostName"] == "10.0.0.5_18080"
    assert document["instanceId"] == "10.0.0.5_18080_18080"
    assert document["dataCenterInfo"] == {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                                          "name": "MyOwn"}


def test_lease_and_status_attributes() -> None:
    document = registration(record(eureka_leaseinfo_renewalintervalinsecs="5",
                                   eureka_leaseinfo_durationinsecs="15", eureka_status="OUT_OF_SERVICE"),
                            InstanceStatus.UP, host="host-a").document
    assert document["leaseInfo"] == {"renewalIntervalInSecs": 5, "durationInSecs": 15}
    assert document["status"] == "OUT_OF_SERVICE"


def test_container_state_wins_over_the_status_attribute_when_not_up() -> None:
    assert registration(record(eureka_status="UP"), InstanceStatus.DOWN, host="host-a").document["status"] == "DOWN"


@pytest.mark.parametrize(("attr", "value"), [
    ("eureka_leaseinfo_durationinsecs", "ninety"),
    ("eureka_leaseinfo_renewalintervalinsecs", "-1"),
    ("eureka_status", "SORT_OF_UP"),
    ("eureka_datacenterinfo_name", "Azure"),
])
def test_bad_attribute_is_reported_and_its_default_used(attr: str, value: str) -> None:
    result = registration(record(**{attr: value}), InstanceStatus.UP, host="host-a")
    default = registration(record(), InstanceStatus.UP, host="host-a").document
    assert result.document == default
    assert len(result.problems) == 1
    assert attr in result.problems[0] and "web" in result.problems[0]


def test_metadata_attributes_and_invalid_xml_names() -> None:
    result = registration(record(**{"eureka_metadata_branch": "main", "eureka_metadata_hudl.version": "1.2",
                                    "eureka_metadata_1bad<key x": "v", "eureka_metadata_xmlns": "v",
                                    "eureka_metadata_routes": "<a href=\"x\">&</a>"}), InstanceStatus.UP, host="host-a")
    metadata = result.document["metadata"]
    assert metadata["branch"] == "main"
    assert metadata["hudl.version"] == "1.2"
    assert metadata["routes"] == "<a href=\"x\">&</a>"
    assert "1bad<key x" not in metadata and "xmlns" not in metadata
    assert len(result.problems) == 2
