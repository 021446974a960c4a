"""The convergence checker: does Eureka hold exactly what the running system says it must?

What Eureka must hold is computed from Redis as the watchers left it: every container whose state says
running, whose liveness entry exists (its watcher vouches for it now), gives its instances, with the status
its state calls for; when two containers claim one instance, its owner's. Everything else Eureka may still
hold only as not routable (DOWN, OUT_OF_SERVICE, or absent): a container that is running but DOWN, one whose
records are left to lease expiry. Eureka is read per instance (`GET /apps/{APP}/{id}`, always current), never
from the cached `/apps` lists, which serve only to find candidates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis

from shared import keys
from shared.models import Phase, parse_state
from shared.registration import registration
from tests.conftest import HOST_IP
from tests.support import DevEureka

ROUTABLE = frozenset({"UP", "STARTING"})


def web_key(port: int) -> str:
    """The instance key of the tests' `web` container published on `port` of this machine."""
    return keys.instance_key("WEB", f"{HOST_IP}_{port}")


@dataclass(frozen=True)
class Wanted:
    status: str
    container_id: str


def wanted_registry(client: redis.Redis) -> dict[str, Wanted]:
    """Instance key -> what Eureka must show for it, from the live, vouched-for states in Redis."""
    wanted: dict[str, Wanted] = {}
    for host in client.zrange(keys.HOSTS, 0, -1):
        for source in sorted(client.smembers(keys.host_sources(host))):
            doc = client.hget(keys.state(source), "doc")
            if not doc or not client.exists(keys.live(source)):
                continue
            state = parse_state(doc)
            if state.phase is not Phase.RUNNING or not state.vouched:
                continue
            for record in state.services:
                document = registration(record, state.status, host=state.host, ec2=state.ec2, min_renewal=1).document
                key = keys.instance_key(document["app"], document["instanceId"])
                owner = client.hget(keys.instance(key), "source")
                if key not in wanted or owner == source:
                    wanted[key] = Wanted(document["status"], state.container_id)
    return wanted


def candidates(client: redis.Redis, eureka: DevEureka) -> set[str]:
    """Every instance key Eureka might hold: what Redis tracks and what Eureka's (cached) lists show."""
    found = set(client.hkeys(keys.HEARTBEAT_INTERVAL))
    response = eureka.session.get(f"{eureka.address}/apps", headers={"Accept": "application/json"}, timeout=5)
    response.raise_for_status()
    applications = response.json()["applications"].get("application") or []
    for application in applications if isinstance(applications, list) else [applications]:
        instances = application.get("instance") or []
        for instance in instances if isinstance(instances, list) else [instances]:
            found.add(keys.instance_key(instance["app"], instance["instanceId"]))
    return found


def differences(client: redis.Redis, eureka: DevEureka, expect: set[str] | None = None) -> list[str]:
    """What is wrong in Eureka now, one line each; empty when it holds what it must. With `expect` (the
    instance keys of the containers the test knows run and vouched for), what it must hold is exactly that:
    Redis lagging behind Docker counts as not converged."""
    wanted = wanted_registry(client)
    found = []
    if expect is not None:
        found += [f"{key}: nobody vouches for it" for key in sorted(set(expect) - set(wanted))]
        found += [f"{key}: still vouched for" for key in sorted(set(wanted) - set(expect))]
    for key, expected in sorted(wanted.items()):
        instance = eureka.instance(*keys.split_instance_key(key))
        if instance is None:
            found.append(f"{key}: missing, wanted {expected.status}")
        elif instance["status"] != expected.status:
            found.append(f"{key}: {instance['status']}, wanted {expected.status}")
        elif (instance.get("metadata") or {}).get("container-id") != expected.container_id:
            found.append(f"{key}: registered for container {_container(instance)}, wanted {expected.container_id[:12]}")
    for key in sorted((candidates(client, eureka) | set(expect or ())) - set(wanted)):
        instance = eureka.instance(*keys.split_instance_key(key))
        if instance is not None and instance["status"] in ROUTABLE:
            found.append(f"{key}: {instance['status']} for container {_container(instance)}, which nobody vouches for")
    return found


def _container(instance: dict[str, Any]) -> str:
    return ((instance.get("metadata") or {}).get("container-id") or "?")[:12]


def wait_converged(client: redis.Redis, eureka: DevEureka, bound: float, what: str,
                   expect: set[str] | None = None) -> float:
    """Poll until Eureka holds what it must (exactly `expect`, when given); returns the seconds it took.
    Fails after `bound` seconds with the differences still left."""
    started = time.monotonic()
    while True:
        left = differences(client, eureka, expect)
        if not left:
            return time.monotonic() - started
        if time.monotonic() - started > bound:
            raise AssertionError(f"not converged {bound}s after {what}: " + "; ".join(left))
        time.sleep(0.1)
