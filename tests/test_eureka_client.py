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
        # Credentials may be rotated while we run: a 401 is worth retrying later, not final.
        with pytest.raises(EurekaUnavailable, match="HTTP 401") as refused:
            EurekaClient([server.url.replace("s3cret", "wrong")], attempts=2, backoff=0.01).register(INSTANCE)
        assert "wrong" not in str(refused.value)
    finally:
        server.stop()


def test_percent_encoded_credentials_are_decoded(tmp_path: Path) -> None:
    server = DevEureka(tmp_path, basic_auth=("reg@corp", "p@ss:w/rd")).start()
    try:
        url = server.address.replace("://", "://reg%40corp:p%40ss%3Aw%2Frd@")
        EurekaClient([url]).register(INSTANCE)
        assert server.instance("WEB", "10.1.2.3_18080") is not None
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


@pytest.mark.parametrize("status", [400, 413, 415, 422])
def test_a_request_refused_as_malformed_is_not_retried(status: int) -> None:
    with StubServer(Answer(status, "app name mismatch")) as picky:
        with pytest.raises(EurekaRejected, match=f"HTTP {status}.*app name mismatch") as rejected:
            EurekaClient([picky.url, CLOSED]).register(INSTANCE)
        assert rejected.value.status == status
        assert picky.requests == ["POST /eureka/apps/WEB"]


@pytest.mark.parametrize("status", [401, 403, 404, 405, 408, 409, 429, 500, 502, 503])
def test_other_refusals_go_to_the_next_server_and_are_retried(eureka: DevEureka, status: int) -> None:
    with StubServer(Answer(status, "not now")) as refusing:
        EurekaClient([refusing.url, eureka.url]).register(INSTANCE)
        assert eureka.instance("WEB", "10.1.2.3_18080") is not None
    with StubServer(Answer(status, "not now")) as refusing:
        with pytest.raises(EurekaUnavailable, match=f"HTTP {status}"):
            EurekaClient([refusing.url], attempts=3, backoff=0.01).register(INSTANCE)
        assert len(refusing.requests) == 3


def test_registration_sets_the_status_an_old_override_would_hide(eureka: DevEureka) -> None:
    client = EurekaClient([eureka.url])
    client.register(INSTANCE)
    client.set_status("WEB", "10.1.2.3_18080", "DOWN")  # as while an earlier container was being stopped
    client.register(INSTANCE)
    assert eureka.instance("WEB", "10.1.2.3_18080")["status"] == "UP"


@pytest.mark.parametrize("body", ["<html>maintenance</html>", '{"unexpected": true}', "[1, 2]"])
def test_an_answer_that_is_not_eureka_json_is_named(body: str) -> None:
    with StubServer(Answer(200, body, content_type="text/html")) as odd:
        client = EurekaClient([odd.url])
        with pytest.raises(EurekaBadAnswer, match="/eureka/apps/WEB/x"):
            client.instance("WEB", "x")
        with pytest.raises(EurekaBadAnswer, match="/eureka/apps"):
            client.applications()
