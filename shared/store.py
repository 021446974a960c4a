"""Everything the components read from and write to Redis, as a few atomic operations.

Where several keys change together the change is one Lua script, so a crash or a concurrent worker
never sees half of it. Key names come from `shared.keys`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

import redis

from shared import keys
from shared.models import ContainerState

# KEYS: state, host sources, live, pending.  ARGV: doc ('' = container gone), vouched, ttl, source, due.
_PUBLISH_STATE = """
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
    redis.call('HSET', KEYS[1], 'doc', ARGV[1])
    redis.call('HINCRBY', KEYS[1], 'gen', 1)
    changed = 1
  end
  redis.call('SADD', KEYS[2], ARGV[4])
end
if changed == 1 then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
end
return changed
"""

# KEYS: state, pending.  ARGV: generation the registrar applied, source.
_MARK_APPLIED = """
local gen = redis.call('HGET', KEYS[1], 'gen') or '0'
if gen == ARGV[1] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

# KEYS: due zset[, interval hash].  ARGV: now, limit, delay for members without an interval.
_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  local interval = tonumber(ARGV[3])
  if KEYS[2] then
    interval = tonumber(redis.call('HGET', KEYS[2], member)) or interval
  end
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + interval, member)
end
return due
"""

# KEYS: instance, source instances, heartbeat due, heartbeat interval.
# ARGV: instance key, source, doc, interval, now.  Returns the previous owner ('' if none).
_TRACK = """
local previous = redis.call('HGET', KEYS[1], 'source') or ''
redis.call('HSET', KEYS[1], 'doc', ARGV[3], 'source', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], tonumber(ARGV[5]) + tonumber(ARGV[4]), ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
return previous
"""

# KEYS: instance, source instances, heartbeat due, heartbeat interval.  ARGV: instance key, source.
_UNTRACK = """
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'source') ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class TrackedInstance:
    key: str
    document: dict[str, Any]
    source: str


@dataclass(frozen=True)
class HeartbeatTarget:
    instance: TrackedInstance
    live: bool


def connect(url: str, *, decode: bool = True) -> redis.Redis:
    """A client for `url` (RQ needs `decode=False`)."""
    return redis.Redis.from_url(url, decode_responses=decode, socket_timeout=10, socket_connect_timeout=5,
                                health_check_interval=30)


class Store:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._publish_state = client.register_script(_PUBLISH_STATE)
        self._mark_applied = client.register_script(_MARK_APPLIED)
        self._claim_due = client.register_script(_CLAIM_DUE)
        self._track = client.register_script(_TRACK)
        self._untrack = client.register_script(_UNTRACK)

    # --- watcher side ---------------------------------------------------------------------------

    def publish_state(self, source: str, state: ContainerState | None, *, ttl: int, now: float,
                      sweep_after: float) -> bool:
        """Store a container's wanted state (None: the container no longer exists) and set or drop its
        liveness entry. True when the wanted state changed; the registrar then needs to apply it."""
        host, _ = keys.split_source(source)
        vouched = state is not None and state.vouched
        doc = "" if state is None else state.model_dump_json()
        changed = self._publish_state(
            keys=[keys.state(source), keys.host_sources(host), keys.live(source), keys.PENDING],
            args=[doc, "1" if vouched else "0", ttl, source, now + sweep_after],
        )
        return bool(changed)

    def renew_liveness(self, host: str, sources: Iterable[str], ttl: int) -> bool:
        """Renew the liveness entries of `host`'s `sources`. False when Redis no longer holds the host's
        states (it restarted empty, or was flushed): the host must publish them again."""
        pipe = self.redis.pipeline(transaction=False)
        for source in sources:
            pipe.set(keys.live(source), "1", ex=ttl)
        pipe.exists(keys.host_sources(host))
        return bool(pipe.execute()[-1])

    def drop_liveness(self, source: str) -> None:
        self.redis.delete(keys.live(source))

    def host_sources(self, host: str) -> set[str]:
        return self.redis.smembers(keys.host_sources(host))

    def is_host_source(self, source: str) -> bool:
        """True while `source` has a state on its host (running or exited, not yet removed)."""
        host, _ = keys.split_source(source)
        return bool(self.redis.sismember(keys.host_sources(host), source))

    # --- registrar side -------------------------------------------------------------------------

    def read_state(self, source: str) -> tuple[ContainerState | None, str]:
        """The wanted state (None once the container is gone) and its generation."""
        doc, gen = self.redis.hmget(keys.state(source), "doc", "gen")
        return (ContainerState.model_validate_json(doc) if doc else None), gen or "0"

    def mark_applied(self, source: str, gen: str) -> bool:
        """Take `source` off the pending list, unless its state changed since generation `gen`."""
        return bool(self._mark_applied(keys=[keys.state(source), keys.PENDING], args=[gen, source]))

    def claim_due(self, zset: str, now: float, limit: int, delay: float,
                  interval_hash: str | None = None) -> list[str]:
        """Members of `zset` due by `now`, each pushed back by its interval in `interval_hash` (or by
        `delay`) so that no other caller claims it again before then."""
        return self._claim_due(keys=[zset] + ([interval_hash] if interval_hash else []),
                               args=[now, limit, delay])

    def tracked_instances(self, source: str) -> dict[str, TrackedInstance]:
        """The instances the registrar registered for `source` and still owns."""
        instance_keys = sorted(self.redis.smembers(keys.source_instances(source)))
        found = self._instances(instance_keys)
        return {key: instance for key, instance in found.items() if instance.source == source}

    def instance(self, key: str) -> TrackedInstance | None:
        return self._instances([key]).get(key)

    def track(self, key: str, source: str, document: dict[str, Any], interval: int, now: float) -> str:
        """Record that `source` registered `document` as instance `key`; its heartbeats start after
        `interval`. Returns the previous owner when another source had it ('' otherwise)."""
        previous = self._track(
            keys=[keys.instance(key), keys.source_instances(source), keys.HEARTBEAT_DUE, keys.HEARTBEAT_INTERVAL],
            args=[key, source, json.dumps(document, sort_keys=True), interval, now],
        )
        if previous and previous != source:
            self.redis.srem(keys.source_instances(previous), key)
        return previous

    def untrack(self, key: str, source: str) -> bool:
        """Forget instance `key` for `source`; False when another source owns it (left alone)."""
        return bool(self._untrack(
            keys=[keys.instance(key), keys.source_instances(source), keys.HEARTBEAT_DUE, keys.HEARTBEAT_INTERVAL],
            args=[key, source],
        ))

    # --- heartbeater side -----------------------------------------------------------------------

    def heartbeat_targets(self, instance_keys: list[str]) -> list[HeartbeatTarget]:
        """The still-tracked instances among `instance_keys`, each with whether its source is live."""
        found = list(self._instances(instance_keys).values())
        pipe = self.redis.pipeline(transaction=False)
        for instance in found:
            pipe.exists(keys.live(instance.source))
        return [HeartbeatTarget(instance, bool(live)) for instance, live in zip(found, pipe.execute())]

    def is_live(self, source: str) -> bool:
        return bool(self.redis.exists(keys.live(source)))

    def _instances(self, instance_keys: list[str]) -> dict[str, TrackedInstance]:
        pipe = self.redis.pipeline(transaction=False)
        for key in instance_keys:
            pipe.hmget(keys.instance(key), "doc", "source")
        found = {}
        for key, (doc, source) in zip(instance_keys, pipe.execute()):
            if doc is not None:
                found[key] = TrackedInstance(key, json.loads(doc), source)
        return found

    def lock(self, name: str, timeout: float = 60, blocking_timeout: float = 30) -> redis.lock.Lock:
        return self.redis.lock(name, timeout=timeout, blocking_timeout=blocking_timeout)
