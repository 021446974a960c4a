"""Tunable numbers that several components (or a component and its tests) depend on, in one place.

Each has its unit in its name or note. A number that depends on others is computed from them here, so
changing one changes everything built on it.
"""

from __future__ import annotations

# --- Eureka client ------------------------------------------------------------------------------
# Seconds per Eureka request (the -eureka-timeout default).
EUREKA_TIMEOUT_SECONDS = 5.0
# Rounds over every configured Eureka server before one call gives up, with pauses of
# EUREKA_ROUND_BACKOFF_SECONDS x 2^n between rounds.
EUREKA_ROUNDS = 3
EUREKA_ROUND_BACKOFF_SECONDS = 0.25


def longest_eureka_call_seconds(timeout: float, servers: int) -> float:
    """The longest one Eureka call can take: every round waits out every server's timeout."""
    pauses = sum(EUREKA_ROUND_BACKOFF_SECONDS * 2 ** n for n in range(EUREKA_ROUNDS - 1))
    return EUREKA_ROUNDS * servers * timeout + pauses


# --- Eureka records -----------------------------------------------------------------------------
DEFAULT_RENEWAL_INTERVAL_SECONDS = 30
DEFAULT_LEASE_DURATION_SECONDS = 90
# The shortest renewal interval a container may ask for (-min-renewal-interval default): 30,000
# instances renewing every second would be 30,000 requests/s at Eureka.
MIN_RENEWAL_INTERVAL_SECONDS = 5
MAX_LEASE_SECONDS = 86400
# Netflix Eureka evicts a lease that stopped renewing about 2 x durationInSecs after the last renewal,
# at its next eviction run (every 60 s by default).
EUREKA_EVICTION_INTERVAL_SECONDS = 60

# --- Per-container limits (bad input costs only what it touches) -------------------------------
MAX_SERVICES_PER_CONTAINER = 64
# Bytes of eureka_metadata_* keys and values per instance.
MAX_METADATA_BYTES = 16384

# --- Registrar ----------------------------------------------------------------------------------
# A published state no registrar has applied is re-enqueued after this many seconds, then after
# twice as long each time it is still not applied, up to the cap.
SWEEP_FIRST_RETRY_SECONDS = 5.0
SWEEP_MAX_RETRY_SECONDS = 300.0
SWEEP_INTERVAL_SECONDS = 1.0
SWEEP_BATCH = 500
# A host whose watcher was last seen longer ago than its liveness TTL + 2 x its longest lease + this
# margin (one Netflix eviction run and a minute to spare) is forgotten (-host-forget-margin default).
HOST_FORGET_MARGIN_SECONDS = EUREKA_EVICTION_INTERVAL_SECONDS + 60


# Seconds an RQ job may run. A reconcile job stops at the first Eureka call that fails, so its worst
# case is a few quick calls and one that waits out every timeout (checked at start: see
# `eureka_call_fits_in_a_job`).
JOB_TIMEOUT_SECONDS = 300
# A worker waits this long for a source or instance lock before its job gives up (and is retried).
LOCK_WAIT_SECONDS = 30
LOCK_MARGIN_SECONDS = 5


def lock_seconds(eureka_timeout: float, servers: int) -> float:
    """How long a source or instance lock lasts. It is renewed before every Eureka write (a registration is
    two calls), so a worker killed mid-job blocks the others for no longer than this."""
    return 2 * longest_eureka_call_seconds(eureka_timeout, servers) + LOCK_MARGIN_SECONDS


def eureka_call_fits_in_a_job(timeout: float, servers: int) -> bool:
    """Whether two Eureka calls at their worst still leave a job a third of its time."""
    return 2 * longest_eureka_call_seconds(timeout, servers) <= JOB_TIMEOUT_SECONDS * 2 / 3


# --- Watcher ------------------------------------------------------------------------------------
# Seconds per Docker API call.
DOCKER_TIMEOUT_SECONDS = 10
# A failed inspect is retried after this many seconds, doubling up to the cap.
INSPECT_FIRST_RETRY_SECONDS = 0.5
INSPECT_MAX_RETRY_SECONDS = 10.0
# Reconnecting to the Docker event stream backs off up to this many seconds.
EVENTS_MAX_BACKOFF_SECONDS = 10.0

# --- Heartbeater --------------------------------------------------------------------------------
HEARTBEAT_TICK_SECONDS = 0.5
HEARTBEAT_BATCH_SIZE = 200
