"""Heartbeats, cancellation, status overrides, metadata updates and lease eviction."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest

ID = "127.0.0.1_18080"


@pytest.fixture
def path(dev_eureka, app_name) -> str:
    """An instance registered UP (lastDirtyTimestamp 5000) and its URL path."""
    assert (
        dev_eureka.register(
            app_name, dev_eureka.doc(app_name, lastDirtyTimestamp="5000")
        ).status_code
        == 204
    )
    return f"/apps/{app_name}/{ID}"


def _status(dev_eureka, path: str) -> tuple[str, str]:
    stored = dev_eureka.get_json(path)["instance"]
    return stored["status"], stored["overriddenStatus"]


def test_heartbeat_renews_with_empty_200(dev_eureka, path):
    before = dev_eureka.get_json(path)["instance"]["leaseInfo"]

    response = dev_eureka.request(
        "PUT", path, params={"status": "DOWN", "lastDirtyTimestamp": "5000"}
    )

    assert response.status_code == 200
    assert response.content == b""
    stored = dev_eureka.get_json(path)["instance"]
    assert stored["status"] == "UP"  # the status query parameter is ignored
    assert stored["leaseInfo"]["lastRenewalTimestamp"] >= before["lastRenewalTimestamp"]
    assert stored["leaseInfo"]["registrationTimestamp"] == before["registrationTimestamp"]


def test_heartbeat_for_unknown_app_or_instance_is_404(dev_eureka, path, app_name):
    assert dev_eureka.request("PUT", f"/apps/{app_name}/127.0.0.1_1").status_code == 404
    assert dev_eureka.request("PUT", f"/apps/{app_name}-NONE/{ID}").status_code == 404


@pytest.mark.parametrize("client_dirty,expected", [("4000", 200), ("5000", 200), ("6000", 404)])
def test_heartbeat_with_newer_dirty_timestamp_is_404(dev_eureka, path, client_dirty, expected):
    response = dev_eureka.request("PUT", path, params={"lastDirtyTimestamp": client_dirty})
    assert response.status_code == expected


def test_heartbeat_with_malformed_dirty_timestamp_is_400(dev_eureka, path):
    assert (
        dev_eureka.request("PUT", path, params={"lastDirtyTimestamp": "yesterday"}).status_code
        == 400
    )


def test_heartbeat_after_delete_is_404_until_registered_again(dev_eureka, path, app_name):
    assert dev_eureka.request("DELETE", path).status_code == 200
    assert dev_eureka.request("PUT", path).status_code == 404

    assert dev_eureka.register(app_name, dev_eureka.doc(app_name)).status_code == 204
    assert dev_eureka.request("PUT", path).status_code == 200


def test_delete_removes_and_second_delete_is_404(dev_eureka, path, app_name):
    response = dev_eureka.request("DELETE", path)
    assert response.status_code == 200

    assert dev_eureka.request("GET", path).status_code == 404
    assert dev_eureka.request("GET", f"/apps/{app_name}").status_code == 404
    names = [a["name"] for a in dev_eureka.get_json("/apps")["applications"]["application"]]
    assert app_name not in names
    assert dev_eureka.request("DELETE", path).status_code == 404
    assert dev_eureka.request("DELETE", f"/apps/{app_name}-NONE/{ID}").status_code == 404


def test_delete_leaves_other_instances(dev_eureka, app_name):
    for port in (1, 2):
        assert (
            dev_eureka.register(app_name, dev_eureka.doc(app_name, instance_port=port)).status_code
            == 204
        )
    assert dev_eureka.request("DELETE", f"/apps/{app_name}/127.0.0.1_1").status_code == 200

    instances = dev_eureka.get_json(f"/apps/{app_name}")["application"]["instance"]
    assert [i["instanceId"] for i in instances] == ["127.0.0.1_2"]


def test_status_override_set_and_cleared(dev_eureka, path, app_name):
    response = dev_eureka.request("PUT", f"{path}/status", params={"value": "OUT_OF_SERVICE"})
    assert response.status_code == 200
    stored = dev_eureka.get_json(path)["instance"]
    assert (stored["status"], stored["overriddenStatus"]) == ("OUT_OF_SERVICE", "OUT_OF_SERVICE")
    assert stored["actionType"] == "MODIFIED"
    xml = ET.fromstring(
        dev_eureka.request("GET", path, headers={"Accept": "application/xml"}).content
    )
    assert xml.findtext("overriddenstatus") == "OUT_OF_SERVICE"

    assert dev_eureka.request("PUT", path).status_code == 200  # heartbeats keep the override
    assert _status(dev_eureka, path) == ("OUT_OF_SERVICE", "OUT_OF_SERVICE")

    response = dev_eureka.request("DELETE", f"{path}/status", params={"value": "UP"})
    assert response.status_code == 200
    assert _status(dev_eureka, path) == ("UP", "UNKNOWN")
    assert dev_eureka.request("PUT", path).status_code == 200


def test_clearing_override_without_value_leaves_unknown_and_forces_reregistration(
    dev_eureka, path, app_name
):
    assert dev_eureka.request("PUT", f"{path}/status", params={"value": "DOWN"}).status_code == 200

    assert dev_eureka.request("DELETE", f"{path}/status").status_code == 200

    assert _status(dev_eureka, path) == ("UNKNOWN", "UNKNOWN")
    assert (
        dev_eureka.request("PUT", path).status_code == 404
    )  # Netflix: UNKNOWN means register again
    assert dev_eureka.register(app_name, dev_eureka.doc(app_name)).status_code == 204
    assert _status(dev_eureka, path) == ("UP", "UNKNOWN")
    assert dev_eureka.request("PUT", path).status_code == 200


def test_setting_the_current_status_records_no_override(dev_eureka, path):
    assert dev_eureka.request("PUT", f"{path}/status", params={"value": "UP"}).status_code == 200
    assert _status(dev_eureka, path) == ("UP", "UNKNOWN")

    assert dev_eureka.request("DELETE", f"{path}/status").status_code == 200  # nothing to clear
    assert _status(dev_eureka, path) == ("UP", "UNKNOWN")


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_status_of_unknown_instance_is_404(dev_eureka, path, app_name, method):
    response = dev_eureka.request(
        method, f"/apps/{app_name}/127.0.0.1_1/status", params={"value": "UP"}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "method,params",
    [
        ("PUT", {}),
        ("PUT", {"value": "up"}),
        ("PUT", {"value": "SLEEPING"}),
        ("PUT", {"value": "UP", "lastDirtyTimestamp": "soon"}),
        ("DELETE", {"value": "GONE"}),
    ],
)
def test_invalid_status_value_is_400(dev_eureka, path, method, params):
    assert dev_eureka.request(method, f"{path}/status", params=params).status_code == 400
    assert _status(dev_eureka, path) == ("UP", "UNKNOWN")


def test_metadata_merge(dev_eureka, path):
    tricky = 'x<y & "z"'
    params = [("branch", "main"), ("note", tricky), ("branch", "other")]
    response = dev_eureka.request("PUT", f"{path}/metadata", params=params)

    assert response.status_code == 200
    stored = dev_eureka.get_json(path)["instance"]
    assert stored["metadata"] == {"is-container": "true", "branch": "main", "note": tricky}
    xml = ET.fromstring(
        dev_eureka.request("GET", path, headers={"Accept": "application/xml"}).content
    )
    assert xml.findtext("metadata/note") == tricky

    assert (
        dev_eureka.request("PUT", f"{path}/metadata", params={"is-container": "false"}).status_code
        == 200
    )
    assert dev_eureka.get_json(path)["instance"]["metadata"]["is-container"] == "false"


def test_metadata_for_unknown_instance_is_404(dev_eureka, path, app_name):
    response = dev_eureka.request(
        "PUT", f"/apps/{app_name}/127.0.0.1_1/metadata", params={"k": "v"}
    )
    assert response.status_code == 404


@pytest.mark.parametrize("key", ["1bad", "a b", "x:y", "<k>"])
def test_metadata_with_invalid_key_is_400(dev_eureka, path, key):
    response = dev_eureka.request("PUT", f"{path}/metadata", params={key: "v", "good": "v"})

    assert response.status_code == 400
    assert repr(key) in response.text
    assert dev_eureka.get_json(path)["instance"]["metadata"] == {"is-container": "true"}


def _wait_until_gone(dev_eureka, path: str, deadline: float) -> float:
    while time.monotonic() < deadline:
        if dev_eureka.request("GET", path).status_code == 404:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"{path} still registered")


def test_lease_expiry_evicts_and_heartbeats_prevent_it(dev_eureka, app_name):
    # Lease 2 s, eviction every 0.2 s: gone between 2 s and 2.2 s (plus scheduling slack)
    # after the last renewal. Netflix's doubled lease would take 4 s.
    lease = {"renewalIntervalInSecs": 1, "durationInSecs": 2}
    renewed, silent = f"/apps/{app_name}/127.0.0.1_1", f"/apps/{app_name}/127.0.0.1_2"
    registered = time.monotonic()
    for port in (1, 2):
        doc = dev_eureka.doc(app_name, instance_port=port, leaseInfo=lease)
        assert dev_eureka.register(app_name, doc).status_code == 204

    deadline = registered + 3.2
    while dev_eureka.request("GET", silent).status_code == 200:
        assert time.monotonic() < deadline, "instance without heartbeats was not evicted in time"
        assert dev_eureka.request("PUT", renewed).status_code == 200
        last_heartbeat = time.monotonic()
        time.sleep(0.1)
    assert time.monotonic() - registered >= 2.0, "evicted before its lease ran out"
    assert dev_eureka.request("PUT", silent).status_code == 404
    assert dev_eureka.get_json(renewed)["instance"]["instanceId"] == "127.0.0.1_1"

    gone_at = _wait_until_gone(dev_eureka, renewed, deadline=last_heartbeat + 3.2)
    assert gone_at - last_heartbeat >= 1.9  # counted from the last renewal, not registration
    assert dev_eureka.request("GET", f"/apps/{app_name}").status_code == 404
