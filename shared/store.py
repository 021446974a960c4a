"""Everything the components read from and write to Redis, as a few atomic operations.

Where several keys change together the change is one Lua script, so a crash or a concurrent worker
never sees half of it. Times are the Redis server's (`TIME` inside the scripts): schedules and
"last seen" never depend on the clocks of the machines agreeing. Key names come from `shared.keys`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable, Sequence

import redis
from redis.exceptions import LockNotOwnedError
from rq.job import Job

from shared import defaults, keys
from shared.alb import AlbEndpoint, endpoint_json, parse_endpoint
from shared.models import ContainerState, InstanceStatus, parse_state, state_json


# Every script that needs the time starts with this: Redis server time in seconds, as a float.
_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
"""

# Claim the "one queued job" flag of a job name, unless a job it names still exists.
# Used inside scripts; expects KEYS/ARGV positions given by the caller as `flag`, `job_id`, `prefix`.
_CLAIM_JOB = """
local function claim_job(flag, job_id, prefix)
  local current = redis.call('GET', flag)
  if current and redis.call('EXISTS', prefix .. current) == 1 then
    return 0
  end
  redis.call('SET', flag, job_id)
  return 1
end
"""

# KEYS: state, host sources, live, pending, host, job flag, pending tries, fast lane.
# ARGV: doc ('' = container gone), vouched, ttl, source, sweep after, job id, force, time of the Docker
# event behind the change ('' if none), fast lane length.
# A change goes on the registrars' fast lane (trimmed to its length), and is pending until a registrar
# applied it. A forced re-registration is job `job id`, which the caller enqueues: its flag is set here.
# Returns {changed, seq}: whether the wanted state changed, and the host's change counter after this.
_PUBLISH_STATE = _NOW + """
if ARGV[2] == '1' then
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[3])
else
  redis.call('DEL', KEYS[3])
end
local changed = 0
if ARGV[1] == '' then
  changed = redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[4])
else
  if redis.call('HGET', KEYS[1], 'doc') ~= ARGV[1] then
    redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'event_time', ARGV[8])
    redis.call('HINCRBY', KEYS[1], 'gen', 1)
    changed = 1
  end
  redis.call('SADD', KEYS[2], ARGV[4])
end
local seq
if changed == 1 then
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), ARGV[4])
  redis.call('HDEL', KEYS[7], ARGV[4])
  seq = redis.call('HINCRBY', KEYS[5], 'seq', 1)
  if ARGV[7] ~= '1' then
    redis.call('LPUSH', KEYS[8], ARGV[4])
    redis.call('LTRIM', KEYS[8], 0, tonumber(ARGV[9]) - 1)
  end
else
  seq = tonumber(redis.call('HGET', KEYS[5], 'seq') or '0')
end
if ARGV[7] == '1' then
  redis.call('SET', KEYS[6], ARGV[6])
end
return {changed, seq}
"""

# KEYS: host, host watcher lease, hosts, then the live keys to renew.
# ARGV: watcher token, ttl, host name, the change counter the watcher expects.
# Returns {lease, intact}: lease 1 = held (or taken back after Redis lost it), 0 = another watcher
# holds it (nothing renewed); intact 0 = Redis's change counter is not what the watcher published
# (Redis lost or rolled back data).
_RENEW_LIVENESS = _NOW + """
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then
  return {0, 1}
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
for i = 4, #KEYS do
  redis.call('SET', KEYS[i], '1', 'EX', ARGV[2])
end
redis.call('ZADD', KEYS[3], now, ARGV[3])
redis.call('HSET', KEYS[1], 'ttl', ARGV[2])
local seq = redis.call('HGET', KEYS[1], 'seq') or '0'
if seq ~= ARGV[4] then
  return {1, 0}
end
return {1, 1}
"""

# KEYS: host watcher lease, host, hosts.  ARGV: token, ttl, host name.
# Returns {claimed, holder, seq}.
_CLAIM_HOST = _NOW + """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return {0, holder, 0}
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[3], now, ARGV[3])
redis.call('HSET', KEYS[2], 'ttl', ARGV[2])
return {1, '', tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')}
"""

# KEYS: state, pending, pending tries.  ARGV: generation the registrar applied, source.
_MARK_APPLIED = """
local gen = redis.call('HGET', KEYS[1], 'gen') or '0'
if gen == ARGV[1] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  return 1
end
return 0
"""

# KEYS: job flag.  ARGV: job id, job key prefix.
_CLAIM_JOB_FLAG = _CLAIM_JOB + """
return claim_job(KEYS[1], ARGV[1], ARGV[2])
"""

# KEYS: a string key.  ARGV: a value.  Deletes the key if it still holds that value.
_DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: pending, pending tries.  ARGV: limit, first retry delay, longest retry delay.
# Each due source is pushed back by a delay that doubles with every attempt at the same state.
_CLAIM_PENDING = _NOW + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
for _, member in ipairs(due) do
  local tries = redis.call('HINCRBY', KEYS[2], member, 1)
  local delay = math.min(tonumber(ARGV[2]) * 2 ^ (tries - 1), tonumber(ARGV[3]))
  redis.call('ZADD', KEYS[1], now + delay, member)
end
return due
"""

# KEYS: heartbeat due, heartbeat interval.  ARGV: limit, interval for members without one.
# Returns {shortest interval among them, then member, time it was due, for each due member}, each member
# pushed back by its own interval.
_CLAIM_HEARTBEATS = _NOW + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, ARGV[1])
local shortest = tonumber(ARGV[2])
for i = 1, #due, 2 do
  local member = due[i]
  local interval = tonumber(redis.call('HGET', KEYS[2], member)) or tonumber(ARGV[2])
  shortest = math.min(shortest, interval)
  redis.call('ZADD', KEYS[1], now + interval, member)
end
table.insert(due, 1, tostring(shortest))
return due
"""

# KEYS: instance, source instances, heartbeat due, heartbeat interval, claimants.
# ARGV: instance key, source, doc, interval.  Returns the previous owner ('' if none).
_TRACK = _NOW + """
local previous = redis.call('HGET', KEYS[1], 'source') or ''
redis.call('HSET', KEYS[1], 'doc', ARGV[3], 'source', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
redis.call('SREM', KEYS[5], ARGV[2])
return previous
"""

# KEYS: instance, source instances, heartbeat due, heartbeat interval, claimants.
# ARGV: instance key, source.  Returns {removed, claimants...}: removed 0 when another source owns
# the instance (left alone); on removal, the sources that were refused it while `source` owned it.
_UNTRACK = """
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'source') ~= ARGV[2] then
  return {0}
end
local claimants = redis.call('SMEMBERS', KEYS[5])
redis.call('DEL', KEYS[1], KEYS[5])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
local result = {1}
for _, claimant in ipairs(claimants) do
  table.insert(result, claimant)
end
return result
"""

# KEYS: hosts, host, host sources, host stopping, pending, pending tries.
# ARGV: host name, the last-seen time the caller decided on, then the host's sources' state and live keys
# (pairs).  Forgets a host, unless its watcher was seen again since `last seen`.
_FORGET_HOST = """
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if seen and tonumber(seen) > tonumber(ARGV[2]) then
  return 0
end
local sources = redis.call('SMEMBERS', KEYS[3])
for i = 3, #ARGV, 2 do
  redis.call('DEL', ARGV[i], ARGV[i + 1])
end
for _, source in ipairs(sources) do
  redis.call('ZREM', KEYS[5], source)
  redis.call('HDEL', KEYS[6], source)
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""


# KEYS: ALB members, source ALBs.  ARGV: ALB instance key, source, '1' to join or '0' to leave.
_ALB_MEMBERSHIP = """
if ARGV[3] == '1' then
  redis.call('SADD', KEYS[1], ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[1])
else
  redis.call('SREM', KEYS[1], ARGV[2])
  redis.call('SREM', KEYS[2], ARGV[1])
end
"""

# KEYS: ALB, heartbeat due, heartbeat interval.  ARGV: schedule entry, doc, endpoint, health, interval,
# registered ('1' or '0').  The renewal keeps its place in the schedule when it has one.
_SAVE_ALB = _NOW + """
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'endpoint', ARGV[3], 'health', ARGV[4], 'registered', ARGV[6])
redis.call('ZADD', KEYS[2], 'NX', now + tonumber(ARGV[5]), ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
"""

# KEYS: ALB, ALB members, heartbeat due, heartbeat interval.  ARGV: schedule entry.
# Eureka no longer holds the ALB. Without members (or without a record) it is forgotten (returns 1); with
# members (none of them live) it stays scheduled, so that its renewal registers it again once one of them
# is live again.
_WITHDRAW_ALB = """
if redis.call('SCARD', KEYS[2]) == 0 or redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
  return 1
end
redis.call('HSET', KEYS[1], 'registered', '0')
return 0
"""

# KEYS: ALB, ALB members, heartbeat due, heartbeat interval, pending, then each member's source ALBs.
# ARGV: ALB instance key, schedule entry, then the members.  The load balancer is gone: the ALB is forgotten
# with its memberships, and its members are due for a reconcile now (to look for their ALB again).
_DROP_ALB = _NOW + """
for i = 3, #ARGV do
  redis.call('SREM', KEYS[i + 3], ARGV[1])
  redis.call('ZADD', KEYS[5], now, ARGV[i])
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2])
"""

# KEYS: pending.  ARGV: source, seconds.  The source's next attempt, that many seconds from now.
_RETRY_PENDING = _NOW + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
"""

# Locks are strings holding their holder's token, with an expiry in milliseconds (the form redis-py's
# `Lock` uses too). Renewing the locks a worker holds, in the scripts that take one more lock:
# KEYS from `first` on are held locks, ARGV from `first - 1` on their tokens (ARGV[1] the life in ms).
# Returns the name of a held lock that is no longer the worker's, or nil.
_RENEW_HELD = """
local function renew_held(first)
  for i = first, #KEYS do
    if redis.call('GET', KEYS[i]) ~= ARGV[i - first + 3] then
      return KEYS[i]
    end
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
  return nil
end

-- Takes lock KEYS[1] for token ARGV[2], the held locks (from `first` on) renewed. Returns nil when
-- taken, {0} when another holder has it, {-1, name} when a held lock was lost.
local function take_lock(first)
  local lost = renew_held(first)
  if lost then
    return {-1, lost}
  end
  if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[1]) then
    return {0}
  end
  return nil
end
"""

# KEYS: lock, then held locks.  ARGV: life in ms, token, then the held locks' tokens.
# Returns {1} when taken (held locks renewed), {0} when another holder has it, {-1, name} when a held
# lock was lost.
_TAKE_LOCK = _RENEW_HELD + """
return take_lock(2) or {1}
"""

# KEYS: held locks.  ARGV: life in ms, unused, then their tokens.  Returns a lost lock's name, or ''.
_RENEW_LOCKS = _RENEW_HELD + """
return renew_held(1) or ''
"""

# KEYS: job flag, source lock, state, source instances.
# ARGV: life in ms, token, job id ('' if none), instance key prefix, instance lock prefix, source.
# The start of a reconcile: the job's "queued" flag goes (a change from now on needs a new job), then,
# if the source lock is free, it is taken and the state and the tracked instances are read. When the
# state wants nothing registered (the container is gone or has exited), the lock of one instance the
# source owns is taken too, with the same token, if it is free: its deregistration needs no round trip
# of its own.
# Returns {0} when the lock is taken by another holder, else {1, doc ('' if none), gen, event time ('' if
# none), the instance locked with it ('' if none), then for each tracked instance: key, doc, source}.
_BEGIN_RECONCILE = """
if ARGV[3] ~= '' and redis.call('GET', KEYS[1]) == ARGV[3] then
  redis.call('DEL', KEYS[1])
end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[1]) then
  return {0}
end
local state = redis.call('HMGET', KEYS[3], 'doc', 'gen', 'event_time')
local result = {1, state[1] or '', state[2] or '0', state[3] or '', ''}
local departing = not state[1]
if state[1] then
  local parsed, decoded = pcall(cjson.decode, state[1])
  departing = parsed and type(decoded) == 'table' and decoded.phase ~= 'running'
end
for _, key in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local instance = redis.call('HMGET', ARGV[4] .. key, 'doc', 'source')
  if instance[1] then
    table.insert(result, key)
    table.insert(result, instance[1])
    table.insert(result, instance[2] or '')
    if departing and result[5] == '' and instance[2] == ARGV[6]
        and redis.call('SET', ARGV[5] .. key, ARGV[2], 'NX', 'PX', ARGV[1]) then
      result[5] = key
    end
  end
end
return result
"""

# KEYS: instance lock, instance, state, then held locks.  ARGV: life in ms, token, then the held locks' tokens.
# Takes an instance's lock with its holder's other locks renewed, and reads the instance and the
# current generation of a source's state. Returns {0} (lock busy), {-1, name} (a held lock was lost),
# or {1, gen, doc ('' if none), source}.
_TAKE_INSTANCE_LOCK = _RENEW_HELD + """
local refused = take_lock(4)
if refused then
  return refused
end
local instance = redis.call('HMGET', KEYS[2], 'doc', 'source')
return {1, redis.call('HGET', KEYS[3], 'gen') or '0', instance[1] or '', instance[2] or ''}
"""


class Lease(Enum):
    HELD = "held"
    TAKEN = "taken by another watcher"


@dataclass(frozen=True)
class Published:
    changed: bool
    seq: int


@dataclass(frozen=True)
class Renewal:
    lease: Lease
    intact: bool


@dataclass(frozen=True)
class HostClaim:
    claimed: bool
    holder: str
    seq: int


@dataclass(frozen=True)
class StoredState:
    """A container's wanted state (None once the container is gone), its generation, and the time (on the
    Docker host's clock) of the Docker event that last changed it, if an event did."""
    state: ContainerState | None
    gen: str
    event_time: float | None


@dataclass(frozen=True)
class TrackedInstance:
    key: str
    document: dict[str, Any]
    source: str


@dataclass(frozen=True)
class DueHeartbeats:
    instance_keys: list[str]
    # When each was due, in Redis time.
    due: list[float]
    shortest_interval: float


@dataclass(frozen=True)
class HeartbeatTarget:
    key: str
    source: str
    # Its renewal interval in seconds (None: not recorded, the default applies).
    interval: int | None
    live: bool


@dataclass(frozen=True)
class PreLocked:
    """An instance whose lock was taken with its source's lock (with the same token), as read then."""

    instance: TrackedInstance
    token: str


@dataclass(frozen=True)
class ReconcileStart:
    """What a reconcile starts from, read as it took the source's lock: the stored state, the instances
    the source owns, and one of them locked already when the state wants none."""

    stored: StoredState
    tracked: dict[str, TrackedInstance]
    prelocked: PreLocked | None = None


@dataclass(frozen=True)
class InstanceClaim:
    """Read as an instance's lock was taken: the instance (None if not tracked) and the generation of
    the state of the source taking it now."""

    instance: TrackedInstance | None
    state_gen: str


@dataclass(frozen=True)
class Untracked:
    removed: bool
    claimants: tuple[str, ...]


@dataclass(frozen=True)
class AlbRecord:
    """An ALB instance as the registrar and heartbeater keep it: `document` is its registration while it has a
    healthy target; `health` what its target health says now; `registered` whether Eureka holds it."""

    key: str
    document: dict[str, Any]
    endpoint: AlbEndpoint
    health: InstanceStatus
    registered: bool

    @property
    def interval(self) -> int:
        return self.document["leaseInfo"]["renewalIntervalInSecs"]


def _stored_state(fields: list[str | None]) -> StoredState:
    doc, gen, event_time = fields
    return StoredState(parse_state(doc) if doc else None, gen or "0",
                       float(event_time) if event_time else None)


class Store:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._publish_state = client.register_script(_PUBLISH_STATE)
        self._renew_liveness = client.register_script(_RENEW_LIVENESS)
        self._claim_host = client.register_script(_CLAIM_HOST)
        self._mark_applied = client.register_script(_MARK_APPLIED)
        self._claim_job_flag = client.register_script(_CLAIM_JOB_FLAG)
        self._delete_if_equal = client.register_script(_DELETE_IF_EQUAL)
        self._claim_pending = client.register_script(_CLAIM_PENDING)
        self._claim_heartbeats = client.register_script(_CLAIM_HEARTBEATS)
        self._track = client.register_script(_TRACK)
        self._untrack = client.register_script(_UNTRACK)
        self._forget_host = client.register_script(_FORGET_HOST)
        self._alb_membership = client.register_script(_ALB_MEMBERSHIP)
        self._save_alb = client.register_script(_SAVE_ALB)
        self._withdraw_alb = client.register_script(_WITHDRAW_ALB)
        self._drop_alb = client.register_script(_DROP_ALB)
        self._retry_pending = client.register_script(_RETRY_PENDING)
        self._take_lock = client.register_script(_TAKE_LOCK)
        self._renew_locks = client.register_script(_RENEW_LOCKS)
        self._begin_reconcile = client.register_script(_BEGIN_RECONCILE)
        self._take_instance_lock = client.register_script(_TAKE_INSTANCE_LOCK)

    def now(self) -> float:
        """Redis server time, in seconds."""
        seconds, microseconds = self.redis.time()
        return seconds + microseconds / 1e6

    # --- watcher side ---------------------------------------------------------------------------

    def claim_host(self, host: str, token: str, ttl: int) -> HostClaim:
        """Take the lease on `host`'s identity for the watcher `token`. Not claimed when another
        watcher holds it; `holder` then is that watcher's token."""
        claimed, holder, seq = self._claim_host(keys=[keys.host_watcher(host), keys.host(host), keys.HOSTS],
                                                args=[token, ttl, host])
        return HostClaim(bool(claimed), holder, int(seq))

    def host_holder(self, host: str) -> str | None:
        return self.redis.get(keys.host_watcher(host))

    def publish_state(self, source: str, state: ContainerState | None, *, ttl: int, sweep_after: float,
                      force: bool = False, job_id: str = "", event_time: float | None = None) -> Published:
        """Store a container's wanted state (None: the container no longer exists) and set or drop its
        liveness entry. A change goes on the registrars' fast lane, and waits on the pending list until a
        registrar applied it (the sweep enqueues it as a job after `sweep_after` seconds). With `force`
        (re-register even if Redis says it is registered), the caller enqueues job `job_id`, which this
        records as the source's queued job."""
        host, _ = keys.split_source(source)
        vouched = state is not None and state.vouched
        doc = "" if state is None else state_json(state)
        changed, seq = self._publish_state(
            keys=[keys.state(source), keys.host_sources(host), keys.live(source), keys.PENDING, keys.host(host),
                  keys.job(keys.reconcile_job_name(source)), keys.PENDING_TRIES, keys.FAST_LANE],
            args=[doc, "1" if vouched else "0", ttl, source, sweep_after, job_id, "1" if force else "0",
                  "" if event_time is None else repr(event_time), defaults.FAST_LANE_LENGTH],
        )
        return Published(bool(changed), int(seq))

    def renew_liveness(self, host: str, token: str, sources: Iterable[str], ttl: int, expected_seq: int) -> Renewal:
        """Renew the host's watcher lease and the liveness entries of its vouched `sources`, and say
        whether Redis still holds every change the watcher published (`expected_seq`)."""
        lease, intact = self._renew_liveness(
            keys=[keys.host(host), keys.host_watcher(host), keys.HOSTS, *(keys.live(source) for source in sources)],
            args=[token, ttl, host, str(expected_seq)],
        )
        return Renewal(Lease.HELD if lease else Lease.TAKEN, bool(intact))

    def release_host(self, host: str, token: str) -> None:
        """Give up the lease on `host` (a watcher that stops cleanly), if `token` still holds it."""
        self._delete_if_equal(keys=[keys.host_watcher(host)], args=[token])

    def host_sources(self, host: str) -> set[str]:
        return self.redis.smembers(keys.host_sources(host))

    def is_host_source(self, source: str) -> bool:
        """True while `source` has a state on its host (running or exited, not yet removed)."""
        host, _ = keys.split_source(source)
        return bool(self.redis.sismember(keys.host_sources(host), source))

    def stopping(self, host: str) -> set[str]:
        """Ids of the host's containers that were sent their stop signal and have not died yet."""
        return self.redis.smembers(keys.host_stopping(host))

    def set_stopping(self, host: str, container_id: str, stopping: bool) -> None:
        if stopping:
            self.redis.sadd(keys.host_stopping(host), container_id)
        else:
            self.redis.srem(keys.host_stopping(host), container_id)

    # --- registrar side -------------------------------------------------------------------------

    def read_state(self, source: str) -> tuple[ContainerState | None, str]:
        """The wanted state (None once the container is gone) and its generation."""
        stored = self.stored_state(source)
        return stored.state, stored.gen

    def stored_state(self, source: str) -> StoredState:
        return _stored_state(self.redis.hmget(keys.state(source), "doc", "gen", "event_time"))

    def mark_applied(self, source: str, gen: str) -> bool:
        """Take `source` off the pending list, unless its state changed since generation `gen`."""
        return bool(self._mark_applied(keys=[keys.state(source), keys.PENDING, keys.PENDING_TRIES], args=[gen, source]))

    def claim_job(self, name: str, job_id: str) -> bool:
        """True when the caller should enqueue job `job_id` for `name`: no job for it is queued yet."""
        return bool(self._claim_job_flag(keys=[keys.job(name)], args=[job_id, Job.redis_job_namespace_prefix]))

    def release_job(self, name: str, job_id: str) -> None:
        """The job `job_id` for `name` has started: a change from now on needs a new job."""
        self._delete_if_equal(keys=[keys.job(name)], args=[job_id])

    def take_fast_lane(self, wait: float) -> str | None:
        """The source whose change has waited longest on the fast lane, waiting up to `wait` seconds for one."""
        taken = self.redis.brpop([keys.FAST_LANE], wait)
        return None if taken is None else taken[1]

    def claim_pending(self, limit: int) -> list[str]:
        """Sources whose wanted state is due for another attempt, each pushed back by its backoff."""
        return self._claim_pending(keys=[keys.PENDING, keys.PENDING_TRIES],
                                   args=[limit, defaults.SWEEP_FIRST_RETRY_SECONDS, defaults.SWEEP_MAX_RETRY_SECONDS])

    def retry_pending(self, source: str, seconds: float) -> None:
        """Make the next attempt at `source`'s state `seconds` from now, pending until applied (also when it
        was applied before: a forced reconcile that could not finish)."""
        self._retry_pending(keys=[keys.PENDING], args=[source, repr(seconds)])

    def pending(self) -> list[tuple[str, float]]:
        """Every source waiting for a registrar, with the time of its next attempt."""
        return self.redis.zrange(keys.PENDING, 0, -1, withscores=True)

    def tracked_instances(self, source: str) -> dict[str, TrackedInstance]:
        """The instances the registrar registered for `source` and still owns."""
        instance_keys = sorted(self.redis.smembers(keys.source_instances(source)))
        found = self.instances(instance_keys)
        return {key: instance for key, instance in found.items() if instance.source == source}

    def instance(self, key: str) -> TrackedInstance | None:
        return self.instances([key]).get(key)

    def track(self, key: str, source: str, document: dict[str, Any], interval: int) -> str:
        """Record that `source` registered `document` as instance `key`; its heartbeats start after
        `interval`. Returns the previous owner when another source had it ('' otherwise)."""
        previous = self._track(
            keys=[keys.instance(key), keys.source_instances(source), keys.HEARTBEAT_DUE, keys.HEARTBEAT_INTERVAL,
                  keys.instance_claimants(key)],
            args=[key, source, json.dumps(document, sort_keys=True), interval],
        )
        if previous and previous != source:
            self.redis.srem(keys.source_instances(previous), key)
        return previous

    def untrack(self, key: str, source: str) -> Untracked:
        """Forget instance `key` for `source`; not removed when another source owns it (left alone)."""
        removed, *claimants = self._untrack(
            keys=[keys.instance(key), keys.source_instances(source), keys.HEARTBEAT_DUE, keys.HEARTBEAT_INTERVAL,
                  keys.instance_claimants(key)],
            args=[key, source],
        )
        return Untracked(bool(removed), tuple(claimants))

    def add_claimant(self, key: str, source: str) -> bool:
        """Note that `source` wants instance `key`, which another source owns. True the first time."""
        return bool(self.redis.sadd(keys.instance_claimants(key), source))

    def drop_claimant(self, key: str, source: str) -> None:
        self.redis.srem(keys.instance_claimants(key), source)

    def host_is_served(self, host: str) -> bool:
        """True while a watcher holds `host`'s lease (it renews it with the liveness entries)."""
        return bool(self.redis.exists(keys.host_watcher(host)))

    def hosts_unseen_since(self, cutoff: float) -> list[tuple[str, float]]:
        """Hosts whose watcher last renewed before `cutoff` (Redis time), with that time."""
        return self.redis.zrangebyscore(keys.HOSTS, "-inf", cutoff, withscores=True)

    def host_ttl(self, host: str) -> int:
        return int(self.redis.hget(keys.host(host), "ttl") or 0)

    def forget_host(self, host: str, last_seen: float) -> bool:
        """Forget everything a host's watcher published, unless it was seen again after `last_seen`.
        Its instances must have been untracked first."""
        sources = sorted(self.host_sources(host))
        source_keys = [key for source in sources for key in (keys.state(source), keys.live(source))]
        return bool(self._forget_host(
            keys=[keys.HOSTS, keys.host(host), keys.host_sources(host), keys.host_stopping(host), keys.PENDING,
                  keys.PENDING_TRIES],
            args=[host, repr(last_seen), *source_keys],
        ))

    # --- ALB records (registrar and heartbeater) -----------------------------------------------

    def alb(self, key: str) -> AlbRecord | None:
        doc, endpoint, health, registered = self.redis.hmget(keys.alb(key), "doc", "endpoint", "health",
                                                             "registered")
        if doc is None or endpoint is None:
            return None
        return AlbRecord(key, json.loads(doc), parse_endpoint(endpoint),
                         InstanceStatus(health or InstanceStatus.STARTING), registered == "1")

    def alb_members(self, key: str) -> set[str]:
        return self.redis.smembers(keys.alb_members(key))

    def source_albs(self, source: str) -> set[str]:
        """The ALB instances `source` is a member of."""
        return self.redis.smembers(keys.source_albs(source))

    def live_sources(self, sources: Iterable[str]) -> set[str]:
        """Those of `sources` the watcher vouches for now."""
        ordered = sorted(sources)
        pipe = self.redis.pipeline(transaction=False)
        for source in ordered:
            pipe.exists(keys.live(source))
        return {source for source, live in zip(ordered, pipe.execute()) if live}

    def set_alb_membership(self, key: str, source: str, member: bool) -> None:
        """Make `source` a member of ALB `key`, or no longer one."""
        self._alb_membership(keys=[keys.alb_members(key), keys.source_albs(source)],
                             args=[key, source, "1" if member else "0"])

    def save_alb(self, key: str, document: dict[str, Any], endpoint: AlbEndpoint, health: InstanceStatus,
                 interval: int, *, registered: bool = True) -> None:
        """Record ALB `key`: its document, endpoint and health, and whether Eureka holds it (registered with
        `document` and the status `health` calls for). Its renewals start after `interval` unless it has a
        place in the schedule already."""
        self._save_alb(keys=[keys.alb(key), keys.HEARTBEAT_DUE, keys.HEARTBEAT_INTERVAL],
                       args=[keys.alb_schedule_entry(key), json.dumps(document, sort_keys=True),
                             endpoint_json(endpoint), health.value, interval, "1" if registered else "0"])

    def set_alb_health(self, key: str, health: InstanceStatus) -> None:
        self.redis.hset(keys.alb(key), "health", health.value)

    def withdraw_alb(self, key: str) -> bool:
        """Record that Eureka no longer holds ALB `key`; True when it had no members left and is forgotten."""
        return bool(self._withdraw_alb(keys=[keys.alb(key), keys.alb_members(key), keys.HEARTBEAT_DUE,
                                             keys.HEARTBEAT_INTERVAL], args=[keys.alb_schedule_entry(key)]))

    def drop_alb(self, key: str, members: Iterable[str]) -> None:
        """Forget ALB `key` and its memberships (its load balancer is gone); its `members` are due for a
        reconcile now."""
        ordered = sorted(members)
        self._drop_alb(keys=[keys.alb(key), keys.alb_members(key), keys.HEARTBEAT_DUE, keys.HEARTBEAT_INTERVAL,
                             keys.PENDING, *(keys.source_albs(source) for source in ordered)],
                       args=[key, keys.alb_schedule_entry(key), *ordered])

    # --- heartbeater side -----------------------------------------------------------------------

    def claim_heartbeats(self, limit: int) -> DueHeartbeats:
        """Claim the instances whose heartbeat is due now, each pushed back by its interval, with when
        each was due and the shortest of their intervals."""
        shortest, *due = self._claim_heartbeats(keys=[keys.HEARTBEAT_DUE, keys.HEARTBEAT_INTERVAL],
                                                args=[limit, defaults.DEFAULT_RENEWAL_INTERVAL_SECONDS])
        return DueHeartbeats(due[0::2], [float(score) for score in due[1::2]], float(shortest))

    def heartbeat_targets(self, instance_keys: list[str]) -> list[HeartbeatTarget]:
        """The still-tracked instances among `instance_keys`, each with its source, its renewal interval and
        whether the source is live. No document is read: a renewal needs none (a re-registration reads it
        under its lock)."""
        pipe = self.redis.pipeline(transaction=False)
        for key in instance_keys:
            pipe.hget(keys.instance(key), "source")
            pipe.hget(keys.HEARTBEAT_INTERVAL, key)
        answers = pipe.execute()
        found = [(key, source, interval) for key, source, interval in zip(instance_keys, answers[0::2], answers[1::2])
                 if source is not None]
        for _, source, _ in found:
            pipe.exists(keys.live(source))
        return [HeartbeatTarget(key, source, int(interval) if interval else None, bool(live))
                for (key, source, interval), live in zip(found, pipe.execute())]

    def is_live(self, source: str) -> bool:
        return bool(self.redis.exists(keys.live(source)))

    # --- readers (the status view): reads only, through the indexes, never SCAN or KEYS -----------

    def hosts(self) -> dict[str, float]:
        """Every host Redis knows, with the time (Redis) its watcher last renewed liveness."""
        return dict(self.redis.zrange(keys.HOSTS, 0, -1, withscores=True))

    def served_hosts(self, hosts: list[str]) -> dict[str, bool]:
        """Whether a watcher holds each host's lease now."""
        pipe = self.redis.pipeline(transaction=False)
        for host in hosts:
            pipe.exists(keys.host_watcher(host))
        return {host: bool(held) for host, held in zip(hosts, pipe.execute())}

    def sources_of(self, hosts: list[str]) -> dict[str, set[str]]:
        pipe = self.redis.pipeline(transaction=False)
        for host in hosts:
            pipe.smembers(keys.host_sources(host))
        return dict(zip(hosts, pipe.execute()))

    def stored_states(self, sources: list[str]) -> dict[str, StoredState]:
        pipe = self.redis.pipeline(transaction=False)
        for source in sources:
            pipe.hmget(keys.state(source), "doc", "gen", "event_time")
        return {source: _stored_state(fields) for source, fields in zip(sources, pipe.execute())}

    def liveness_left(self, sources: list[str]) -> dict[str, float | None]:
        """Seconds each source's liveness entry has left (None: it has none)."""
        pipe = self.redis.pipeline(transaction=False)
        for source in sources:
            pipe.pttl(keys.live(source))
        return {source: left / 1000 if left >= 0 else None for source, left in zip(sources, pipe.execute())}

    def instance_keys_of(self, sources: list[str]) -> dict[str, set[str]]:
        """The instance keys the registrar noted for each source (see `tracked_instances` for which it owns)."""
        pipe = self.redis.pipeline(transaction=False)
        for source in sources:
            pipe.smembers(keys.source_instances(source))
        return dict(zip(sources, pipe.execute()))

    def heartbeat_schedule(self) -> dict[str, float]:
        """Every registered instance, with the time (Redis) its next heartbeat is due."""
        return dict(self.redis.zrange(keys.HEARTBEAT_DUE, 0, -1, withscores=True))

    def claimants(self, instance_keys: list[str]) -> dict[str, set[str]]:
        """The sources refused each instance while its owner wants it."""
        pipe = self.redis.pipeline(transaction=False)
        for key in instance_keys:
            pipe.smembers(keys.instance_claimants(key))
        return {key: members for key, members in zip(instance_keys, pipe.execute()) if members}

    def pending_tries(self) -> dict[str, int]:
        return {source: int(tries) for source, tries in self.redis.hgetall(keys.PENDING_TRIES).items()}

    def instances(self, instance_keys: list[str]) -> dict[str, TrackedInstance]:
        """The tracked instances among `instance_keys`."""
        pipe = self.redis.pipeline(transaction=False)
        for key in instance_keys:
            pipe.hmget(keys.instance(key), "doc", "source")
        found = {}
        for key, (doc, source) in zip(instance_keys, pipe.execute()):
            if doc is not None:
                found[key] = TrackedInstance(key, json.loads(doc), source)
        return found

    def lock(self, name: str, timeout: float, blocking_timeout: float = defaults.LOCK_WAIT_SECONDS) -> redis.lock.Lock:
        return self.redis.lock(name, timeout=timeout, blocking_timeout=blocking_timeout)

    # --- locks held while writing to Eureka (see shared.locking) -----------------------------------
    # `held`: the (name, token) of the locks the caller holds already; they are renewed in the same step
    # (LockNotOwnedError if one of them is no longer the caller's). `life_ms`: a lock's life.

    def take_lock(self, name: str, token: str, life_ms: int, held: Sequence[tuple[str, str]] = ()) -> bool:
        """Take lock `name` for `token` unless another holder has it."""
        return _taken(self._take_lock(keys=[name, *(lock for lock, _ in held)],
                                      args=[life_ms, token, *(held_token for _, held_token in held)])) is not None

    def renew_locks(self, held: Sequence[tuple[str, str]], life_ms: int) -> None:
        """Give every held lock its full life again."""
        lost = self._renew_locks(keys=[lock for lock, _ in held], args=[life_ms, "", *(token for _, token in held)])
        if lost:
            raise LockNotOwnedError(f"lock {lost} expired or was taken over while this worker held it")

    def release_lock(self, name: str, token: str) -> bool:
        """Release lock `name` if `token` still holds it."""
        return bool(self._delete_if_equal(keys=[name], args=[token]))

    def begin_reconcile(self, source: str, job_id: str, lock: str, token: str, life_ms: int) -> ReconcileStart | None:
        """In one step: job `job_id` of `source` has started (its "queued" flag goes), and, unless another
        holder has it, the source lock is taken and what the reconcile starts from read. None: lock busy."""
        result = self._begin_reconcile(
            keys=[keys.job(keys.reconcile_job_name(source)), lock, keys.state(source), keys.source_instances(source)],
            args=[life_ms, token, job_id, keys.instance(""), keys.instance_lock(""), source])
        if not result[0]:
            return None
        _, doc, gen, event_time, locked, *rows = result
        tracked = {}
        for index in range(0, len(rows), 3):
            key, instance_doc, instance_source = rows[index:index + 3]
            if instance_source == source:
                tracked[key] = TrackedInstance(key, json.loads(instance_doc), instance_source)
        return ReconcileStart(_stored_state([doc or None, gen, event_time or None]), dict(sorted(tracked.items())),
                              PreLocked(tracked[locked], token) if locked else None)

    def read_reconcile(self, source: str) -> ReconcileStart:
        """What a reconcile starts from, read again (by the holder of the source lock)."""
        return ReconcileStart(self.stored_state(source), self.tracked_instances(source))

    def take_instance_lock(self, key: str, source: str, lock: str, token: str, life_ms: int,
                           held: Sequence[tuple[str, str]]) -> InstanceClaim | None:
        """Take instance `key`'s lock (and renew `held`), reading the instance and the generation of
        `source`'s state in the same step. None: lock busy."""
        result = _taken(self._take_instance_lock(
            keys=[lock, keys.instance(key), keys.state(source), *(held_lock for held_lock, _ in held)],
            args=[life_ms, token, *(held_token for _, held_token in held)]))
        if result is None:
            return None
        _, gen, doc, instance_source = result
        return InstanceClaim(TrackedInstance(key, json.loads(doc), instance_source) if doc else None, gen)


def _taken(result: list[Any]) -> list[Any] | None:
    """The answer of a script that takes a lock: None when another holder has it; LockNotOwnedError when
    one of the caller's held locks was lost."""
    if result[0] == -1:
        raise LockNotOwnedError(f"lock {result[1]} expired or was taken over while this worker held it")
    return result if result[0] else None
