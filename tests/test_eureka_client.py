"""The Eureka client over real HTTP: the dev Eureka, and stub servers for the answers that go wrong."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from shared.eureka import EurekaBadAnswer, EurekaClient, EurekaRejected, EurekaUnavailable
from tests.stub_http import Answer, StubServer
from tests.support import DevEureka, free_port, self_signed_certificate

INSTANCE: dict[str, Any] = {
    "instanceId": "10.1.2.3_18080", "hostName": "10.1.2.3", "app": "WEB", "ipAddr": "10.1.2.3",
    "vipAddress": "10.1.2.3", "status": "UP", "port": {"$": 18080, "@enabled": "true"},
    "securePort": {"$": 443, "@enabled": "false"},
    "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
    "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90}, "metadata": {"is-container": "true"},
}
CLOSED = f"http://127.0.0.1:{free_port()}/eureka"


def test_register_heartbeat_status_deregister(eureka: DevEureka) -> None:
    client = EurekaClient([eureka.url])
    client.register(INSTANCE)
    assert client.instance("WEB", "10.1.2.3_18080")["ipAddr"] == "10.1.2.3"
    assert [app["name"] for app in client.applications()] == ["WEB"]
    assert client.heartbeat("WEB", "10.1.2.3_18080") is True
    assert client.set_status("WEB", "10.1.2.3_18080", "OUT_OF_SERVICE") is True
    assert eureka.instance("WEB", "10.1.2.3_18080")["status"] == "OUT_OF_SERVICE"
    assert client.deregister("WEB", "10.1.2.3_18080") is True
    assert client.deregister("WEB", "10.1.2.3_18080") is False
    assert client.heartbeat("WEB", "10.1.2.3_18080") is False
    assert client.set_status("WEB", "10.1.2.3_18080", "UP") is False
    assert client.instance("WEB", "10.1.2.3_18080") is None


def test_basic_auth_from_the_url(tmp_path: Path) -> None:
    server = DevEureka(tmp_path, basic_auth=("registrar", "s3cret")).start()
    try:
        EurekaClient([server.url]).register(INSTANCE)
        assert server.instance("WEB", "10.1.2.3_18080") is not None
        with pytest.raises(EurekaRejected) as rejected:
            EurekaClient([server.url.replace("s3cret", "wrong")]).register(INSTANCE)
        assert rejected.value.status == 401
        assert "wrong" not in str(rejected.value)
    finally:
        server.stop()


def test_https_with_a_private_certificate_authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets this variable override a session's own verify setting; the client must not.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    cert, key = self_signed_certificate(tmp_path)
    server = DevEureka(tmp_path, tls=(cert, key)).start()
    try:
        EurekaClient([server.url], ca_bundle=str(cert)).register(INSTANCE)
        assert server.instance("WEB", "10.1.2.3_18080") is not None
        with pytest.raises(EurekaUnavailable, match="SSLError"):
            EurekaClient([server.url], attempts=1).heartbeat("WEB", "10.1.2.3_18080")
    finally:
        server.stop()


def test_fails_over_to_the_next_server_and_sticks_to_it(eureka: DevEureka) -> None:
    with StubServer(Answer(503, "overloaded")) as broken:
        client = EurekaClient([CLOSED, broken.url, eureka.url])
        client.register(INSTANCE)
        assert eureka.instance("WEB", "10.1.2.3_18080") is not None
        assert len(broken.requests) == 1
        assert client.heartbeat("WEB", "10.1.2.3_18080") is True
        assert len(broken.requests) == 1  # the server that answered is asked first from now on


def test_a_server_that_does_not_answer_in_time_is_skipped(eureka: DevEureka) -> None:
    with StubServer(Answer(200, delay=3)) as silent:
        client = EurekaClient([silent.url, eureka.url], timeout=0.5)
        started = time.monotonic()
        client.register(INSTANCE)
        assert time.monotonic() - started < 2.5
        assert eureka.instance("WEB", "10.1.2.3_18080") is not None


def test_every_server_failing_is_retried_a_few_rounds_then_reported() -> None:
    with StubServer(Answer(500, "boom")) as broken:
        client = EurekaClient([broken.url, CLOSED], attempts=3, backoff=0.05)
        with pytest.raises(EurekaUnavailable) as unavailable:
            client.register(INSTANCE)
        assert len(broken.requests) == 3
        assert "HTTP 500" in str(unavailable.value) and "ConnectionError" in str(unavailable.value)


def test_a_rejected_request_is_not_retried() -> None:
    with StubServer(Answer(400, "app name mismatch")) as picky:
        with pytest.raises(EurekaRejected, match="HTTP 400.*app name mismatch") as rejected:
            EurekaClient([picky.url, CLOSED]).register(INSTANCE)
        assert rejected.value.status == 400
        assert picky.requests == ["POST /eureka/apps/WEB"]


@pytest.mark.parametrize("body", ["<html>maintenance</html>", '{"unexpected": true}', "[1, 2]"])
def test_an_answer_that_is_not_eureka_json_is_named(body: str) -> None:
    with StubServer(Answer(200, body, content_type="text/html")) as odd:
        client = EurekaClient([odd.url])
        with pytest.raises(EurekaBadAnswer, match="/eureka/apps/WEB/x"):
            client.instance("WEB", "x")
        with pytest.raises(EurekaBadAnswer, match="/eureka/apps"):
            client.applications()
