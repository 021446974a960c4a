"""Everything the status view shows, read at once: from Redis through `Store`'s readers (walking the indexes:
hosts, their sources, each source's state and instances, the heartbeat schedule; never SCAN or KEYS, and
never a write), and from Eureka instance by instance (`GET /apps/{APP}/{id}`, which Eureka answers from
its registry, not from the listing cache that lags up to 30 s), several requests at a time."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shared import defaults, keys
from shared.alb import alb_intent
from shared.eureka import EurekaClient, EurekaError
from shared.models import ContainerState, Phase
from shared.registration import registration
from shared.store import Store, StoredState, TrackedInstance


@dataclass(frozen=True)
class EurekaView:
    """What Eureka answered for the instances it was asked about: each one's record, None when it does not
    know it; `trouble` when it could not be asked (then `records` holds what was read all the same)."""
    records: dict[str, dict[str, Any] | None]
    trouble: str | None = None


@dataclass(frozen=True)
class Snapshot:
    redis_now: float
    local_now: float
    last_seen: dict[str, float]  # host -> when its watcher last renewed (Redis time)
    served: dict[str, bool]  # host -> a watcher holds its lease now
    states: dict[str, StoredState]  # source -> its wanted state
    liveness_left: dict[str, float | None]  # source -> seconds its liveness entry has left
    instances: dict[str, TrackedInstance]  # every registered instance, by key
    next_heartbeat: dict[str, float]  # instance key -> when its next heartbeat is due (Redis time)
    claimants: dict[str, set[str]]  # instance key -> sources refused it while its owner wants it
    pending: dict[str, float]  # source -> when a registrar tries its state again (Redis time)
    tries: dict[str, int]  # source -> attempts at its current state
    eureka: EurekaView | None  # None: Eureka not asked (no -eureka-url)


def wanted_instances(state: ContainerState | None) -> dict[str, str]:
    """Instance key -> the status `state` wants it in, as the registrar derives them (when two services would be
    the same instance, the first one). A service registered only as its ALB wants no instance of its own."""
    if state is None or state.phase is not Phase.RUNNING:
        return {}
    wanted: dict[str, str] = {}
    for record in state.services:
        intent = alb_intent(record).intent
        if intent is not None and intent.only_registration:
            continue
        document = registration(record, state.status, host=state.host, ec2=state.ec2).document
        wanted.setdefault(keys.instance_key(document["app"], document["instanceId"]), document["status"])
    return wanted


def read(store: Store, eureka: EurekaClient | None) -> Snapshot:
    """Read Redis, then ask Eureka about every instance that is registered or wanted."""
    redis_now = store.now()
    last_seen = store.hosts()
    hosts = sorted(last_seen)
    sources = sorted({source for found in store.sources_of(hosts).values() for source in found})
    schedule = store.heartbeat_schedule()
    noted = {key for found in store.instance_keys_of(sources).values() for key in found}
    instances = store.instances(sorted(noted | set(schedule)))
    # Sources known only as an instance's owner (their host forgotten, say) are shown too.
    sources = sorted(set(sources) | {instance.source for instance in instances.values()})
    states = store.stored_states(sources)
    wanted = {key for stored in states.values() for key in wanted_instances(stored.state)}
    asked = sorted(set(instances) | wanted)
    return Snapshot(
        redis_now=redis_now, local_now=time.time(), last_seen=last_seen,
        served=store.served_hosts(sorted({keys.split_source(source)[0] for source in sources} | set(hosts))),
        states=states, liveness_left=store.liveness_left(sources), instances=instances, next_heartbeat=schedule,
        claimants=store.claimants(asked), pending=dict(store.pending()), tries=store.pending_tries(),
        eureka=read_eureka(eureka, asked) if eureka is not None else None)


def read_eureka(eureka: EurekaClient, asked: list[str]) -> EurekaView:
    """Eureka's record of each instance key in `asked`, several requests at a time."""
    failed: list[EurekaError] = []

    def ask(key: str) -> tuple[str, dict[str, Any] | None] | None:
        """The key and Eureka's record; None when Eureka was not read."""
        # One unavailable Eureka would fail every other request the same way, each after its timeout.
        if failed:
            return None
        try:
            return key, eureka.instance(*keys.split_instance_key(key))
        except EurekaError as err:
            failed.append(err)
            return None

    with ThreadPoolExecutor(defaults.STATUS_EUREKA_READS, thread_name_prefix="eureka-read") as pool:
        records = dict(answer for answer in pool.map(ask, asked) if answer is not None)
    return EurekaView(records, f"Eureka not read: {failed[0]}" if failed else None)
