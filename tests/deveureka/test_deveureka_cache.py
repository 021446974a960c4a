"""The response cache and the encodings over HTTP: what a listing shows after a change and when,
gzip for every read under /apps, 406 for a read that refuses gzip."""

from __future__ import annotations

import gzip
import http.client
import time
from urllib.parse import urlsplit

import pytest

JSON = {"Accept": "application/json"}
INTERVAL = 2.0  # seconds between cache ticks: room for a few requests between two of them


def _start_of_tick_window() -> None:
    """Wait until a tick has just passed, so the next one is almost a whole interval away."""
    while not 0.05 < time.time() % INTERVAL < 0.3:
        time.sleep(0.02)


def _after_next_tick(started: float) -> None:
    next_tick = (started // INTERVAL + 1) * INTERVAL
    time.sleep(max(0.0, next_tick - time.time()) + 0.1)


def _ids(server, app: str) -> list[str]:
    response = server.request("GET", f"/apps/{app}", headers=JSON)
    if response.status_code == 404:
        return []
    return [instance["instanceId"] for instance in response.json()["application"]["instance"]]


def test_listing_shows_the_registry_of_its_first_read_until_the_next_tick(launch, app_name):
    server = launch("--response-cache-seconds", str(INTERVAL))
    other = f"{app_name}-OTHER"
    _start_of_tick_window()
    window = time.time()
    assert server.register(app_name, server.doc(app_name, instance_port=1)).status_code == 204
    assert _ids(server, app_name) == ["127.0.0.1_1"]  # a key read for the first time is fresh
    assert _ids(server, other) == []  # a 404 is cached too

    assert server.register(app_name, server.doc(app_name, instance_port=2)).status_code == 204
    assert server.register(other, server.doc(other)).status_code == 204

    assert server.instance(app_name, "127.0.0.1_2")["instanceId"] == "127.0.0.1_2"  # never cached
    assert _ids(server, app_name) == ["127.0.0.1_1"]
    assert _ids(server, other) == []
    assert time.time() // INTERVAL == window // INTERVAL, "too slow to stay within one tick"

    _after_next_tick(window)
    assert _ids(server, app_name) == ["127.0.0.1_1", "127.0.0.1_2"]
    assert _ids(server, other) == ["127.0.0.1_18080"]


def test_json_and_xml_listings_are_cached_apart(launch, app_name):
    server = launch("--response-cache-seconds", str(INTERVAL))
    _start_of_tick_window()
    window = time.time()
    assert app_name not in server.request("GET", "/apps", headers=JSON).text  # JSON key read

    assert server.register(app_name, server.doc(app_name)).status_code == 204

    assert app_name not in server.request("GET", "/apps", headers=JSON).text
    # The XML key was first read when the server started (its readiness check): stale as well.
    assert app_name not in server.request("GET", "/apps").text
    assert time.time() // INTERVAL == window // INTERVAL, "too slow to stay within one tick"

    _after_next_tick(window)
    assert app_name in server.request("GET", "/apps", headers=JSON).text
    assert app_name in server.request("GET", "/apps").text


def test_without_the_cache_listings_are_fresh(launch, app_name):
    server = launch("--response-cache-seconds", "0")
    assert _ids(server, app_name) == []
    assert server.register(app_name, server.doc(app_name)).status_code == 204

    assert _ids(server, app_name) == ["127.0.0.1_18080"]


@pytest.fixture
def registered(dev_eureka, app_name) -> str:
    assert dev_eureka.register(app_name, dev_eureka.doc(app_name)).status_code == 204
    return app_name


@pytest.mark.parametrize("encoding", ["identity", "deflate", ""])
def test_reads_under_apps_that_refuse_gzip_are_406(dev_eureka, registered, encoding):
    instance = f"/apps/{registered}/127.0.0.1_18080"
    for path in ("/apps", "/apps/delta", f"/apps/{registered}", instance):
        response = dev_eureka.request("GET", path, headers={"Accept-Encoding": encoding, **JSON})
        assert response.status_code == 406, path
        assert response.content == b""
        assert "Content-Type" not in response.headers


def test_reads_are_gzipped(dev_eureka, registered):
    for path in ("/apps", f"/apps/{registered}", f"/apps/{registered}/127.0.0.1_18080"):
        response = dev_eureka.request("GET", path, headers={"Accept-Encoding": "gzip", **JSON})
        assert response.status_code == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.json()  # requests decompressed it


def test_read_without_accept_encoding_counts_as_accepting_gzip(dev_eureka, registered):
    # requests and urllib always send the header (http.client sends "identity" when told to
    # send none): only a raw connection can leave it out, as a Java client does.
    url = urlsplit(dev_eureka.url(f"/apps/{registered}"))
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    try:
        connection.putrequest("GET", url.path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()

    assert response.status == 200
    assert response.getheader("Content-Encoding") == "gzip"
    assert registered.encode() in gzip.decompress(body)


def test_gzip_is_only_enforced_on_reads_under_apps(dev_eureka, registered):
    identity = {"Accept-Encoding": "identity"}
    found = dev_eureka.request("GET", "/instances/127.0.0.1_18080", headers={**identity, **JSON})
    assert found.status_code == 200
    assert "Content-Encoding" not in found.headers
    heartbeat = dev_eureka.request("PUT", f"/apps/{registered}/127.0.0.1_18080", headers=identity)
    assert heartbeat.status_code == 200
