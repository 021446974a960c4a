"""The convergence checker: does Eureka hold exactly what the running system says it must?

What Eureka must hold is computed from Redis as the watchers left it: every container whose state says
running, whose liveness entry exists (its watcher vouches for it now), gives its instances, with the status
its state calls for; when two containers claim one instance, its owner's. A service behind an AWS load
balancer gives its ALB's record instead (or as well, with `eureka_elbv2_only_registration=false`): present iff
at least one such container points at it and the load balancer exists, UP while its target group has a
healthy target, else STARTING or DOWN; the ALB is found (and its health read) by the test's own resolver.
Everything else Eureka may still hold only as not routable (DOWN, OUT_OF_SERVICE, or absent): a container
that is running but DOWN, one whose records are left to lease expiry. Eureka is read per instance
(`GET /apps/{APP}/{id}`, always current), never from the cached `/apps` lists, which serve only to find
candidates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis

from registrar.albs.resolver import AlbResolver, Unknown
from shared import keys
from shared.alb import alb_intent, alb_registration
from shared.models import ContainerState, InstanceStatus, Phase, ServiceRecord, parse_state
from shared.registration import registration
from tests.conftest import HOST_IP
from tests.support import DevEureka

ROUTABLE = frozenset({"UP", "STARTING"})
NOT_HEALTHY = frozenset({"STARTING", "DOWN"})


def web_key(port: int) -> str:
    """The instance key of the tests' `web` container published on `port` of this machine."""
    return keys.instance_key("WEB", f"{HOST_IP}_{port}")


@dataclass(frozen=True)
class Wanted:
    statuses: frozenset[str]
    container_id: str | None  # None: an ALB's record
    alb_endpoint: str | None = None  # its metadata elbv2-endpoint


def wanted_registry(client: redis.Redis, albs: AlbResolver | None = None) -> dict[str, Wanted]:
    """Instance key -> what Eureka must show for it, from the live, vouched-for states in Redis (and AWS,
    through `albs`, for services behind a load balancer)."""
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
                intent = alb_intent(record).intent
                alb_endpoint = None
                if intent is not None:
                    alb = _wanted_alb(record, state, albs)
                    if alb is None:
                        continue
                    wanted[alb[0]] = alb[1]
                    if intent.only_registration:
                        continue
                    alb_endpoint = alb[1].alb_endpoint
                document = registration(record, state.status, host=state.host, ec2=state.ec2, min_renewal=1).document
                key = keys.instance_key(document["app"], document["instanceId"])
                owner = client.hget(keys.instance(key), "source")
                if key not in wanted or owner == source:
                    wanted[key] = Wanted(frozenset({document["status"]}), state.container_id, alb_endpoint)
    return wanted


def _wanted_alb(record: ServiceRecord, state: ContainerState, albs: AlbResolver | None) -> tuple[str, Wanted] | None:
    """The ALB record `record`'s service wants, None when its load balancer is not there."""
    intent = alb_intent(record).intent
    assert intent is not None
    if albs is None:
        raise AssertionError(f"{record.service_id} is behind an ALB: the checker needs a resolver")
    endpoint = albs.resolve(intent, state.ec2.instance_id if state.ec2 else None)
    if isinstance(endpoint, Unknown):
        return None
    document = alb_registration(record, endpoint, InstanceStatus.UP, min_renewal=1).document
    up = frozenset({document["status"]})
    healthy = albs.healthy_targets(endpoint)
    statuses = NOT_HEALTHY | up if isinstance(healthy, Unknown) else up if healthy else NOT_HEALTHY
    return keys.instance_key(document["app"], document["instanceId"]), Wanted(statuses, None, endpoint.instance_id)


def candidates(client: redis.Redis, eureka: DevEureka) -> set[str]:
    """Every instance key Eureka might hold: what Redis tracks and what Eureka's (cached) lists show."""
    found = {keys.alb_of_schedule_entry(entry) or entry for entry in client.hkeys(keys.HEARTBEAT_INTERVAL)}
    response = eureka.session.get(f"{eureka.address}/apps", headers={"Accept": "application/json"}, timeout=5)
    response.raise_for_status()
    applications = response.json()["applications"].get("application") or []
    for application in applications if isinstance(applications, list) else [applications]:
        instances = application.get("instance") or []
        for instance in instances if isinstance(instances, list) else [instances]:
            found.add(keys.instance_key(instance["app"], instance["instanceId"]))
    return found


def differences(client: redis.Redis, eureka: DevEureka, expect: set[str] | None = None,
                albs: AlbResolver | None = None) -> list[str]:
    """What is wrong in Eureka now, one line each; empty when it holds what it must. With `expect` (the
    instance keys of the containers the test knows run and vouched for, and of their ALBs), what it must hold
    is exactly that: Redis lagging behind Docker counts as not converged. `albs` finds the ALBs of services
    behind a load balancer."""
    wanted = wanted_registry(client, albs)
    found = []
    if expect is not None:
        found += [f"{key}: nobody vouches for it" for key in sorted(set(expect) - set(wanted))]
        found += [f"{key}: still vouched for" for key in sorted(set(wanted) - set(expect))]
    for key, expected in sorted(wanted.items()):
        instance = eureka.instance(*keys.split_instance_key(key))
        metadata = (instance or {}).get("metadata") or {}
        if instance is None:
            found.append(f"{key}: missing, wanted {' or '.join(sorted(expected.statuses))}")
        elif instance["status"] not in expected.statuses:
            found.append(f"{key}: {instance['status']}, wanted {' or '.join(sorted(expected.statuses))}")
        elif expected.container_id is not None and metadata.get("container-id") != expected.container_id:
            found.append(f"{key}: registered for container {_container(instance)}, wanted {expected.container_id[:12]}")
        elif expected.alb_endpoint is not None and metadata.get("elbv2-endpoint") != expected.alb_endpoint:
            found.append(f"{key}: elbv2-endpoint {metadata.get('elbv2-endpoint')}, wanted {expected.alb_endpoint}")
    for key in sorted((candidates(client, eureka) | set(expect or ())) - set(wanted)):
        instance = eureka.instance(*keys.split_instance_key(key))
        if instance is not None and instance["status"] in ROUTABLE:
            found.append(f"{key}: {instance['status']} for container {_container(instance)}, which nobody vouches for")
    return found


def _container(instance: dict[str, Any]) -> str:
    return ((instance.get("metadata") or {}).get("container-id") or "?")[:12]


def wait_converged(client: redis.Redis, eureka: DevEureka, bound: float, what: str,
                   expect: set[str] | None = None, albs: AlbResolver | None = None) -> float:
    """Poll until Eureka holds what it must (exactly `expect`, when given); returns the seconds it took.
    Fails after `bound` seconds with the differences still left."""
    started = time.monotonic()
    while True:
        left = differences(client, eureka, expect, albs)
        if not left:
            return time.monotonic() - started
        if time.monotonic() - started > bound:
            raise AssertionError(f"not converged {bound}s after {what}: " + "; ".join(left))
        time.sleep(0.1)
