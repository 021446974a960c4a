"""A standard client, py_eureka_client, against the dev server over real HTTP.

It fetches with no Accept header and parses XML, and registers with JSON, so this proves the
XML output and the JSON input are what a third-party client expects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from py_eureka_client.eureka_client import EurekaClient

T = TypeVar("T")

pytestmark = pytest.mark.timeout(60)


def _run(step: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(step, timeout=15)

    return asyncio.run(bounded())


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def test_py_eureka_client_discovers_what_the_product_registers(dev_eureka, app_name):
    doc = dev_eureka.doc(app_name)  # the product's registration body, sent as plain JSON
    doc["instance"]["metadata"]["hudl.routes"] = '/a?x=1&y=<2>"'
    assert dev_eureka.register(app_name, doc).status_code == 204

    client = EurekaClient(
        eureka_server=dev_eureka.base_url, should_register=False, should_discover=True
    )
    _run(client.start())
    try:
        applications = client.applications
        assert applications is not None, "py_eureka_client could not fetch the registry"
        instance = applications.get_application(app_name).get_instance("127.0.0.1_18080")
        assert instance is not None
        assert instance.ipAddr == "127.0.0.1"
        assert instance.hostName == "127.0.0.1"
        assert (instance.port.port, instance.port.enabled) == (18080, True)
        assert (instance.securePort.port, instance.securePort.enabled) == (443, False)
        assert instance.status == "UP"
        assert instance.dataCenterInfo.name == "MyOwn"
        assert instance.leaseInfo.durationInSecs == 90
        assert instance.metadata == {"is-container": "true", "hudl.routes": '/a?x=1&y=<2>"'}
    finally:
        _run(client.stop())


def test_py_eureka_client_registers_itself(dev_eureka, app_name):
    client = EurekaClient(
        eureka_server=dev_eureka.base_url,
        app_name=app_name.lower(),
        instance_id="py-client-1",
        instance_host="127.0.0.1",
        instance_ip="127.0.0.1",
        instance_port=19090,
        metadata={"team": "a&b"},
        should_register=True,
        should_discover=False,
    )
    _run(client.start())
    try:
        applications = dev_eureka.get_json("/apps")["applications"]["application"]
        [mine] = [a for a in applications if a["name"] == app_name]
        [instance] = mine["instance"]
        assert instance["instanceId"] == "py-client-1"
        assert instance["ipAddr"] == "127.0.0.1"
        assert instance["port"] == {"$": 19090, "@enabled": "true"}
        assert instance["status"] == "UP"
        assert instance["metadata"]["team"] == "a&b"
        assert instance["metadata"]["management.port"] == "19090"

        _run(client.status_update("OUT_OF_SERVICE"))
        assert dev_eureka.instance(app_name, "py-client-1")["status"] == "OUT_OF_SERVICE"
        _run(client.send_heartbeat())  # 200 is silent; a 404 would make it re-register
        renewed = dev_eureka.instance(app_name, "py-client-1")
        assert (
            renewed["leaseInfo"]["registrationTimestamp"]
            == instance["leaseInfo"]["registrationTimestamp"]
        )
    finally:
        _run(client.stop())
    # stop() registers DOWN, then cancels.
    assert dev_eureka.request("GET", f"/apps/{app_name}").status_code == 404
