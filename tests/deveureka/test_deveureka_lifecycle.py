"""Heartbeats, cancellation, status overrides, metadata updates and lease eviction."""

from __future__ import annotations

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


def test_heartbeat_with_malformed_dirty_timestamp_is_500_after_renewing(dev_eureka, path):
    before = dev_eureka.get_json(path)["instance"]["leaseInfo"]["lastRenewalTimestamp"]

    response = dev_eureka.request("PUT", path, params={"lastDirtyTimestamp": "yesterday"})

    assert response.status_code == 500  # Netflix: Long.valueOf fails after the lease was renewed
    assert dev_eureka.get_json(path)["instance"]["leaseInfo"]["lastRenewalTimestamp"] > before


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
        ("DELETE", {"value": "GONE"}),
    ],
)
def test_status_value_that_is_not_exactly_a_status_is_500(dev_eureka, path, method, params):
    # Netflix's InstanceStatus.valueOf throws; the resource answers 500.
    assert dev_eureka.request(method, f"{path}/status", params=params).status_code == 500
    assert _status(dev_eureka, path) == ("UP", "UNKNOWN")


def test_malformed_dirty_timestamp_on_a_status_change_is_500_with_the_change_made(dev_eureka, path):
    same = dev_eureka.request(
        "PUT", f"{path}/status", params={"value": "UP", "lastDirtyTimestamp": "soon"}
    )
    assert same.status_code == 200  # no change to make: Netflix never reads the timestamp

    changed = dev_eureka.request(
        "PUT", f"{path}/status", params={"value": "OUT_OF_SERVICE", "lastDirtyTimestamp": "soon"}
    )

    assert changed.status_code == 500
    assert _status(dev_eureka, path) == ("OUT_OF_SERVICE", "OUT_OF_SERVICE")


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


def test_any_metadata_key_is_kept_and_written_in_xml_as_xstream_writes_it(launch, app_name):
    # A server of its own: the "a:b" key makes every XML listing of it unreadable.
    server = launch("--response-cache-seconds", "0")
    assert server.register(app_name, server.doc(app_name)).status_code == 204
    path = f"/apps/{app_name}/{ID}"
    keys = {"1bad<key x": "v1", "a:b": "v2", "under_score": "v3", "$x": "v4"}

    assert server.request("PUT", f"{path}/metadata", params=keys).status_code == 200

    assert server.get_json(path)["instance"]["metadata"] == {"is-container": "true", **keys}
    xml = server.request("GET", path, headers={"Accept": "application/xml"}).text
    for element in ("_.0031bad_.003ckey_.0020x", "a:b", "under__score", "_-x"):
        assert f"<{element}>" in xml, element
    with pytest.raises(ET.ParseError, match="unbound prefix"):  # as Netflix's: see README
        ET.fromstring(server.request("GET", "/apps", headers={"Accept": "application/xml"}).content)


@pytest.mark.parametrize("key", ["1bad", "a b", "x:y", "<k>"])
def test_strict_server_refuses_a_metadata_key_that_is_not_an_xml_name(strict_eureka, app_name, key):
    assert strict_eureka.register(app_name, strict_eureka.doc(app_name)).status_code == 204
    path = f"/apps/{app_name}/{ID}"

    response = strict_eureka.request("PUT", f"{path}/metadata", params={key: "v", "good": "v"})

    assert response.status_code == 400
    assert repr(key) in response.text
    assert strict_eureka.get_json(path)["instance"]["metadata"] == {"is-container": "true"}
