"""Leases over HTTP: when an instance stops being readable, when it leaves the listings, and what a
heartbeat does to an expired one. Each check compares the server's own timestamps with the wall
clock around a request, so a slow machine can delay a step but never fail it."""

from __future__ import annotations

import time

import pytest

ID = "127.0.0.1_18080"
DURATION = 2  # seconds: the shortest lease that still leaves room for a heartbeat in between


def _now_ms() -> int:
    return int(time.time() * 1000)


def _register(server, app: str, duration: int = DURATION) -> str:
    lease = {"renewalIntervalInSecs": 1, "durationInSecs": duration}
    assert server.register(app, server.doc(app, leaseInfo=lease)).status_code == 204
    return f"/apps/{app}/{ID}"


def _heartbeat(server, path: str) -> tuple[int, int]:
    """Send one heartbeat; the wall-clock window (ms) in which the server handled it."""
    sent = _now_ms()
    assert server.request("PUT", path).status_code == 200
    return sent, _now_ms()


def _readable_until(server, path: str, expiry_ms: int) -> None:
    """Poll the instance until it answers 404: it must answer 200 to every request sent before
    ``expiry_ms`` (server clock) and 404 to every request sent after it."""
    deadline = time.monotonic() + (expiry_ms - _now_ms()) / 1000 + 5
    while True:
        sent = _now_ms()
        status = server.request("GET", path).status_code
        received = _now_ms()
        if status == 404:
            assert received >= expiry_ms, f"404 {expiry_ms - received} ms before the lease expired"
            return
        assert status == 200
        assert sent <= expiry_ms + 5, f"readable {sent - expiry_ms} ms after the lease expired"
        assert time.monotonic() < deadline, "never expired"
        time.sleep(0.05)


@pytest.fixture
def no_eviction(launch):
    """A server that runs no eviction while a test lasts, so expiry alone can be watched."""
    return launch("--eviction-interval", "600", "--response-cache-seconds", "0")


def test_never_renewed_lease_expires_its_duration_after_registration(no_eviction, app_name):
    path = _register(no_eviction, app_name)
    registered = no_eviction.instance(app_name, ID)["leaseInfo"]
    assert registered["lastRenewalTimestamp"] == registered["registrationTimestamp"]

    _readable_until(no_eviction, path, registered["registrationTimestamp"] + DURATION * 1000)

    # Only single-instance reads stop: the listings show it until an eviction run removes it.
    assert no_eviction.request("GET", f"/instances/{ID}").status_code == 404
    listed = no_eviction.get_json(f"/apps/{app_name}")["application"]["instance"]
    assert [instance["instanceId"] for instance in listed] == [ID]
    # Status and metadata changes find no instance; a heartbeat still does, and revives it.
    assert no_eviction.request("PUT", f"{path}/status", params={"value": "DOWN"}).status_code == 404
    assert no_eviction.request("PUT", f"{path}/metadata", params={"k": "v"}).status_code == 404
    assert no_eviction.request("PUT", path).status_code == 200
    assert no_eviction.request("GET", path).status_code == 200


def test_renewed_lease_lasts_twice_its_duration_as_netflix_renews_it(no_eviction, app_name):
    path = _register(no_eviction, app_name)
    time.sleep(0.2)
    sent, received = _heartbeat(no_eviction, path)

    renewed = no_eviction.instance(app_name, ID)["leaseInfo"]["lastRenewalTimestamp"]
    # Netflix's Lease.renew() stores now + duration, and reads show it as the renewal time.
    assert sent + DURATION * 1000 <= renewed <= received + DURATION * 1000
    _readable_until(no_eviction, path, renewed + DURATION * 1000)


def test_lease_expiry_duration_ends_a_lease_one_duration_after_its_renewal(launch, app_name):
    server = launch(
        "--lease-expiry", "duration", "--eviction-interval", "600", "--response-cache-seconds", "0"
    )
    path = _register(server, app_name)
    time.sleep(0.2)
    sent, received = _heartbeat(server, path)

    renewed = server.instance(app_name, ID)["leaseInfo"]["lastRenewalTimestamp"]
    assert sent <= renewed <= received
    _readable_until(server, path, renewed + DURATION * 1000)


def test_delete_removes_an_expired_instance(no_eviction, app_name):
    path = _register(no_eviction, app_name, duration=1)
    registered = no_eviction.instance(app_name, ID)["leaseInfo"]["registrationTimestamp"]
    _readable_until(no_eviction, path, registered + 1000)

    assert no_eviction.request("DELETE", path).status_code == 200
    assert no_eviction.request("GET", f"/apps/{app_name}").status_code == 404


def test_eviction_removes_expired_instances_from_the_listings(launch, app_name):
    server = launch("--eviction-interval", "0.2", "--response-cache-seconds", "0")
    renewed, silent = f"/apps/{app_name}/127.0.0.1_1", f"/apps/{app_name}/127.0.0.1_2"
    lease = {"renewalIntervalInSecs": 1, "durationInSecs": 1}
    for port in (1, 2):
        doc = server.doc(app_name, instance_port=port, leaseInfo=lease)
        assert server.register(app_name, doc).status_code == 204

    deadline = time.monotonic() + 10
    while len(server.get_json(f"/apps/{app_name}")["application"]["instance"]) == 2:
        assert time.monotonic() < deadline, "the silent instance was never evicted"
        assert server.request("PUT", renewed).status_code == 200
        time.sleep(0.1)

    assert server.request("GET", silent).status_code == 404
    assert server.request("PUT", silent).status_code == 404  # evicted: gone for heartbeats too
    listed = server.get_json(f"/apps/{app_name}")["application"]["instance"]
    assert [instance["instanceId"] for instance in listed] == ["127.0.0.1_1"]


def test_self_preservation_keeps_expired_instances_while_heartbeats_are_missing(launch, app_name):
    server = launch(
        "--self-preservation", "--eviction-interval", "0.2", "--response-cache-seconds", "0"
    )
    path = _register(server, app_name, duration=1)
    registered = server.instance(app_name, ID)["leaseInfo"]["registrationTimestamp"]

    # No heartbeat at all: fewer than expected, so nothing expires, nor is evicted.
    while _now_ms() < registered + 2500:
        time.sleep(0.1)
    assert server.request("GET", path).status_code == 200
    assert len(server.get_json(f"/apps/{app_name}")["application"]["instance"]) == 1
