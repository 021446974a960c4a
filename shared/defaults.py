"""Tunable numbers that several components (or a component and its tests) depend on, in one place.

Each has its unit in its name or note. A number that depends on others is computed from them here, so
changing one changes everything built on it.
"""

from __future__ import annotations

# --- Redis --------------------------------------------------------------------------------------
# A command that cannot reach Redis is tried again, with pauses growing to a second, for this long before
# its error reaches the caller: longer than a Sentinel failover with down-after-milliseconds of a few seconds.
REDIS_WAIT_SECONDS = 10.0
REDIS_SOCKET_TIMEOUT_SECONDS = 10.0
REDIS_CONNECT_TIMEOUT_SECONDS = 5.0
REDIS_HEALTH_CHECK_SECONDS = 30
# Each sentinel is asked once per look-up of the primary; a slow one must not hold up asking the next.
SENTINEL_TIMEOUT_SECONDS = 2.0
# A pool member whose RQ worker ended on a Redis error starts a new one after this pause.
WORKER_RESTART_SECONDS = 5.0

# --- Eureka client ------------------------------------------------------------------------------
# Seconds per Eureka request (the -eureka-timeout default).
EUREKA_TIMEOUT_SECONDS = 5.0
# Rounds over every configured Eureka server before one call gives up, with pauses of
# EUREKA_ROUND_BACKOFF_SECONDS x 2^n between rounds.
EUREKA_ROUNDS = 3
EUREKA_ROUND_BACKOFF_SECONDS = 0.25

# The status view reads Eureka this many instances at a time (one request each, answered from the registry).
STATUS_EUREKA_READS = 8


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
# Netflix Eureka serves GET /apps from a cache refreshed every 30 s (responseCacheUpdateIntervalMs); this
# adds slack for its timer and for replication between peers: a listing this old shows every instance
# registered before it was asked for.
EUREKA_LISTING_STALENESS_SECONDS = 35.0
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
# The fast lane keeps the newest changes only: with no registrar taking them (all stopped), it stays this
# short; the changes it drops stay pending, and the registrars' sweep enqueues them as jobs.
FAST_LANE_LENGTH = 1000
# A registrar's fast lane waits this long for a change before it looks whether it must stop.
FAST_LANE_WAIT_SECONDS = 1
# After an error (Redis unavailable, say), the fast lane pauses this long before it takes the next change.
FAST_LANE_ERROR_PAUSE_SECONDS = 1.0


# Seconds an RQ job may run. A reconcile job stops at the first Eureka call that fails, so its worst
# case is a few quick calls and one that waits out every timeout (checked at start: see
# `eureka_call_fits_in_a_job`).
JOB_TIMEOUT_SECONDS = 300
# A worker waits this long for a source or instance lock before its job gives up (and is retried).
LOCK_WAIT_SECONDS = 30
# A busy lock is tried again after this long, then after twice as long each time, up to the cap.
LOCK_FIRST_RETRY_SECONDS = 0.001
LOCK_MAX_RETRY_SECONDS = 0.05
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

# --- AWS load balancers (registrar) -------------------------------------------------------------
# The ALB record's lease: Eureka deletes a forgotten ALB within about 2 x 35 s, where nginx would stumble
# over a name that no longer resolves; renewed often enough that two renewals can be missed.
ALB_LEASE_DURATION_SECONDS = 35
ALB_RENEWAL_INTERVAL_SECONDS = 10
# Per AWS request: seconds to connect and to read, and attempts (botocore's adaptive mode) within one
# call. Retrying later, with backoff, is the cache's job, so a worker is never held long by AWS.
AWS_CONNECT_TIMEOUT_SECONDS = 1.0
AWS_READ_TIMEOUT_SECONDS = 3.0
AWS_ATTEMPTS = 2
# How long one ALB lookup may keep asking AWS (on cache misses) before it stops for this attempt.
ALB_LOOKUP_BUDGET_SECONDS = 2.0
# ALB lookups that must ask AWS run on this many threads of each registrar process, never in a reconcile job.
ALB_LOOKUP_THREADS = 4
# How long the fleet keeps an AWS answer: a task's service never changes; how services, target groups
# and listeners are wired changes with deployments; a scan of all target groups for instance targets
# is costly; "not there" (a task, target or listener that is new) changes within seconds.
AWS_TASK_SERVICE_SECONDS = 3600
AWS_WIRING_SECONDS = 60
AWS_INSTANCE_TARGETS_SECONDS = 30
AWS_NOT_THERE_SECONDS = 15
# Target health and load balancer existence are checked once per check interval; their answers are kept
# this fraction of it, so that each check gets a fresh answer and every other asker in between shares it.
AWS_CHECK_FRESHNESS = 0.9
# An AWS question that failed pauses fleet-wide this long, doubling while it keeps failing, up to the cap.
AWS_BACKOFF_FIRST_SECONDS = 2
AWS_BACKOFF_MAX_SECONDS = 60
# The same AWS error (operation and code) is logged again only after this long.
AWS_LOG_REPEAT_SECONDS = 300
# A worker waits this long for another one already asking AWS the same question; that one may take this
# long before others ask too.
AWS_FILL_WAIT_SECONDS = 2.0
AWS_FILL_LOCK_SECONDS = 30

# --- Metrics and health ---------------------------------------------------------------------------
# -metrics-port defaults: distinct, so that every component of one machine (make run) serves its own.
WATCHER_METRICS_PORT = 9101
REGISTRAR_METRICS_PORT = 9102
HEARTBEATER_METRICS_PORT = 9103
# A watcher is unhealthy once its last successful liveness renewal is older than this many -ttl-refresh
# periods: by then its entries are about to expire (-ttl is typically 3 x -ttl-refresh).
LIVENESS_RENEWALS_MISSED_UNHEALTHY = 3
# A worker is stuck when a job runs this much longer than its timeout (RQ should have ended it), or a round
# of its periodic task (the registrar's sweep, the heartbeater's ticker) runs longer than a job may.
STUCK_MARGIN_SECONDS = 10
PERIODIC_STUCK_SECONDS = JOB_TIMEOUT_SECONDS
# A heartbeat is counted as missed when it is renewed more than this fraction of its renewal interval (3 s
# of the default 30 s), plus the ticker's step (-tick), after it was due.
HEARTBEAT_LATE_FRACTION = 0.1
