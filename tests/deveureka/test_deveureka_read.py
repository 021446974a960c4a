"""GET routes: document shapes in JSON and XML, content negotiation, escaping, 404s."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

import pytest

TRICKY = "a<b & \"c\" 'd' >e"
XML = {"Accept": "application/xml"}


def _xml(dev_eureka, path: str, headers: dict[str, str] | None = XML) -> ET.Element:
    response = dev_eureka.request("GET", path, headers=headers)
    assert response.status_code == 200, (path, response.status_code)
    assert response.headers["Content-Type"].startswith("application/xml")
    return ET.fromstring(response.content)


def _application(apps: ET.Element, name: str) -> ET.Element:
    matches = [a for a in apps.findall("application") if a.findtext("name") == name]
    assert len(matches) == 1, ET.tostring(apps)
    return matches[0]


@pytest.fixture
def registered(dev_eureka, app_name):
    doc = dev_eureka.doc(
        app_name,
        metadata={"is-container": "true", "hudl.routes": TRICKY},
        homePageUrl=f"http://127.0.0.1:18080/?q={TRICKY}",
    )
    assert dev_eureka.register(app_name, doc).status_code == 204
    return app_name


def test_applications_json_shape(dev_eureka, registered):
    doc = dev_eureka.get_json("/apps")

    apps = doc["applications"]
    assert apps["versions__delta"] == "1"
    mine = [a for a in apps["application"] if a["name"] == registered]
    assert len(mine) == 1
    [instance] = mine[0]["instance"]
    assert instance["instanceId"] == "127.0.0.1_18080"
    assert instance["port"] == {"$": 18080, "@enabled": "true"}
    assert (
        instance["dataCenterInfo"]["@class"]
        == "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"
    )
    assert instance["metadata"] == {"is-container": "true", "hudl.routes": TRICKY}
    assert instance["homePageUrl"] == f"http://127.0.0.1:18080/?q={TRICKY}"
    statuses = [i["status"] for a in apps["application"] for i in a["instance"]]
    expected_hash = "".join(f"{s}_{statuses.count(s)}_" for s in sorted(set(statuses)))
    assert apps["apps__hashcode"] == expected_hash


def test_applications_xml_shape_and_escaping(dev_eureka, registered):
    response = dev_eureka.request("GET", "/apps", headers=XML)
    assert "&lt;b &amp;" in response.text  # escaped by the encoder, not passed through
    root = ET.fromstring(response.content)

    assert root.tag == "applications"
    assert root.findtext("versions__delta") == "1"
    full = dev_eureka.get_json("/apps")["applications"]
    assert root.findtext("apps__hashcode") == full["apps__hashcode"]
    [instance] = _application(root, registered).findall("instance")
    assert instance.findtext("instanceId") == "127.0.0.1_18080"
    assert instance.findtext("app") == registered
    assert instance.findtext("status") == "UP"
    assert instance.findtext("overriddenstatus") == "UNKNOWN"
    port = instance.find("port")
    assert (port.text, port.get("enabled")) == ("18080", "true")
    secure = instance.find("securePort")
    assert (secure.text, secure.get("enabled")) == ("443", "false")
    data_center = instance.find("dataCenterInfo")
    assert data_center.get("class") == "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"
    assert data_center.findtext("name") == "MyOwn"
    assert instance.findtext("leaseInfo/durationInSecs") == "90"
    assert instance.findtext("leaseInfo/evictionTimestamp") == "0"
    assert instance.findtext("metadata/is-container") == "true"
    assert instance.findtext("metadata/hudl.routes") == TRICKY
    assert instance.findtext("homePageUrl") == f"http://127.0.0.1:18080/?q={TRICKY}"
    assert instance.findtext("isCoordinatingDiscoveryServer") == "false"
    assert instance.findtext("actionType") == "ADDED"


def test_application_in_json_and_xml(dev_eureka, registered):
    doc = dev_eureka.get_json(f"/apps/{registered}")
    assert doc["application"]["name"] == registered
    assert [i["instanceId"] for i in doc["application"]["instance"]] == ["127.0.0.1_18080"]

    root = _xml(dev_eureka, f"/apps/{registered}")
    assert root.tag == "application"
    assert root.findtext("name") == registered
    assert root.findtext("instance/metadata/hudl.routes") == TRICKY


def test_instance_in_json_and_xml(dev_eureka, registered):
    doc = dev_eureka.get_json(f"/apps/{registered}/127.0.0.1_18080")
    assert doc["instance"]["metadata"]["hudl.routes"] == TRICKY

    root = _xml(dev_eureka, f"/apps/{registered}/127.0.0.1_18080")
    assert root.tag == "instance"
    assert root.findtext("ipAddr") == "127.0.0.1"
    assert root.findtext("metadata/hudl.routes") == TRICKY


def test_instance_by_id_alone(dev_eureka, app_name):
    instance_id = f"unique-{uuid.uuid4().hex}"
    assert (
        dev_eureka.register(app_name, dev_eureka.doc(app_name, instanceId=instance_id)).status_code
        == 204
    )

    assert dev_eureka.get_json(f"/instances/{instance_id}")["instance"]["app"] == app_name
    assert _xml(dev_eureka, f"/instances/{instance_id}").findtext("app") == app_name
    assert dev_eureka.request("GET", f"/instances/missing-{instance_id}").status_code == 404


@pytest.mark.parametrize(
    "accept,listing,instance",
    [
        (None, "application/xml", "application/xml"),
        ("*/*", "application/xml", "application/xml"),
        ("application/xml", "application/xml", "application/xml"),
        ("application/json", "application/json", "application/json"),
        ("application/json, */*", "application/json", "application/json"),
        # Listings look for "json" anywhere in the header; a single instance is negotiated.
        ("application/xml;q=1, application/json;q=0.5", "application/json", "application/xml"),
    ],
)
def test_format_follows_accept_with_xml_by_default(
    dev_eureka, registered, accept, listing, instance
):
    for path, expected in (
        ("/apps", listing),
        (f"/apps/{registered}", listing),
        (f"/apps/{registered}/127.0.0.1_18080", instance),
    ):
        response = dev_eureka.request("GET", path, headers={"Accept": accept})  # None: no header
        assert response.request.headers.get("Accept") == accept
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith(expected), path
        if expected == "application/json":
            response.json()
        else:
            ET.fromstring(response.content)


def test_unknown_app_and_instance_are_404(dev_eureka, registered, app_name):
    other = f"{app_name}-NONE"
    for path in (
        f"/apps/{other}",
        f"/apps/{other}/127.0.0.1_18080",
        f"/apps/{registered}/127.0.0.1_9",
    ):
        for headers in ({"Accept": "application/json"}, XML):
            assert dev_eureka.request("GET", path, headers=headers).status_code == 404, path


def test_netflix_v2_paths_serve_the_same_registry(dev_eureka, app_name):
    v2 = dev_eureka.base_url + "/v2"
    response = dev_eureka.http.post(
        f"{v2}/apps/{app_name}", json=dev_eureka.doc(app_name), timeout=5
    )
    assert response.status_code == 204

    assert dev_eureka.instance(app_name, "127.0.0.1_18080")["app"] == app_name
    response = dev_eureka.http.get(f"{v2}/apps/{app_name}/127.0.0.1_18080", headers=XML, timeout=5)
    assert ET.fromstring(response.content).findtext("app") == app_name
    assert (
        dev_eureka.http.put(f"{v2}/apps/{app_name}/127.0.0.1_18080", timeout=5).status_code == 200
    )
    assert (
        dev_eureka.http.delete(f"{v2}/apps/{app_name}/127.0.0.1_18080", timeout=5).status_code
        == 200
    )
    assert dev_eureka.request("GET", f"/apps/{app_name}").status_code == 404


def test_trailing_slash_is_accepted(dev_eureka, registered):
    assert _xml(dev_eureka, "/apps/", headers={"Accept": None}).tag == "applications"
    assert dev_eureka.get_json(f"/apps/{registered}/")["application"]["name"] == registered


def test_delta_is_empty_but_carries_the_full_hashcode(dev_eureka, registered):
    full = dev_eureka.get_json("/apps")["applications"]
    delta = dev_eureka.get_json("/apps/delta")["applications"]
    assert delta["application"] == []
    assert delta["apps__hashcode"] == full["apps__hashcode"]

    root = _xml(dev_eureka, "/apps/delta")
    assert root.tag == "applications"
    assert root.findall("application") == []


def test_hashcode_counts_statuses(launch):
    server = launch("--response-cache-seconds", "0")
    for port, status in ((1, "UP"), (2, "UP"), (3, "DOWN")):
        doc = server.doc("WEB", instance_port=port, status=status)
        assert server.register("WEB", doc).status_code == 204

    assert server.get_json("/apps")["applications"]["apps__hashcode"] == "DOWN_1_UP_2_"
    assert _xml(server, "/apps").findtext("apps__hashcode") == "DOWN_1_UP_2_"


def test_empty_registry(launch):
    server = launch()
    assert server.get_json("/apps") == {
        "applications": {"versions__delta": "1", "apps__hashcode": "", "application": []}
    }
    root = _xml(server, "/apps")
    assert [child.tag for child in root] == ["versions__delta", "apps__hashcode"]
