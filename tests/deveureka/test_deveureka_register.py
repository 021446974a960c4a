"""POST /apps/{APP}: what is accepted, how it is normalised, and what is refused."""

from __future__ import annotations

import json

import pytest

DEFAULT_CLASS = "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"
AMAZON_CLASS = "com.netflix.appinfo.AmazonInfo"
XML_REGISTRATION = """<?xml version="1.0" encoding="UTF-8"?>
<instance>
  <instanceId>10.0.0.5_8080</instanceId>
  <hostName>ip-10-0-0-5.ec2.internal</hostName>
  <app>{app}</app>
  <ipAddr>10.0.0.5</ipAddr>
  <vipAddress>10.0.0.5</vipAddress>
  <status>starting</status>
  <port enabled="true">8080</port>
  <securePort enabled="false">8443</securePort>
  <dataCenterInfo class="com.netflix.appinfo.AmazonInfo">
    <name>Amazon</name>
    <metadata>
      <availability-zone>us-east-1a</availability-zone>
    </metadata>
  </dataCenterInfo>
  <leaseInfo>
    <renewalIntervalInSecs>10</renewalIntervalInSecs>
    <durationInSecs>35</durationInSecs>
  </leaseInfo>
  <metadata>
    <container-name>/web-1</container-name>
    <under__score>_.0031x</under__score>
    <hudl.routes>a&lt;b &amp; "c"</hudl.routes>
  </metadata>
</instance>
"""


def test_json_registration_is_stored_normalised(dev_eureka, app_name):
    response = dev_eureka.register(app_name, dev_eureka.doc(app_name))
    assert response.status_code == 204
    assert response.content == b""

    stored = dev_eureka.instance(app_name, "127.0.0.1_18080")
    assert stored["instanceId"] == "127.0.0.1_18080"
    assert stored["app"] == app_name
    assert stored["hostName"] == stored["ipAddr"] == stored["vipAddress"] == "127.0.0.1"
    assert stored["status"] == "UP"
    assert stored["overriddenStatus"] == "UNKNOWN"
    assert stored["port"] == {"$": 18080, "@enabled": "true"}
    assert stored["securePort"] == {"$": 443, "@enabled": "false"}
    assert stored["countryId"] == 1
    assert stored["dataCenterInfo"] == {
        "@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
        "name": "MyOwn",
    }
    assert stored["metadata"] == {"is-container": "true"}
    assert stored["isCoordinatingDiscoveryServer"] == "false"
    assert stored["actionType"] == "ADDED"
    lease = stored["leaseInfo"]
    assert lease["renewalIntervalInSecs"] == 30
    assert lease["durationInSecs"] == 90
    assert lease["evictionTimestamp"] == 0
    assert lease["registrationTimestamp"] > 0
    assert lease["lastRenewalTimestamp"] == lease["registrationTimestamp"]
    assert lease["serviceUpTimestamp"] == lease["registrationTimestamp"]
    assert int(stored["lastUpdatedTimestamp"]) == lease["registrationTimestamp"]
    assert int(stored["lastDirtyTimestamp"]) > 0


def test_minimal_registration_gets_netflix_defaults(dev_eureka, app_name):
    doc = {
        "instance": {
            "hostName": "host-a",
            "app": app_name,
            "ipAddr": "10.1.1.1",
            "dataCenterInfo": {"@class": DEFAULT_CLASS, "name": "MyOwn"},
        }
    }
    assert dev_eureka.register(app_name, doc).status_code == 204

    stored = dev_eureka.instance(app_name, "host-a")  # no instanceId: the id is the hostName
    assert "instanceId" not in stored  # written back only when sent
    assert stored["status"] == "UP"
    assert stored["port"] == {"$": 7001, "@enabled": "true"}
    assert stored["securePort"] == {"$": 7002, "@enabled": "false"}
    assert stored["leaseInfo"]["renewalIntervalInSecs"] == 30
    assert stored["leaseInfo"]["durationInSecs"] == 90
    assert stored["metadata"] == {"@class": "java.util.Collections$EmptyMap"}
    assert "vipAddress" not in stored


def test_values_are_read_as_netflix_reads_them(dev_eureka, app_name):
    doc = dev_eureka.doc(
        app_name,
        status="starting",  # not exactly a status name: UNKNOWN
        port={"$": "70000", "@enabled": "yes"},
        securePort={"$": 8443.9, "@enabled": True},
        leaseInfo={"renewalIntervalInSecs": "5", "durationInSecs": 0},
        metadata={"@class": "java.util.Collections$EmptyMap", "n": 3, "flag": False},
        countryId="x",
        lastDirtyTimestamp="abc",
        isCoordinatingDiscoveryServer=True,
        sid="na",
    )
    assert dev_eureka.register(app_name, doc).status_code == 204

    stored = dev_eureka.instance(app_name, "127.0.0.1_18080")
    assert stored["status"] == "UNKNOWN"
    assert stored["port"] == {"$": 70000, "@enabled": "false"}
    assert stored["securePort"] == {"$": 8443, "@enabled": "true"}
    assert stored["leaseInfo"]["renewalIntervalInSecs"] == 5
    assert stored["leaseInfo"]["durationInSecs"] == 90  # non-positive falls back
    assert stored["metadata"] == {"n": "3", "flag": "false"}
    assert (stored["countryId"], stored["lastDirtyTimestamp"]) == (0, "0")
    assert stored["isCoordinatingDiscoveryServer"] == "false"  # true only for the server itself
    assert "sid" not in stored
    assert stored["leaseInfo"]["serviceUpTimestamp"] == 0  # never UP yet
    heartbeat = dev_eureka.request("PUT", f"/apps/{app_name}/127.0.0.1_18080")
    assert heartbeat.status_code == 404  # UNKNOWN: register again


def test_xml_registration_round_trips(dev_eureka, app_name):
    response = dev_eureka.request(
        "POST",
        f"/apps/{app_name}",
        data=XML_REGISTRATION.format(app=app_name).encode(),
        headers={"Content-Type": "application/xml"},
    )
    assert response.status_code == 204, response.text

    stored = dev_eureka.instance(app_name, "10.0.0.5_8080")
    assert stored["hostName"] == "ip-10-0-0-5.ec2.internal"
    assert stored["status"] == "STARTING"  # Netflix reads XML statuses in any letter case
    assert stored["port"] == {"$": 8080, "@enabled": "true"}
    assert stored["securePort"] == {"$": 8443, "@enabled": "false"}
    assert stored["leaseInfo"]["renewalIntervalInSecs"] == 10
    assert stored["leaseInfo"]["durationInSecs"] == 35
    # Element names are read back as XStream wrote them: "__" is "_".
    assert stored["metadata"] == {
        "container-name": "/web-1",
        "under_score": "_.0031x",
        "hudl.routes": 'a<b & "c"',
    }
    assert stored["dataCenterInfo"] == {
        "@class": "com.netflix.appinfo.AmazonInfo",
        "name": "Amazon",
        # Netflix fills a missing AmazonInfo instance-id with the instance's id.
        "metadata": {"availability-zone": "us-east-1a", "instance-id": "10.0.0.5_8080"},
    }


def test_amazon_instance_without_instance_id_uses_datacenter_instance_id(dev_eureka, app_name):
    data_center = {
        "@class": "com.netflix.appinfo.AmazonInfo",
        "name": "Amazon",
        "metadata": {"instance-id": "web.internal_8080", "local-ipv4": "10.0.0.9"},
    }
    doc = dev_eureka.doc(
        app_name, instanceId=None, hostName="web.internal", dataCenterInfo=data_center
    )
    assert dev_eureka.register(app_name, doc).status_code == 204

    stored = dev_eureka.instance(app_name, "web.internal_8080")
    assert stored["dataCenterInfo"] == data_center
    assert "instanceId" not in stored  # not sent, so not written back


def test_app_name_is_case_insensitive_and_upper_cased(dev_eureka, app_name):
    response = dev_eureka.register(
        app_name, dev_eureka.doc(app_name.title()), url_app=app_name.lower()
    )
    assert response.status_code == 204

    stored = dev_eureka.instance(app_name.lower(), "127.0.0.1_18080")
    assert stored["app"] == app_name
    assert dev_eureka.get_json(f"/apps/{app_name.title()}")["application"]["name"] == app_name
    assert dev_eureka.request("PUT", f"/apps/{app_name.lower()}/127.0.0.1_18080").status_code == 200
    assert (
        dev_eureka.request("DELETE", f"/apps/{app_name.title()}/127.0.0.1_18080").status_code == 200
    )
    assert dev_eureka.request("GET", f"/apps/{app_name}").status_code == 404


def test_reregistration_replaces_the_instance(dev_eureka, app_name):
    first = dev_eureka.doc(app_name, metadata={"version": "1"}, lastDirtyTimestamp="1000")
    second = dev_eureka.doc(app_name, metadata={"version": "2"}, lastDirtyTimestamp="2000")
    assert dev_eureka.register(app_name, first).status_code == 204
    assert dev_eureka.register(app_name, second).status_code == 204

    instances = dev_eureka.get_json(f"/apps/{app_name}")["application"]["instance"]
    assert [i["metadata"] for i in instances] == [{"version": "2"}]
    assert instances[0]["lastDirtyTimestamp"] == "2000"


def test_reregistration_with_older_dirty_timestamp_keeps_registry_copy(dev_eureka, app_name):
    newer = dev_eureka.doc(app_name, metadata={"version": "new"}, lastDirtyTimestamp="2000")
    older = dev_eureka.doc(app_name, metadata={"version": "old"}, lastDirtyTimestamp="1000")
    assert dev_eureka.register(app_name, newer).status_code == 204
    assert dev_eureka.register(app_name, older).status_code == 204  # Netflix answers 204 too

    stored = dev_eureka.instance(app_name, "127.0.0.1_18080")
    assert stored["metadata"] == {"version": "new"}
    assert stored["lastDirtyTimestamp"] == "2000"


def test_reregistration_keeps_status_override(dev_eureka, app_name):
    assert dev_eureka.register(app_name, dev_eureka.doc(app_name)).status_code == 204
    path = f"/apps/{app_name}/127.0.0.1_18080"
    assert (
        dev_eureka.request("PUT", f"{path}/status", params={"value": "OUT_OF_SERVICE"}).status_code
        == 200
    )

    assert dev_eureka.register(app_name, dev_eureka.doc(app_name, status="UP")).status_code == 204

    stored = dev_eureka.instance(app_name, "127.0.0.1_18080")
    assert (stored["status"], stored["overriddenStatus"]) == ("OUT_OF_SERVICE", "OUT_OF_SERVICE")


def test_overridden_status_in_body_becomes_the_override(dev_eureka, app_name):
    doc = dev_eureka.doc(app_name, overriddenStatus="OUT_OF_SERVICE")
    assert dev_eureka.register(app_name, doc).status_code == 204

    stored = dev_eureka.instance(app_name, "127.0.0.1_18080")
    assert (stored["status"], stored["overriddenStatus"]) == ("OUT_OF_SERVICE", "OUT_OF_SERVICE")


def test_lower_case_overriddenstatus_in_json_is_ignored(dev_eureka, app_name):
    # py_eureka_client's spelling: Netflix's JSON codec only knows "overriddenStatus".
    doc = dev_eureka.doc(app_name, overriddenstatus="OUT_OF_SERVICE")
    assert dev_eureka.register(app_name, doc).status_code == 204

    stored = dev_eureka.instance(app_name, "127.0.0.1_18080")
    assert (stored["status"], stored["overriddenStatus"]) == ("UP", "UNKNOWN")


REFUSED = {
    "mismatched app": (dict(app="OTHER"), "Mismatched appName, expecting {app} but was OTHER"),
    "missing app": (dict(app=None), "Missing appName"),
    "missing dataCenterInfo": (dict(dataCenterInfo=None), "Missing dataCenterInfo"),
    "dataCenterInfo without name": (
        dict(dataCenterInfo={"@class": DEFAULT_CLASS}),
        "Missing dataCenterInfo Name",
    ),
    "no instanceId nor hostName": (dict(instanceId=None, hostName=None), "Missing instanceId"),
    "blank instanceId and hostName": (dict(instanceId="", hostName=" "), "Missing instanceId"),
    "missing hostName": (dict(hostName=None), "Missing hostname"),
    "missing ipAddr": (dict(ipAddr=None), "Missing ip address"),
}


@pytest.mark.parametrize("fields,message", REFUSED.values(), ids=REFUSED.keys())
@pytest.mark.parametrize("server", ["dev_eureka", "strict_eureka"])
def test_incomplete_registration_is_refused_with_netflix_message(
    request, server, app_name, fields, message
):
    server = request.getfixturevalue(server)
    response = server.register(app_name, server.doc(app_name, **fields))

    assert response.status_code == 400
    assert response.text == message.format(app=app_name)
    assert server.request("GET", f"/apps/{app_name}").status_code == 404


UNREADABLE = {
    "dataCenterInfo without @class": dict(dataCenterInfo={"name": "MyOwn"}),
    "dataCenterInfo of an unknown class": dict(dataCenterInfo={"@class": "x.Y", "name": "MyOwn"}),
    "dataCenterInfo of an unknown name": dict(
        dataCenterInfo={"@class": DEFAULT_CLASS, "name": "Moon"}
    ),
    "port as a plain number": dict(port=8080),
    "securePort as a string": dict(securePort="8443"),
    "port with another field": dict(port={"$": 80, "@enabled": "true", "x": 1}),
    "leaseInfo not an object": dict(leaseInfo="90"),
    "metadata value nested": dict(metadata={"k": {"x": 1}}),
}


@pytest.mark.parametrize("fields", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_body_netflix_cannot_read_is_refused(dev_eureka, app_name, fields):
    response = dev_eureka.register(app_name, dev_eureka.doc(app_name, **fields))

    assert response.status_code == 400
    assert response.json() == {"error": "cannot parse request body"}
    assert dev_eureka.request("GET", f"/apps/{app_name}").status_code == 404


STRICT = {
    "port not an integer": (dict(port={"$": "http", "@enabled": "true"}), "port.$"),
    "port float": (dict(port={"$": 80.5, "@enabled": "true"}), "port.$"),
    "port out of range": (dict(port={"$": 70000, "@enabled": "true"}), "0-65535"),
    "securePort bool": (dict(securePort={"$": True, "@enabled": "false"}), "securePort.$"),
    "port enabled not boolean": (dict(port={"$": 80, "@enabled": "yes"}), "port.@enabled"),
    "unknown status": (dict(status="RUNNING"), "status"),
    "status in lower case": (dict(status="up"), "status"),
    "unknown overriddenStatus": (dict(overriddenStatus="MAYBE"), "overriddenStatus"),
    "lease duration not integer": (dict(leaseInfo={"durationInSecs": "ninety"}), "durationInSecs"),
    "hostName not a string": (dict(hostName=12), "hostName"),
    "metadata key invalid": (dict(metadata={"1bad<key x": "v"}), "'1bad<key x'"),
    "metadata key with colon": (dict(metadata={"a:b": "v"}), "'a:b'"),
    "metadata key with space": (dict(metadata={"has space": "v"}), "'has space'"),
    "metadata key empty": (dict(metadata={"": "v"}), "''"),
    "metadata value control char": (dict(metadata={"k": "a\x01b"}), "XML 1.0"),
    "datacenter metadata key invalid": (
        dict(
            dataCenterInfo={"@class": AMAZON_CLASS, "name": "Amazon", "metadata": {"bad key": "v"}}
        ),
        "'bad key'",
    ),
}


@pytest.mark.parametrize("fields,named", STRICT.values(), ids=STRICT.keys())
def test_strict_server_refuses_what_netflix_would_silently_alter(
    dev_eureka, strict_eureka, app_name, fields, named
):
    response = strict_eureka.register(app_name, strict_eureka.doc(app_name, **fields))

    assert response.status_code == 400
    assert named in response.text
    assert strict_eureka.request("GET", f"/apps/{app_name}").status_code == 404
    assert dev_eureka.register(app_name, dev_eureka.doc(app_name, **fields)).status_code == 204
    # The shared server's XML listings must stay readable for the tests that read them.
    assert dev_eureka.request("DELETE", f"/apps/{app_name}/127.0.0.1_18080").status_code == 200


UNPARSEABLE = {
    "broken JSON": ("application/json", b'{"instance": {'),
    "JSON without instance": ("application/json", json.dumps({"app": "X"}).encode()),
    "JSON instance not an object": ("application/json", b'{"instance": "x"}'),
    "broken XML": ("application/xml", b"<instance><app>X</app>"),
    "XML with another root": ("application/xml", b"<application><name>X</name></application>"),
    "XML port not a number": ("application/xml", b"<instance><port>http</port></instance>"),
}


@pytest.mark.parametrize("content_type,body", UNPARSEABLE.values(), ids=UNPARSEABLE.keys())
def test_unparseable_body_is_refused(dev_eureka, app_name, content_type, body):
    response = dev_eureka.request(
        "POST", f"/apps/{app_name}", data=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith(content_type)
    assert "cannot parse request body" in response.text


@pytest.mark.parametrize("content_type", ["text/plain", "text/xml", "application/vnd.x+json"])
def test_body_that_is_neither_json_nor_xml_is_unsupported(dev_eureka, app_name, content_type):
    response = dev_eureka.request(
        "POST",
        f"/apps/{app_name}",
        data=json.dumps(dev_eureka.doc(app_name)).encode(),
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 415
    assert response.content == b""
    assert dev_eureka.request("GET", f"/apps/{app_name}").status_code == 404
