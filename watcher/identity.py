"""Which host this watcher speaks for, and making sure it is the only one.

The host identity names the host in Redis, in service IDs and in the `docker-host` metadata, so it must
outlive the watcher: by default it is the Docker engine's own name (`docker info` Name, the host's
hostname), which stays the same when the watcher runs in a container that is replaced, unlike the
container's hostname. Two watchers speaking for one host would fight over its states, so a watcher
holds a lease on its identity in Redis (renewed with the liveness entries, expiring with them); a
second watcher waits for the lease to expire (a killed predecessor's does within one liveness TTL)
and refuses to start if someone keeps renewing it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from shared.config import valid_host_name
from shared.store import Store
from watcher.engine import DockerEngine

log = logging.getLogger(__name__)

CLAIM_POLL_SECONDS = 0.5


class IdentityTaken(Exception):
    """Another watcher keeps renewing the lease on this host identity."""


class BadEngineName(Exception):
    """The Docker engine's name cannot serve as a host identity."""


def engine_name(engine: DockerEngine) -> str:
    """The Docker engine's name, validated like -hostname."""
    name = engine.info().get("Name") or ""
    if not valid_host_name(name):
        raise BadEngineName(f"the Docker engine's name {name!r} is not a usable host name (letters, digits, "
                            "'.', '_', '-'): set -hostname")
    return name


def new_token() -> str:
    """Who holds a lease: readable in the refusal message of a second watcher."""
    return f"{socket.gethostname()}/pid {os.getpid()}/{uuid.uuid4().hex[:8]}"


def claim(store: Store, host: str, token: str, ttl: int) -> int:
    """Take the lease on `host`, waiting up to one TTL for a previous holder's to expire. Returns the
    host's change counter as Redis holds it now. Raises IdentityTaken."""
    deadline = time.monotonic() + ttl + 1
    announced = False
    while True:
        claim_result = store.claim_host(host, token, ttl)
        if claim_result.claimed:
            return claim_result.seq
        if time.monotonic() > deadline:
            raise IdentityTaken(f"host identity {host!r} is held by another watcher ({claim_result.holder}), which "
                                f"keeps renewing it: is a second watcher running for this Docker engine? Stop "
                                f"one of them, or give each its own -hostname")
        if not announced:
            log.warning("host identity %r is held by watcher %s; waiting up to %ss for its lease to expire",
                        host, claim_result.holder, ttl)
            announced = True
        time.sleep(CLAIM_POLL_SECONDS)
