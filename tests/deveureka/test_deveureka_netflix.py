"""Differential test: the request sequence recorded against a real Netflix Eureka 1.10.18
(standalone, self-preservation off, 30 s response cache, 60 s eviction runs; recorded in
../shared/eureka-netflix-1.10.18.md), replayed against the dev server with its defaults.

RECORDED holds the real server's answers as recorded: for each step the HTTP statuses and the
fields read back. The replay sends the same requests (JSON, gzip accepted, unless a step says
otherwise) and reads the same fields, and each step must match field for field. "<APP>" and the
like stand for the run's unique app names; "same", "increased" and "first read" compare a
timestamp with the previous read of the same instance; "lastRenewal-now" is rounded to seconds.

Section 7 (leases, eviction, the cache timeline) runs on servers with the timings scaled down by
flag, and is compared through relations that hold for the recording in its units and for the
replay in its units: see LEASE_TIMINGS and the tolerances there.
"""

from __future__ import annotations

import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

DEFAULT = "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"
AMAZON = "com.netflix.appinfo.AmazonInfo"
EMPTY_MAP = {"@class": "java.util.Collections$EmptyMap"}
KEYS = [
    "actionType", "app", "countryId", "dataCenterInfo", "hostName", "instanceId", "ipAddr",
    "isCoordinatingDiscoveryServer", "lastDirtyTimestamp", "lastUpdatedTimestamp", "leaseInfo",
    "metadata", "overriddenStatus", "port", "securePort", "status",
]
JSON = {"Accept": "application/json"}
AMAZON_METADATA = {
    "instance-id": "i-0amz1",
    "availability-zone": "us-east-1a",
    "instance-type": "t3.micro",
    "ami-id": "ami-123",
    "public-hostname": "ec2-1.example.test",
    "local-ipv4": "10.0.0.5",
}


def _read(http: int = 200, **fields: Any) -> dict[str, Any]:
    """A recorded GET of an instance in JSON: the fields every such step reads back."""
    return {"http": http, "status": "UP", "overriddenStatus": "UNKNOWN", "actionType": "ADDED",
            "leaseInfo": "renew=30 dur=90 evict=0", **fields}


FIRST_READ = dict(lastDirtyTs="first read", registrationTs="first read", serviceUpTs="first read",
                  lastUpdatedTs="first read")

RECORDED: dict[str, dict[str, Any]] = {
    "1.01": {"http": 204},
    "1.02": _read(
        **FIRST_READ, **{"lastRenewal-now": "+0s"}, metadata=EMPTY_MAP, instanceId="i-min",
        app="<APP>", port={"$": 8080, "@enabled": "true"},
        securePort={"$": 7002, "@enabled": "false"},
        dataCenterInfo={"@class": DEFAULT, "name": "MyOwn"}, vipAddress="<absent>", countryId=1,
        isCoordinatingDiscoveryServer="false", lastDirtyTimestamp_type="str",
        lastUpdatedTimestamp_type="str", keys=KEYS,
    ),
    "1.03": {
        "http": 200, "content-type": "application/xml", "status": "UP",
        "overriddenstatus": "UNKNOWN",
        "metadata": {"attrs": {"class": "java.util.Collections$EmptyMap"}, "children": []},
        "port": ("8080", {"enabled": "true"}), "securePort": ("7002", {"enabled": "false"}),
        "dataCenterInfo": {"attrs": {"class": DEFAULT}, "name": "MyOwn", "metadata": []},
    },
    "1.04": {"http": 204},
    "1.05": _read(
        **FIRST_READ, **{"lastRenewal-now": "+0s"}, metadata={"zone": "a"}, instanceId="i-0amz1",
        app="<APP>", port={"$": 8080, "@enabled": "true"},
        securePort={"$": 8443, "@enabled": "false"},
        dataCenterInfo={"@class": AMAZON, "name": "Amazon", "metadata": AMAZON_METADATA},
        vipAddress="diff-vip", countryId=1, isCoordinatingDiscoveryServer="false",
        lastDirtyTimestamp_type="str", lastUpdatedTimestamp_type="str",
        keys=sorted([*KEYS, "vipAddress"]),
    ),
    "1.06": {
        "http": 200, "content-type": "application/xml", "status": "UP",
        "overriddenstatus": "UNKNOWN",
        "metadata": {"attrs": {}, "children": [["zone", "a"]]},
        "port": ("8080", {"enabled": "true"}), "securePort": ("8443", {"enabled": "false"}),
        "dataCenterInfo": {"attrs": {"class": AMAZON}, "name": "Amazon",
                           "metadata": sorted([k, v] for k, v in AMAZON_METADATA.items())},
    },
    "1.07": {"http": 204, "GET /i-0amz2": 200},
    "1.08": {"http": 204, "GET by hostName": 200, "instanceId": None, "dataCenterInfo": {
        "@class": AMAZON, "name": "Amazon",
        "metadata": {"instance-id": "amz3.example.test", "availability-zone": "us-east-1b"}}},
    "1.09": {"http": 400, "body": {"error": "cannot parse request body"}, "GET": 404,
             "dataCenterInfo": None},
    "1.10": {"http": 400, "body": "Mismatched appName, expecting <APP> but was <DIFF>"},
    "1.11": {"http": 204, "GET": 200},
    "1.12": {"http": 400, "body": "Missing dataCenterInfo", "GET": 404},
    "1.13": {"http": 400, "body": "Missing dataCenterInfo Name", "GET": 404},
    "1.14": {"http": 400, "body": "Missing instanceId"},
    "1.15": {"http": 400, "body": "Missing ip address", "GET": 404},
    "1.16": {"http": 400, "body": {"error": "cannot parse request body"}},
    "1.17": {"http": 400, "body": {"error": "cannot parse request body"}, "GET": 404},
    "1.18": {"http": 204},
    "1.19": _read(
        **FIRST_READ, **{"lastRenewal-now": "+0s"}, leaseInfo="renew=10 dur=40 evict=0",
        metadata={"k1": "v1", "k2": "v2"}, instanceId="i-xml", app="<APP>",
        port={"$": 8081, "@enabled": "true"}, securePort={"$": 8444, "@enabled": "true"},
        dataCenterInfo={"@class": DEFAULT, "name": "MyOwn"}, vipAddress="xml-vip", countryId=1,
        isCoordinatingDiscoveryServer="false", lastDirtyTimestamp_type="str",
        lastUpdatedTimestamp_type="str", keys=sorted([*KEYS, "vipAddress"]),
    ),
    "1.20": {"http": 415, "body": "<none>"},
    "1.21": {"http": 204, "GET": 200, "status": "UNKNOWN", "then heartbeat": 404, "body": "<none>"},
    "1.22": {"http": 204, "GET": 200, "status": "UNKNOWN", "then heartbeat": 404},
    "1.22b": {"http": 204, "status": "STARTING"},
    "1.23": {"http": 400, "body": {"error": "cannot parse request body"}, "GET": 404,
             "port": None, "securePort": None},
    "1.24": {"http": 204, "GET": 200, "port": {"$": 70000, "@enabled": "true"}, "body": "<none>"},
    "1.25": {"http": 204, "GET": 200, "metadata": EMPTY_MAP},
    "1.26": {"http": 204, "GET": 200, "leaseInfo": "renew=30 dur=90 evict=0"},
    "1.27": {"http": 200, "name": "<CACHE>", "instances": ["i-c1"]},
    "1.28": {"http": 200, "name": "<CACHE>", "instances": ["i-c1"], "GET /apps/{CACHE}/i-c2": 200},
    "1.29": {"http": 404, "body": "<empty>"},
    "1.30": {"GET unknown id": 404, "GET /instances/i-min": 200},
    "2.01": {"http": 204},
    "2.02": _read(lastDirtyTs="increased", registrationTs="increased", serviceUpTs="same",
                  lastUpdatedTs="increased", metadata=EMPTY_MAP, **{"lastRenewal-now": "+0s"}),
    "2.03": {"http": 204},
    "2.04": _read(lastDirtyTs="same", registrationTs="increased", serviceUpTs="same",
                  lastUpdatedTs="increased", metadata=EMPTY_MAP, **{"lastRenewal-now": "+0s"}),
    "2.05": _read(lastDirtyTs="increased", registrationTs="increased", serviceUpTs="same",
                  lastUpdatedTs="increased", metadata={"changed": "new-ldt"},
                  **{"lastRenewal-now": "+0s"}),
    "2.06": {"http": 204, "leaseInfo": "renew=15 dur=45 evict=0"},
    "3.00": {"http": 204, "lastDirty==sent": True, "lastRenewal-now": "+0s"},
    "3.01": {"http": 200},
    "3.02": _read(lastDirtyTs="same", registrationTs="same", serviceUpTs="same",
                  lastUpdatedTs="same", metadata={"zone": "a"}, **{"lastRenewal-now": "+90s"}),
    "3.03": {"http": 404},
    "3.04": {"http": 404},
    "3.05": {"http": 200},
    "3.06": {"http": 200},
    "3.07": {"http": 404},
    "3.08": _read(lastDirtyTs="same", registrationTs="same", serviceUpTs="same",
                  lastUpdatedTs="same", metadata={"zone": "a"}, **{"lastRenewal-now": "+90s"}),
    "3.09": {"http": 500, "body": "<none>"},
    "3.10": {"http": 200, "status after": "UP"},
    "3.11": {"http": 200, "status after": "UP", "overriddenStatus after": "UNKNOWN"},
    "4.00": _read(**FIRST_READ, metadata={"zone": "a"}, **{"lastRenewal-now": "+0s"}),
    "4.01": {"http": 200},
    "4.02": _read(status="OUT_OF_SERVICE", overriddenStatus="OUT_OF_SERVICE", actionType="MODIFIED",
                  lastDirtyTs="same", registrationTs="same", serviceUpTs="same",
                  lastUpdatedTs="increased", metadata={"zone": "a"}, **{"lastRenewal-now": "+90s"}),
    "4.03": {"instance XML http": 200, "instance XML status": "DOWN",
             "instance XML overriddenstatus": "OUT_OF_SERVICE", "app XML status": "OUT_OF_SERVICE"},
    "4.04": {"http": 200, "status": "OUT_OF_SERVICE", "overriddenStatus": "OUT_OF_SERVICE"},
    "4.05": {"http": 204},
    "4.06": _read(status="OUT_OF_SERVICE", overriddenStatus="OUT_OF_SERVICE",
                  lastDirtyTs="increased", registrationTs="increased", serviceUpTs="same",
                  lastUpdatedTs="increased", metadata={"zone": "a"}, **{"lastRenewal-now": "+0s"}),
    "4.07": {"http": 204, "status": "DOWN", "overriddenStatus": "OUT_OF_SERVICE"},
    "4.08": {"http": 204, "status": "OUT_OF_SERVICE", "overriddenStatus": "OUT_OF_SERVICE"},
    "4.09": {"http": 200},
    "4.10": _read(status="UNKNOWN", actionType="MODIFIED", lastDirtyTs="same",
                  registrationTs="same", serviceUpTs="same", lastUpdatedTs="increased",
                  metadata={"zone": "a"}, **{"lastRenewal-now": "+90s"}),
    "4.11": {"http": 404, "GET": 200},
    "4.12": {"http": 204, "status": "UP", "overriddenStatus": "UNKNOWN"},
    "4.13": {"PUT": 200, "DELETE": 200},
    "4.14": _read(actionType="MODIFIED", lastDirtyTs="same", registrationTs="same",
                  serviceUpTs="same", lastUpdatedTs="increased", metadata={"zone": "a"},
                  **{"lastRenewal-now": "+90s"}),
    "4.15": {"http": 200, "status": "UP", "overriddenStatus": "UNKNOWN", "actionType": "MODIFIED"},
    "4.16": {"http": 200, "status": "UP", "overriddenStatus": "UNKNOWN", "actionType": "MODIFIED"},
    "4.17": {"BOGUS": 500, "no value": 500, "out_of_service": 500, "status after": "UP"},
    "4.18": {"PUT": 404, "DELETE": 404},
    "4.19": {"http": 200, "lastDirty - before": 5000},
    "4.20": {"http": 204, "status": "OUT_OF_SERVICE", "overriddenStatus": "OUT_OF_SERVICE"},
    "4.21": {"POST OOS": 204, "status after 1st": "OUT_OF_SERVICE", "POST UP": 204,
             "status after re-POST UP": "OUT_OF_SERVICE", "overriddenStatus": "UNKNOWN"},
    "4.22": {"POST UP": 204, "POST OOS": 204, "status after": "UP", "overriddenStatus": "UNKNOWN"},
    "4.23": {"POST STARTING": 204, "status": "STARTING", "POST UP": 204, "status after UP": "UP"},
    "5.00": _read(**FIRST_READ, metadata={"zone": "a"}, **{"lastRenewal-now": "+0s"}),
    "5.01": {"http": 200},
    "5.02": _read(lastDirtyTs="same", registrationTs="increased", serviceUpTs="same",
                  lastUpdatedTs="increased", metadata={"zone": "a", "k": "v"},
                  **{"lastRenewal-now": "+0s"}),
    "5.03": {"http": 200, "metadata": {"k2": "x", "zone": "a", "k": "v2"}},
    "5.04": {"http": 200, "JSON metadata": {"k2": "x", "1bad<key": "x", "zone": "a", "k": "v2"},
             "XML": {"attrs": {}, "children": [["_.0031bad_.003ckey", "x"], ["k", "v2"],
                                               ["k2", "x"], ["zone", "a"]]},
             "body": "<none>"},
    "5.05": {"http": 200, "JSON metadata": {"k2": "x", "a:b": "x", "1bad<key": "x", "zone": "a",
                                            "k": "v2"}, "body": "<none>"},
    "5.06": {"http": 204, "body": "<none>"},
    "5.07": {"http": 200, "metadata": {"1bad<key x": "v<&>", "ok": "1"}},
    "5.08": {"http": 200, "metadata": {
        "attrs": {}, "children": [["_.0031bad_.003ckey_.0020x", "v<&>"], ["ok", "1"]]}},
    "5.09": {"http": 200, "xml": "ILL-FORMED (unbound prefix: line 57, column 6)",
             "instances": "<none>"},
    "5.10": {"http": 404},
    "5.11": {"PUT status": 200, "PUT metadata": 200, "status": "OUT_OF_SERVICE",
             "overriddenStatus": "OUT_OF_SERVICE", "actionType": "ADDED"},
    "6.00": {"POST": 204, "PUT status": 200},
    "6.01": {"http": 200},
    "6.02": {"GET": 404, "PUT heartbeat": 404},
    "6.03": {"http": 404},
    "6.04": {"unknown id": 404, "unknown app": 404},
    "6.05": {"http": 204, "status": "UP", "overriddenStatus": "UNKNOWN"},
    "6.06": {"http": 404, "body": "<empty>"},
    "8.01": {"http": 406, "Content-Encoding": None, "Content-Type": None, "body bytes": False},
    "8.02": {"http": 406, "Content-Encoding": None, "body bytes": False},
    # Recorded with Python's http.client, which sends "Accept-Encoding: identity" when told to send
    # none; the recorder logged the absent Content-Type of this one as "".
    "8.03": {"http": 406, "Content-Type": "", "Content-Encoding": None},
    "8.04": {"http": 406, "Content-Encoding": None},
    "8.05": {"http": 406, "Content-Encoding": None},
    "8.06": {"http": 406, "Content-Encoding": None},
    "8.07": {"http": 200, "Content-Encoding": "gzip"},
    "9.01": {"http": 204},
    "9.02": {"http": 200, "name": "<CASE>", "instances": ["i-case"]},
    "9.03": {"http": 200, "name": "<CASE>", "instances": ["i-case"]},
    "9.04": {"http": 200, "app": "<CASE>"},
    "9.05": {"PUT hb": 200, "PUT status": 200, "PUT metadata": 200, "status": "OUT_OF_SERVICE"},
    "9.06": {"http": 404},
    "9.07": {"DELETE": 200, "GET": 404},
}


@dataclass
class Replay:
    """The dev server under test, the run's app names, and what each step observed."""

    server: Any
    names: dict[str, str]
    observed: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_read: dict[str, dict[str, Any]] = field(default_factory=dict)

    def post(self, app: str, instance: Any, *, url_app: str | None = None, data: str | None = None,
             headers: dict[str, str] | None = None):
        """POST ``{"instance": instance}``, or ``data`` as it is."""
        body = json.dumps({"instance": instance}) if data is None else data
        headers = {"Content-Type": "application/json", **(headers or {})}
        return self.server.request("POST", f"/apps/{url_app or app}", data=body, headers=headers)

    def get(self, path: str, **headers: str):
        return self.server.request("GET", path, headers={"Accept": "application/json", **headers})

    def put(self, path: str, **params: Any):
        return self.server.request("PUT", path, params=params)

    def delete(self, path: str, **params: Any):
        return self.server.request("DELETE", path, params=params)

    def instance(self, app: str, instance_id: str) -> dict[str, Any]:
        """GET the instance in JSON and read it the way the recorder did."""
        response = self.get(f"/apps/{app}/{instance_id}")
        if response.status_code != 200:
            return {"http": response.status_code}
        doc = response.json()["instance"]
        now = time.time() * 1000
        previous = self.last_read.get(f"{app}/{instance_id}")
        self.last_read[f"{app}/{instance_id}"] = doc
        lease = doc["leaseInfo"]
        read = {
            "http": 200,
            "doc": doc,
            "status": doc["status"],
            "overriddenStatus": doc["overriddenStatus"],
            "actionType": doc["actionType"],
            "leaseInfo": f"renew={lease['renewalIntervalInSecs']} dur={lease['durationInSecs']} "
            f"evict={lease['evictionTimestamp']}",
            "lastRenewal-now": f"{round((lease['lastRenewalTimestamp'] - now) / 1000):+d}s",
            "metadata": doc["metadata"],
            "instanceId": doc.get("instanceId"),
            "app": doc["app"],
            "port": doc["port"],
            "securePort": doc["securePort"],
            "dataCenterInfo": doc["dataCenterInfo"],
            "vipAddress": doc.get("vipAddress", "<absent>"),
            "countryId": doc["countryId"],
            "isCoordinatingDiscoveryServer": doc["isCoordinatingDiscoveryServer"],
            "lastDirtyTimestamp_type": type(doc["lastDirtyTimestamp"]).__name__,
            "lastUpdatedTimestamp_type": type(doc["lastUpdatedTimestamp"]).__name__,
            "keys": sorted(doc),
        }
        for name, value in (
            ("lastDirtyTs", int(doc["lastDirtyTimestamp"])),
            ("registrationTs", lease["registrationTimestamp"]),
            ("serviceUpTs", lease["serviceUpTimestamp"]),
            ("lastUpdatedTs", int(doc["lastUpdatedTimestamp"])),
        ):
            read[name] = _compared(previous, name, value)
        return read

    def instance_xml(self, app: str, instance_id: str) -> dict[str, Any]:
        response = self.get(f"/apps/{app}/{instance_id}", Accept="application/xml")
        root = ET.fromstring(response.content)
        data_center = root.find("dataCenterInfo")
        return {
            "http": response.status_code,
            "content-type": response.headers["Content-Type"].split(";")[0],
            "status": root.findtext("status"),
            "overriddenstatus": root.findtext("overriddenstatus"),
            "metadata": _xml_map(root.find("metadata")),
            "port": (root.find("port").text, dict(root.find("port").attrib)),
            "securePort": (root.find("securePort").text, dict(root.find("securePort").attrib)),
            "dataCenterInfo": {
                "attrs": dict(data_center.attrib),
                "name": data_center.findtext("name"),
                "metadata": _xml_map(data_center.find("metadata"))["children"],
            },
        }

    def application(self, app: str) -> dict[str, Any]:
        response = self.get(f"/apps/{app}")
        if response.status_code != 200:
            return {"http": response.status_code, "body": _body(response)}
        doc = response.json()["application"]
        return {
            "http": 200,
            "name": doc["name"],
            "instances": sorted(i.get("instanceId") or i["hostName"] for i in doc["instance"]),
        }

    def record(self, step: str, **fields: Any) -> None:
        self.observed.setdefault(step, {}).update(fields)


def _compared(previous: dict[str, Any] | None, name: str, value: int) -> str:
    if previous is None:
        return "first read"
    before = {
        "lastDirtyTs": int(previous["lastDirtyTimestamp"]),
        "registrationTs": previous["leaseInfo"]["registrationTimestamp"],
        "serviceUpTs": previous["leaseInfo"]["serviceUpTimestamp"],
        "lastUpdatedTs": int(previous["lastUpdatedTimestamp"]),
    }[name]
    return "same" if value == before else ("increased" if value > before else "decreased")


def _xml_map(element: ET.Element | None) -> dict[str, Any]:
    if element is None:
        return {"attrs": {}, "children": []}
    return {
        "attrs": dict(element.attrib),
        "children": sorted([child.tag, child.text or ""] for child in element),
    }


def _body(response) -> Any:
    if not response.content:
        return "<none>"
    try:
        return response.json()
    except ValueError:
        return response.text


def _instance(instance_id: str | None, app: str, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "instanceId": instance_id,
        "hostName": f"{instance_id}.example.test",
        "app": app,
        "ipAddr": "10.0.0.1",
        "status": "UP",
        "port": {"$": 8080, "@enabled": "true"},
        "dataCenterInfo": {"@class": DEFAULT, "name": "MyOwn"},
        "metadata": {"zone": "a"},
        **fields,
    }
    return {key: value for key, value in doc.items() if value is not None}


def _amazon(**metadata: str) -> dict[str, Any]:
    return {"@class": AMAZON, "name": "Amazon", "metadata": metadata}


def _section_1(r: Replay) -> None:
    app, cache = r.names["<APP>"], r.names["<CACHE>"]
    minimal = _instance("i-min", app, metadata=None)
    r.record("1.01", http=r.post(app, minimal).status_code)
    r.record("1.02", **r.instance(app, "i-min"))
    r.record("1.03", **r.instance_xml(app, "i-min"))

    amazon = _instance("i-0amz1", app, securePort={"$": 8443, "@enabled": "false"},
                       vipAddress="diff-vip", dataCenterInfo=_amazon(**AMAZON_METADATA))
    r.record("1.04", http=r.post(app, amazon).status_code)
    r.record("1.05", **r.instance(app, "i-0amz1"))
    r.record("1.06", **r.instance_xml(app, "i-0amz1"))

    doc = _instance(None, app, hostName="amz2.example.test",
                    dataCenterInfo=_amazon(**{"instance-id": "i-0amz2"}))
    r.record("1.07", http=r.post(app, doc).status_code,
             **{"GET /i-0amz2": r.get(f"/apps/{app}/i-0amz2").status_code})
    doc = _instance(None, app, hostName="amz3.example.test",
                    dataCenterInfo=_amazon(**{"availability-zone": "us-east-1b"}))
    posted = r.post(app, doc).status_code
    read = r.instance(app, "amz3.example.test")
    r.record("1.08", http=posted, **{"GET by hostName": read["http"]},
             instanceId=read.get("instanceId"), dataCenterInfo=read.get("dataCenterInfo"))

    def refused(step: str, instance_id: str, doc: Any, **kwargs: Any) -> None:
        response = r.post(app, doc, **kwargs)
        read = r.instance(app, instance_id)
        r.record(step, http=response.status_code, body=_body(response), GET=read["http"],
                 dataCenterInfo=read.get("dataCenterInfo"), port=read.get("port"),
                 securePort=read.get("securePort"))

    refused("1.09", "i-noclass", _instance("i-noclass", app, dataCenterInfo={"name": "Amazon"}))
    response = r.post(app, _instance("i-diff", r.names["<DIFF>"]))
    r.record("1.10", http=response.status_code, body=_body(response))
    r.record("1.11", http=r.post(app, _instance("i-lower", app.lower())).status_code,
             GET=r.get(f"/apps/{app}/i-lower").status_code)
    refused("1.12", "i-nodc", _instance("i-nodc", app, dataCenterInfo=None))
    refused("1.13", "i-nodcname", _instance("i-nodcname", app, dataCenterInfo={"@class": DEFAULT}))
    refused("1.14", "i-noid", _instance(None, app, hostName=None))
    refused("1.15", "i-noip", _instance("i-noip", app, ipAddr=None))
    refused("1.16", "i-badjson", None, data='{"instance": {"app": ')
    refused("1.17", "i-nowrap", None, data=json.dumps(_instance("i-nowrap", app)))
    r.record("1.18", http=r.post(app, None, data=XML_INSTANCE.format(app=app),
                                 headers={"Content-Type": "application/xml"}).status_code)
    r.record("1.19", **r.instance(app, "i-xml"))
    response = r.post(app, None, data=json.dumps({"instance": _instance("i-text", app)}),
                      headers={"Content-Type": "text/plain"})
    r.record("1.20", http=response.status_code, body=_body(response))

    for step, instance_id, status in (("1.21", "i-foo", "FOO"), ("1.22", "i-lowup", "up")):
        response = r.post(app, _instance(instance_id, app, status=status))
        read = r.instance(app, instance_id)
        r.record(step, http=response.status_code, body=_body(response), GET=read["http"],
                 status=read["status"],
                 **{"then heartbeat": r.put(f"/apps/{app}/{instance_id}").status_code})
    xml = XML_INSTANCE.format(app=app).replace("i-xml", "i-xmlstart").replace(">UP<", ">starting<")
    response = r.post(app, None, data=xml, headers={"Content-Type": "application/xml"})
    r.record("1.22b", http=response.status_code, status=r.instance(app, "i-xmlstart")["status"])
    refused("1.23", "i-plainport", _instance("i-plainport", app, port=8080, securePort="8443"))
    response = r.post(app, _instance("i-bigport", app, port={"$": 70000, "@enabled": "true"}))
    read = r.instance(app, "i-bigport")
    r.record("1.24", http=response.status_code, body=_body(response), GET=read["http"],
             port=read["port"])
    response = r.post(app, _instance("i-emptymap", app, metadata=EMPTY_MAP))
    read = r.instance(app, "i-emptymap")
    r.record("1.25", http=response.status_code, GET=read["http"], metadata=read["metadata"])
    lease = {"renewalIntervalInSecs": -1, "durationInSecs": 0}
    response = r.post(app, _instance("i-zerolease", app, leaseInfo=lease))
    read = r.instance(app, "i-zerolease")
    r.record("1.26", http=response.status_code, GET=read["http"], leaseInfo=read["leaseInfo"])

    _not_near_a_cache_tick(30.0)  # 1.27 and 1.28 must fall between the same two ticks
    assert r.post(cache, _instance("i-c1", cache)).status_code == 204
    r.record("1.27", **r.application(cache))
    assert r.post(cache, _instance("i-c2", cache)).status_code == 204
    r.record("1.28", **r.application(cache),
             **{"GET /apps/{CACHE}/i-c2": r.get(f"/apps/{cache}/i-c2").status_code})
    r.record("1.29", **r.application(r.names["<UNKNOWN>"]))
    r.record("1.30", **{"GET unknown id": r.get(f"/apps/{app}/i-none").status_code,
                        "GET /instances/i-min": r.get("/instances/i-min").status_code})


XML_INSTANCE = """<instance>
  <instanceId>i-xml</instanceId>
  <hostName>xml.example.test</hostName>
  <app>{app}</app>
  <ipAddr>10.0.0.2</ipAddr>
  <status>UP</status>
  <port enabled="true">8081</port>
  <securePort enabled="true">8444</securePort>
  <dataCenterInfo class="com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo">
    <name>MyOwn</name>
  </dataCenterInfo>
  <leaseInfo>
    <renewalIntervalInSecs>10</renewalIntervalInSecs>
    <durationInSecs>40</durationInSecs>
  </leaseInfo>
  <metadata><k1>v1</k1><k2>v2</k2></metadata>
  <vipAddress>xml-vip</vipAddress>
</instance>"""


def _section_2(r: Replay) -> None:
    app = r.names["<APP>"]
    minimal = _instance("i-min", app, metadata=None)
    _tick()
    r.record("2.01", http=r.post(app, minimal).status_code)
    r.record("2.02", **r.instance(app, "i-min"))
    stored = int(r.last_read[f"{app}/i-min"]["lastDirtyTimestamp"])
    _tick()
    older = _instance("i-min", app, metadata={"changed": "old-ldt"},
                      lastDirtyTimestamp=stored - 60_000)
    r.record("2.03", http=r.post(app, older).status_code)
    r.record("2.04", **r.instance(app, "i-min"))
    _tick()
    newer = _instance("i-min", app, metadata={"changed": "new-ldt"},
                      lastDirtyTimestamp=stored + 1000)
    r.post(app, newer)
    r.record("2.05", **r.instance(app, "i-min"))
    lease = {"renewalIntervalInSecs": 15, "durationInSecs": 45}
    doc = _instance("i-min", app, metadata=None, leaseInfo=lease, lastDirtyTimestamp=stored + 2000)
    response = r.post(app, doc)  # newer than 2.05's timestamp, which lies a second ahead
    r.record("2.06", http=response.status_code, leaseInfo=r.instance(app, "i-min")["leaseInfo"])


def _section_3(r: Replay) -> None:
    app = r.names["<APP>"]
    path = f"/apps/{app}/i-hb"
    sent = int(time.time() * 1000)
    response = r.post(app, _instance("i-hb", app, lastDirtyTimestamp=sent))
    read = r.instance(app, "i-hb")
    r.record("3.00", http=response.status_code, **{
        "lastRenewal-now": read["lastRenewal-now"],
        "lastDirty==sent": read["doc"]["lastDirtyTimestamp"] == str(sent)})
    _tick()
    r.record("3.01", http=r.put(path).status_code)
    r.record("3.02", **r.instance(app, "i-hb"))
    r.record("3.03", http=r.put(f"/apps/{app}/i-none").status_code)
    r.record("3.04", http=r.put(f"/apps/{r.names['<UNKNOWN>']}/i-hb").status_code)
    r.record("3.05", http=r.put(path, status="UP", lastDirtyTimestamp=sent).status_code)
    r.record("3.06", http=r.put(path, status="UP", lastDirtyTimestamp=sent - 10_000).status_code)
    r.record("3.07", http=r.put(path, status="UP", lastDirtyTimestamp=sent + 10_000).status_code)
    r.record("3.08", **r.instance(app, "i-hb"))
    response = r.put(path, lastDirtyTimestamp="abc")
    r.record("3.09", http=response.status_code, body=_body(response))
    r.record("3.10", http=r.put(path, status="DOWN").status_code,
             **{"status after": r.instance(app, "i-hb")["status"]})
    response = r.put(path, overriddenstatus="OUT_OF_SERVICE", status="UP")
    read = r.instance(app, "i-hb")
    r.record("3.11", http=response.status_code, **{
        "status after": read["status"], "overriddenStatus after": read["overriddenStatus"]})


def _section_4(r: Replay) -> None:
    app = r.names["<APP>"]
    path = f"/apps/{app}/i-st"
    dirty = int(time.time() * 1000)

    def post(status: str, instance_id: str = "i-st", **fields: Any) -> int:
        nonlocal dirty
        dirty += 1000
        doc = _instance(instance_id, app, status=status, lastDirtyTimestamp=dirty, **fields)
        return r.post(app, doc).status_code

    post("UP")
    r.record("4.00", **r.instance(app, "i-st"))
    _tick()
    r.record("4.01", http=r.put(f"{path}/status", value="OUT_OF_SERVICE").status_code)
    r.record("4.02", **r.instance(app, "i-st"))
    xml = r.instance_xml(app, "i-st")
    listed = ET.fromstring(r.get(f"/apps/{app}", Accept="application/xml").content)
    [in_app] = [e for e in listed.iter("instance") if e.findtext("instanceId") == "i-st"]
    r.record("4.03", **{"instance XML http": xml["http"], "instance XML status": xml["status"],
                        "instance XML overriddenstatus": xml["overriddenstatus"],
                        "app XML status": in_app.findtext("status")})
    r.put(path)
    read = r.instance(app, "i-st")
    r.record("4.04", http=read["http"], status=read["status"],
             overriddenStatus=read["overriddenStatus"])
    _tick()
    r.record("4.05", http=post("UP"))
    r.record("4.06", **r.instance(app, "i-st"))
    for step, status in (("4.07", "DOWN"), ("4.08", "UP")):
        posted = post(status)
        read = r.instance(app, "i-st")
        r.record(step, http=posted, status=read["status"],
                 overriddenStatus=read["overriddenStatus"])
    _tick()
    r.record("4.09", http=r.delete(f"{path}/status").status_code)
    r.record("4.10", **r.instance(app, "i-st"))
    r.record("4.11", http=r.put(path).status_code, GET=r.get(path).status_code)
    posted = post("UP")
    read = r.instance(app, "i-st")
    r.record("4.12", http=posted, status=read["status"], overriddenStatus=read["overriddenStatus"])
    _tick()
    r.record("4.13", PUT=r.put(f"{path}/status", value="OUT_OF_SERVICE").status_code,
             DELETE=r.delete(f"{path}/status", value="UP").status_code)
    r.record("4.14", **r.instance(app, "i-st"))
    for step, change in (("4.15", r.delete), ("4.16", lambda p: r.put(p, value="UP"))):
        response = change(f"{path}/status")
        read = r.instance(app, "i-st")
        r.record(step, http=response.status_code, status=read["status"],
                 overriddenStatus=read["overriddenStatus"], actionType=read["actionType"])
    r.record("4.17", BOGUS=r.put(f"{path}/status", value="BOGUS").status_code,
             **{"no value": r.put(f"{path}/status").status_code,
                "out_of_service": r.put(f"{path}/status", value="out_of_service").status_code,
                "status after": r.instance(app, "i-st")["status"]})
    r.record("4.18", PUT=r.put(f"/apps/{app}/i-none/status", value="UP").status_code,
             DELETE=r.delete(f"/apps/{app}/i-none/status").status_code)
    before = int(r.instance(app, "i-st")["doc"]["lastDirtyTimestamp"])
    response = r.put(f"{path}/status", value="OUT_OF_SERVICE", lastDirtyTimestamp=before + 5000)
    after = int(r.instance(app, "i-st")["doc"]["lastDirtyTimestamp"])
    r.record("4.19", http=response.status_code, **{"lastDirty - before": after - before})

    posted = post("UP", "i-ovr", overriddenStatus="OUT_OF_SERVICE")
    read = r.instance(app, "i-ovr")
    r.record("4.20", http=posted, status=read["status"], overriddenStatus=read["overriddenStatus"])
    first = post("OUT_OF_SERVICE", "i-oos1")
    status_first = r.instance(app, "i-oos1")["status"]
    again = post("UP", "i-oos1")
    read = r.instance(app, "i-oos1")
    r.record("4.21", **{"POST OOS": first, "status after 1st": status_first, "POST UP": again,
                        "status after re-POST UP": read["status"],
                        "overriddenStatus": read["overriddenStatus"]})
    up, oos = post("UP", "i-self"), post("OUT_OF_SERVICE", "i-self")
    read = r.instance(app, "i-self")
    r.record("4.22", **{"POST UP": up, "POST OOS": oos, "status after": read["status"],
                        "overriddenStatus": read["overriddenStatus"]})
    starting = post("STARTING", "i-self")
    status_starting = r.instance(app, "i-self")["status"]
    up = post("UP", "i-self")
    r.record("4.23", **{"POST STARTING": starting, "status": status_starting, "POST UP": up,
                        "status after UP": r.instance(app, "i-self")["status"]})


def _section_5(r: Replay) -> None:
    app = r.names["<MD>"]
    path = f"/apps/{app}/i-md"
    r.post(app, _instance("i-md", app))
    r.record("5.00", **r.instance(app, "i-md"))
    _tick()
    r.record("5.01", http=r.put(f"{path}/metadata", k="v").status_code)
    r.record("5.02", **r.instance(app, "i-md"))
    response = r.server.request("PUT", f"{path}/metadata",
                                params=[("k", "v2"), ("k", "v3"), ("k2", "x")])
    r.record("5.03", http=response.status_code, metadata=r.instance(app, "i-md")["metadata"])
    response = r.put(f"{path}/metadata", **{"1bad<key": "x"})
    r.record("5.04", http=response.status_code, body=_body(response),
             **{"JSON metadata": r.instance(app, "i-md")["metadata"],
                "XML": r.instance_xml(app, "i-md")["metadata"]})
    response = r.put(f"{path}/metadata", **{"a:b": "x"})
    r.record("5.05", http=response.status_code, body=_body(response),
             **{"JSON metadata": r.instance(app, "i-md")["metadata"]})
    response = r.post(app, _instance("i-badmd", app, metadata={"1bad<key x": "v<&>", "ok": "1"}))
    r.record("5.06", http=response.status_code, body=_body(response))
    read = r.instance(app, "i-badmd")
    r.record("5.07", http=read["http"], metadata=read["metadata"])
    xml = r.instance_xml(app, "i-badmd")
    r.record("5.08", http=xml["http"], metadata=xml["metadata"])
    response = r.get(f"/apps/{app}", Accept="application/xml")
    try:
        ET.fromstring(response.content)
        verdict = "well-formed"
    except ET.ParseError as exc:
        verdict = f"ILL-FORMED ({exc})"
    r.record("5.09", http=response.status_code, xml=verdict, instances="<none>")
    r.record("5.10", http=r.put(f"/apps/{app}/i-none/metadata", k="v").status_code)
    status = r.put(f"{path}/status", value="OUT_OF_SERVICE").status_code
    metadata = r.put(f"{path}/metadata", k3="z").status_code
    read = r.instance(app, "i-md")
    r.record("5.11", **{"PUT status": status, "PUT metadata": metadata, "status": read["status"],
                        "overriddenStatus": read["overriddenStatus"],
                        "actionType": read["actionType"]})


def _section_6(r: Replay) -> None:
    app = r.names["<DL>"]
    path = f"/apps/{app}/i-del"
    r.record("6.00", POST=r.post(app, _instance("i-del", app)).status_code,
             **{"PUT status": r.put(f"{path}/status", value="OUT_OF_SERVICE").status_code})
    r.record("6.01", http=r.delete(path).status_code)
    r.record("6.02", GET=r.get(path).status_code, **{"PUT heartbeat": r.put(path).status_code})
    r.record("6.03", http=r.delete(path).status_code)
    r.record("6.04", **{"unknown id": r.delete(f"/apps/{app}/i-none").status_code,
                        "unknown app": r.delete(f"/apps/{r.names['<UNKNOWN>']}/i-del").status_code})
    posted = r.post(app, _instance("i-del", app)).status_code
    read = r.instance(app, "i-del")
    r.record("6.05", http=posted, status=read["status"], overriddenStatus=read["overriddenStatus"])
    assert r.delete(path).status_code == 200
    r.record("6.06", **r.application(app))


def _section_8(r: Replay) -> None:
    app = r.names["<APP>"]

    def read(step: str, path: str, **headers: str | None) -> None:
        response = r.server.request("GET", path, headers=headers)
        r.record(step, http=response.status_code,
                 **{"Content-Encoding": response.headers.get("Content-Encoding"),
                    "Content-Type": response.headers.get("Content-Type"),
                    "body bytes": bool(response.content)})

    json_identity = {"Accept": "application/json", "Accept-Encoding": "identity"}
    read("8.01", "/apps", **json_identity)
    read("8.02", "/apps", Accept="application/xml", **{"Accept-Encoding": "identity"})
    read("8.03", "/apps", Accept=None, **{"Accept-Encoding": None})
    read("8.04", f"/apps/{app}", **json_identity)
    read("8.05", f"/apps/{app}/i-hb", **json_identity)
    read("8.06", "/apps/delta", **json_identity)
    read("8.07", "/apps", **{"Accept-Encoding": "gzip, deflate"})


def _section_9(r: Replay) -> None:
    app = r.names["<CASE>"]
    lower = app.lower()
    r.record("9.01", http=r.post(app, _instance("i-case", lower), url_app=lower).status_code)
    r.record("9.02", **r.application(app))
    r.record("9.03", **r.application(lower))
    r.record("9.04", http=r.get(f"/apps/{lower}/i-case").status_code,
             app=r.get(f"/apps/{lower}/i-case").json()["instance"]["app"])
    hb = r.put(f"/apps/{lower}/i-case").status_code
    status = r.put(f"/apps/{lower}/i-case/status", value="OUT_OF_SERVICE").status_code
    metadata = r.put(f"/apps/{lower}/i-case/metadata", k="v").status_code
    r.record("9.05", **{"PUT hb": hb, "PUT status": status, "PUT metadata": metadata,
                        "status": r.instance(app, "i-case")["status"]})
    r.record("9.06", http=r.get(f"/apps/{app}/I-CASE").status_code)
    r.record("9.07", DELETE=r.delete(f"/apps/{lower}/i-case").status_code,
             GET=r.get(f"/apps/{app}/i-case").status_code)


def _tick() -> None:
    """Let the clock move, so "increased" is possible wherever the real server saw it."""
    time.sleep(0.01)


def _not_near_a_cache_tick(interval: float) -> None:
    while interval - time.time() % interval < 3:
        time.sleep(0.1)


@pytest.fixture(scope="module")
def replay(module_launch: Callable[..., Any]) -> Replay:
    server = module_launch()  # all defaults: Netflix's timings and rules
    run = uuid.uuid4().hex[:8].upper()
    names = {name: f"{name.strip('<>')}-{run}" for name in
             ("<APP>", "<CACHE>", "<MD>", "<DL>", "<CASE>", "<UNKNOWN>", "<DIFF>")}
    r = Replay(server, names)
    for section in (_section_1, _section_2, _section_3, _section_4, _section_5, _section_6,
                    _section_8, _section_9):
        section(r)
    return r


def _named(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for placeholder, name in names.items():
            value = value.replace(placeholder, name)
    return value


def _comparable(name: str, value: Any) -> Any:
    if name == "xml" and isinstance(value, str):
        return value.split(":")[0]  # line and column follow Netflix's pretty-printing
    if name == "body" and value in ("<empty>", "<none>"):
        return "<none>"  # the recorder's two words for an empty body
    if name == "Content-Type" and value == "":
        return None  # the recorder logged one absent header as ""
    return value


@pytest.mark.parametrize("step", list(RECORDED))
def test_step_answers_as_netflix_did(replay: Replay, step: str) -> None:
    observed = replay.observed.get(step, {})
    differences = {
        name: (expected, observed.get(name, "<not observed>"))
        for name, expected in RECORDED[step].items()
        if _comparable(name, _named(expected, replay.names))
        != _comparable(name, observed.get(name, "<not observed>"))
    }
    assert not differences, f"{step}: field: (Netflix, dev server): {differences}"


# --- Section 7: leases, eviction and the cache, on a scaled clock ---------------------------------


@dataclass(frozen=True)
class LeaseTimings:
    """One server's timings in seconds: lease duration, eviction interval, cache refresh, and the
    tolerance: the resolution of the observations (the recorder polled every second, the replay
    polls every 50 ms) plus, for the replay, scheduling slack on a loaded machine."""

    duration: float
    eviction: float
    cache: float
    tolerance: float


NETFLIX_TIMINGS = LeaseTimings(duration=5, eviction=60, cache=30, tolerance=1.0)
REPLAY_TIMINGS = LeaseTimings(duration=2, eviction=1.0, cache=0.5, tolerance=0.6)

# Recorded: seconds from registration (7.1, 7.2) or from the phase start (7.3).
RECORDED_LEASES = {
    "7.1": {"heartbeat at": None, "instance 404 from": 5, "absent from app from": 53},
    "7.2": {"heartbeat at": 2.0, "lastRenewalTs - hb time": 5, "instance 404 from": 13,
            "absent from app from": 53},
    "7.3": {"2 listed": 0, "1 listed": 55, "0 listed": 115},
}


def _lease_relations(step: str, seen: dict[str, Any], t: LeaseTimings) -> list[str]:
    """What must hold between a step's observations and its server's timings; [] when all do."""
    broken = []

    def within(name: str, low: float, high: float) -> None:
        if not low - t.tolerance <= seen[name] <= high + t.tolerance:
            broken.append(f"{name}={seen[name]:.2f}s not in [{low:.2f}, {high:.2f}]±{t.tolerance}")

    if step in ("7.1", "7.2"):
        renewed = seen["heartbeat at"]
        # Never renewed: the lease ends one duration after registration; once renewed, two
        # durations after the renewal (Netflix's Lease.renew() adds the duration twice).
        expiry = t.duration if renewed is None else renewed + 2 * t.duration
        within("instance 404 from", expiry, expiry)
        # Listed until an eviction run (at most one interval after expiry) and the cache tick after.
        within("absent from app from", expiry, expiry + t.eviction + t.cache)
        if renewed is not None:
            within("lastRenewalTs - hb time", t.duration, t.duration)
    else:  # 7.3: each run may evict one of two expired instances (2 - floor(0.85 x 2))
        within("1 listed", t.duration, t.duration + t.eviction + t.cache)
        gap = seen["0 listed"] - seen["1 listed"]
        if not t.eviction - t.cache - t.tolerance <= gap <= t.eviction + t.cache + t.tolerance:
            broken.append(f"second eviction {gap:.2f}s after the first, not one run later")
    return broken


def test_recording_follows_the_lease_relations() -> None:
    """The relations below are Netflix's: the recording itself must satisfy them."""
    for step, seen in RECORDED_LEASES.items():
        assert _lease_relations(step, seen, NETFLIX_TIMINGS) == [], step


@pytest.fixture(scope="module")
def lease_timeline(module_launch: Callable[..., Any]) -> dict[str, dict[str, Any]]:
    """Replays 7.1 and 7.2 on one server (with 8 bystanders with long leases, so one eviction run
    may remove both) and 7.3 on a server holding nothing else, both with REPLAY_TIMINGS."""
    t = REPLAY_TIMINGS
    flags = ("--eviction-interval", str(t.eviction), "--response-cache-seconds", str(t.cache))
    return _replay_leases(module_launch(*flags), module_launch(*flags), t)


def _replay_leases(shared, alone, t: LeaseTimings) -> dict[str, dict[str, Any]]:
    run = uuid.uuid4().hex[:8].upper()
    lease = {"renewalIntervalInSecs": 1, "durationInSecs": int(t.duration)}
    for number in range(8):
        bystander = _instance(f"i-by{number}", f"BY-{run}")
        assert shared.register(f"BY-{run}", {"instance": bystander}).status_code == 204
    apps = {"7.1": f"L1-{run}", "7.2": f"L2-{run}", "7.3": f"L3-{run}"}
    start = time.monotonic()
    for step in ("7.1", "7.2"):
        doc = _instance(f"i-{step}", apps[step], leaseInfo=lease)
        assert shared.register(apps[step], {"instance": doc}).status_code == 204
    for number in (1, 2):
        doc = _instance(f"i-7.3-{number}", apps["7.3"], leaseInfo=lease)
        assert alone.register(apps["7.3"], {"instance": doc}).status_code == 204

    seen: dict[str, dict[str, Any]] = {
        "7.1": {"heartbeat at": None},
        "7.2": {"heartbeat at": None},
        "7.3": {"2 listed": 0.0},
    }
    deadline = start + t.duration * 3 + t.eviction * 3 + t.cache * 2 + 10
    while any(set(RECORDED_LEASES[step]) - set(seen[step]) for step in seen):
        now = time.monotonic() - start
        assert time.monotonic() < deadline, f"lease timeline incomplete: {seen}"
        if seen["7.2"]["heartbeat at"] is None and now >= 0.4 * t.duration:  # recorded: 2 s of 5
            sent = time.time()
            assert shared.request("PUT", f"/apps/{apps['7.2']}/i-7.2").status_code == 200
            seen["7.2"]["heartbeat at"] = time.monotonic() - start
            renewed = shared.instance(apps["7.2"], "i-7.2")["leaseInfo"]["lastRenewalTimestamp"]
            seen["7.2"]["lastRenewalTs - hb time"] = renewed / 1000 - sent
        for step in ("7.1", "7.2"):
            if "instance 404 from" not in seen[step]:
                if shared.request("GET", f"/apps/{apps[step]}/i-{step}").status_code == 404:
                    seen[step]["instance 404 from"] = now
            if "absent from app from" not in seen[step]:
                if shared.request("GET", f"/apps/{apps[step]}").status_code == 404:
                    seen[step]["absent from app from"] = now
        response = alone.request("GET", f"/apps/{apps['7.3']}", headers=JSON)
        listed = [] if response.status_code == 404 else response.json()["application"]["instance"]
        count = len(listed)
        if count < 2:
            seen["7.3"].setdefault("1 listed", now)
        if count == 0:
            seen["7.3"].setdefault("0 listed", now)
        time.sleep(0.05)
    return seen


@pytest.mark.parametrize("step", ["7.1", "7.2", "7.3"])
def test_lease_step_follows_netflix_timeline(lease_timeline, step: str) -> None:
    assert _lease_relations(step, lease_timeline[step], REPLAY_TIMINGS) == [], lease_timeline[step]
