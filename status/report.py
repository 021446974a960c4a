"""The status view's rules: one row per instance (wanted by a container, registered, or refused) from a
`Snapshot`, with why anything differs between what the container wants, what the registrar registered, what
Eureka holds and who vouches for it; as a table for people and as JSON for scripts. Pure: no I/O."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from shared import keys, logs
from shared.models import InstanceStatus, Phase
from status.snapshot import Snapshot, wanted_instances

MISSING = "missing"
UNKNOWN = "?"


@dataclass(frozen=True)
class Pending:
    since_seconds: float | None  # since the Docker event behind the state (None: published by a re-sync)
    tries: int
    next_try_in_seconds: float


@dataclass(frozen=True)
class Row:
    host: str
    container_id: str
    container_name: str
    instance: str
    # The status the container's state wants the instance in; None: not wanted (container exited or gone).
    wanted: str | None
    # Whether the registrar registered it for this container (and still holds it as its owner).
    registered: bool
    # Another container's source owning the instance, when one does.
    owner: str | None
    # The status Eureka holds; "missing": Eureka does not know it; "?": Eureka was not read.
    eureka: str
    liveness_ttl_seconds: float | None
    # From Eureka's lease: when it was last renewed (None: not since it was registered) and when Eureka lets it
    # expire without another renewal.
    last_heartbeat_seconds_ago: float | None
    lease_expires_in_seconds: float | None
    # From Redis: when a heartbeater renews it next.
    next_heartbeat_in_seconds: float | None
    pending: Pending | None
    reasons: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.reasons


def rows(snapshot: Snapshot) -> list[Row]:
    wanted = {source: wanted_instances(stored.state) for source, stored in snapshot.states.items()}
    pairs = {(source, key) for source, keys_wanted in wanted.items() for key in keys_wanted}
    pairs |= {(instance.source, key) for key, instance in snapshot.instances.items()}
    # A refused claimant whose container no longer wants the instance stays in Redis until the next refusal.
    pairs |= {(source, key) for key, claimants in snapshot.claimants.items() for source in claimants
              if key in wanted.get(source, {})}
    found = [_row(snapshot, source, key, wanted.get(source, {}).get(key)) for source, key in pairs]
    return sorted(found, key=lambda row: (row.host, row.container_name, row.container_id, row.instance))


def _row(snapshot: Snapshot, source: str, key: str, wanted: str | None) -> Row:
    host, container_id = keys.split_source(source)
    stored = snapshot.states.get(source)
    state = stored.state if stored else None
    instance = snapshot.instances.get(key)
    registered = instance is not None and instance.source == source
    owner = instance.source if instance is not None and not registered else None
    name = state.container_name if state else _container_name(instance.document if registered else None)
    eureka = _eureka_status(snapshot, key)
    lease = _Lease.of((snapshot.eureka.records.get(key) if snapshot.eureka else None) or {}, snapshot.local_now)
    pending = None
    if source in snapshot.pending:
        event_time = stored.event_time if stored else None
        pending = Pending(None if event_time is None else _round(max(0.0, snapshot.local_now - event_time)),
                          snapshot.tries.get(source, 0), _round(snapshot.pending[source] - snapshot.redis_now))
    facts = _Facts(snapshot, source, host, wanted, registered, owner, eureka, snapshot.liveness_left.get(source),
                   pending, state.phase if state else None)
    return Row(
        host=host, container_id=container_id[:12], container_name=(name or "").lstrip("/"), instance=key,
        wanted=wanted, registered=registered, owner=owner, eureka=eureka,
        liveness_ttl_seconds=facts.live, last_heartbeat_seconds_ago=lease.renewed_ago,
        lease_expires_in_seconds=lease.expires_in,
        next_heartbeat_in_seconds=(_round(snapshot.next_heartbeat[key] - snapshot.redis_now)
                                   if registered and key in snapshot.next_heartbeat else None),
        pending=pending, reasons=tuple(_reasons(facts)))


@dataclass(frozen=True)
class _Lease:
    renewed_ago: float | None
    expires_in: float | None

    @classmethod
    def of(cls, record: dict[str, Any], now: float) -> _Lease:
        """Netflix Eureka's lease (Lease.java): a renewal sets `lastUpdateTimestamp` to the renewal time plus
        `durationInSecs`, and reads show it as `lastRenewalTimestamp` (a registration sets it to its own time);
        the lease expires `durationInSecs` after it. The dev Eureka does the same by default."""
        lease = record.get("leaseInfo") or {}
        updated, registered = lease.get("lastRenewalTimestamp"), lease.get("registrationTimestamp")
        duration = lease.get("durationInSecs")
        if not isinstance(updated, (int, float)) or not isinstance(duration, (int, float)) or not updated:
            return cls(None, None)
        expires_in = _round(updated / 1000 + duration - now)
        if isinstance(registered, (int, float)) and updated <= registered:
            return cls(None, expires_in)
        return cls(_round(max(0.0, now - (updated / 1000 - duration))), expires_in)


@dataclass(frozen=True)
class _Facts:
    snapshot: Snapshot
    source: str
    host: str
    wanted: str | None
    registered: bool
    owner: str | None
    eureka: str
    live: float | None
    pending: Pending | None
    phase: Phase | None


def _reasons(facts: _Facts) -> list[str]:
    """Why what Eureka holds is not simply what the container wants, in the order a person asks."""
    reasons = []
    if facts.wanted is not None and facts.owner is not None:
        owner_state = facts.snapshot.states.get(facts.owner)
        owner_name = owner_state.state.container_name if owner_state and owner_state.state else None
        reasons.append(f"refused: instance owned by {logs.describe(facts.owner, owner_name)}")
    elif facts.wanted is not None and not facts.registered:
        reasons.append("not registered yet")
    elif facts.wanted is None and facts.registered:
        gone = {None: "container removed", Phase.EXITED: "container exited"}.get(facts.phase, "no longer wanted")
        reasons.append(f"{gone}: deregistration pending")
    if facts.pending is not None:
        reasons.append(_pending(facts.pending))
    if facts.registered and facts.wanted is not None:
        if facts.eureka == MISSING:
            reasons.append("missing in Eureka" + ("; the next heartbeat registers it again" if facts.live else ""))
        elif facts.eureka not in (UNKNOWN, facts.wanted):
            reasons.append(f"Eureka holds {facts.eureka}, wanted {facts.wanted}")
    if facts.registered and facts.live is None:
        if facts.wanted == InstanceStatus.DOWN:
            reasons.append("not vouched: container DOWN (no heartbeats: its lease expires)")
        elif facts.eureka not in (MISSING, UNKNOWN):
            reasons.append("stale in Eureka: nobody vouches (no heartbeats: its lease expires)"
                           + _watcher_gone(facts))
        else:
            reasons.append("not vouched" + _watcher_gone(facts))
    return reasons


def _watcher_gone(facts: _Facts) -> str:
    if facts.snapshot.served.get(facts.host, False):
        return ""
    seen = facts.snapshot.last_seen.get(facts.host)
    ago = "" if seen is None else f", last seen {_seconds(facts.snapshot.redis_now - seen)} ago"
    return f"; the watcher of {facts.host} is gone{ago}"


def _pending(pending: Pending) -> str:
    since = "" if pending.since_seconds is None else f" since {_seconds(pending.since_seconds)}"
    retried = f", retried {pending.tries} time{'s' if pending.tries > 1 else ''}" if pending.tries else ""
    return f"pending{since}{retried}, next try in {_seconds(max(0.0, pending.next_try_in_seconds))}"


def _eureka_status(snapshot: Snapshot, key: str) -> str:
    if snapshot.eureka is None or key not in snapshot.eureka.records:
        return UNKNOWN
    record = snapshot.eureka.records[key]
    return MISSING if record is None else str(record.get("status", UNKNOWN))


def _container_name(document: dict[str, Any] | None) -> str | None:
    return ((document or {}).get("metadata") or {}).get("container-name")


def _round(seconds: float) -> float:
    return round(seconds, 1)


def _seconds(seconds: float) -> str:
    if seconds < 100:
        return f"{seconds:.0f}s"
    minutes = seconds / 60
    return f"{minutes:.0f}m" if minutes < 100 else f"{minutes / 60:.1f}h"


COLUMNS = ("HOST", "CONTAINER", "INSTANCE", "WANTED", "EUREKA", "TTL", "HEARTBEAT", "WHY")


def table(found: Sequence[Row], trouble: str | None = None) -> str:
    """A fixed-width table, one line per instance; names are printed with control characters escaped."""
    lines = [[_cell(value) for value in _cells(row)] for row in found]
    widths = [max(len(line[column]) for line in [list(COLUMNS), *lines]) for column in range(len(COLUMNS) - 1)]
    text = [_line(COLUMNS, widths)] + [_line(line, widths) for line in lines]
    if not found:
        text.append("(no instances)")
    if trouble:
        text.append(trouble)
    return "\n".join(text) + "\n"


def _cells(row: Row) -> tuple[str, ...]:
    heartbeat = "-"
    if row.last_heartbeat_seconds_ago is not None:
        heartbeat = f"{_seconds(row.last_heartbeat_seconds_ago)} ago"
    elif row.next_heartbeat_in_seconds is not None:
        heartbeat = f"due in {_seconds(max(0.0, row.next_heartbeat_in_seconds))}"
    wanted = row.wanted or "-"
    if row.wanted is not None and row.owner is not None:
        wanted += " (refused)"
    return (row.host, f"{row.container_name or '?'} ({row.container_id})", row.instance, wanted, row.eureka,
            "-" if row.liveness_ttl_seconds is None else _seconds(row.liveness_ttl_seconds), heartbeat,
            "; ".join(row.reasons) or "ok")


def _cell(value: str) -> str:
    return logs.escape_control_characters(value)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join([cell.ljust(width) for cell, width in zip(cells, widths)] + [cells[-1]]).rstrip()


def as_json(found: Sequence[Row], trouble: str | None = None) -> str:
    """`{"instances": [...], "eureka_trouble": null}`: every row's fields, `ok` and `reasons` included."""
    instances = [{**asdict(row), "reasons": list(row.reasons), "ok": row.ok} for row in found]
    return json.dumps({"instances": instances, "eureka_trouble": trouble}, indent=2) + "\n"
