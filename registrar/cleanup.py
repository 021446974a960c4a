"""-cleanup: delete the Eureka instances a watcher host registered for containers Redis does not know.

Redis is the registrar's memory of what it registered. When that memory is lost (Redis flushed or
replaced while a watcher was down), instances stay in Eureka with nobody left to deregister them.
Every instance the system registers carries the metadata `docker-host` (the watcher's host name) and
`container-id`. An instance of this host whose container has no state in Redis is one the registrar
could not have registered from the current state: it is deleted.

A container being registered right now had its state (and its place among the host's sources)
published before any registrar could read it. Each deletion is decided again under the instance's
lock, the one every registration of that instance takes, on the instance as Eureka holds it now and
the host's sources as Redis holds them now: a registration in flight is either seen and kept, or
happens after the deletion.

The candidates come from `GET /apps`, which Netflix Eureka serves from a cache refreshed every 30 s:
a listing may lack what was registered in the last 30 s, dangling or not. So the watcher asks for a
second pass `defaults.EUREKA_LISTING_STALENESS_SECONDS` after the first, when the listing shows every
instance registered before the first one. Should that never come (the watcher stopped), those instances
still leave Eureka by lease expiry: nothing heartbeats them, as Redis does not know them.
"""

from __future__ import annotations

import logging
from typing import Any

from shared import defaults, keys
from shared.eureka import EurekaClient, EurekaRejected
from shared.store import Store

log = logging.getLogger(__name__)


def container_id_if_from(instance: dict[str, Any], host: str) -> str | None:
    """The container id of an instance the system registered for `host`, None for any other instance
    (another host's, an ALB's, one registered by something else)."""
    metadata = instance.get("metadata") or {}
    if metadata.get("docker-host") != host:
        return None
    return metadata.get("container-id") or None


def remove_dangling(host: str, store: Store, eureka: EurekaClient) -> list[str]:
    """Delete `host`'s instances whose container Redis does not know; returns their instance keys."""
    removed = []
    for application in eureka.applications():
        for listed in application["instance"]:
            container_id = container_id_if_from(listed, host)
            if container_id is None or store.is_host_source(keys.source(host, container_id)):
                continue
            app, instance_id = listed.get("app") or application.get("name") or "", listed.get("instanceId") or ""
            if app and instance_id and _remove_if_still_dangling(host, app, instance_id, store, eureka):
                removed.append(keys.instance_key(app, instance_id))
    return removed


def _remove_if_still_dangling(host: str, app: str, instance_id: str, store: Store, eureka: EurekaClient) -> bool:
    key = keys.instance_key(app, instance_id)
    with store.lock(keys.instance_lock(key), defaults.lock_seconds(eureka.timeout, len(eureka.servers))):
        current = eureka.instance(app, instance_id)
        container_id = None if current is None else container_id_if_from(current, host)
        if container_id is None or store.is_host_source(keys.source(host, container_id)):
            return False
        try:
            eureka.deregister(app, instance_id)
        except EurekaRejected as err:
            log.error("cleanup: Eureka refused to delete %s: %s", key, err)
            return False
    log.info("cleanup: deleted %s, registered by host %s for container %s, which Redis does not know",
             key, host, container_id[:12])
    return True
