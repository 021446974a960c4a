"""Noticing a Docker event stream that stalled without an error: it stays open, and no events come.

At each liveness renewal the watcher already lists every container. A container whose listed state
disagrees with what the watcher last published for it (running but published as exited or not at all,
exited but published as running, gone but still published) is normal for a moment: its event may be
on its way. The same container disagreeing at two renewals in a row is not: the events were lost.
A pure comparison; the caller reconnects the stream and re-syncs.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from shared.models import Phase

# Listed states counted as running: a paused container still runs (and is published as DOWN).
RUNNING_STATES = frozenset({"running", "paused"})


def disagreements(listing: Iterable[Mapping[str, Any]], published: Mapping[str, Phase]) -> set[str]:
    """Ids of containers whose state in Docker's `listing` differs from the `published` phase."""
    listed = {entry["Id"]: entry.get("State") in RUNNING_STATES for entry in listing}
    found = set()
    for container_id, running in listed.items():
        phase = published.get(container_id)
        if running != (phase is Phase.RUNNING) and (running or phase is not None):
            found.add(container_id)
    found.update(container_id for container_id in published if container_id not in listed)
    return found


class StallDetector:
    def __init__(self) -> None:
        self._previous: set[str] = set()

    def check(self, listing: Iterable[Mapping[str, Any]], published: Mapping[str, Phase]) -> set[str]:
        """The containers that disagreed at this check and the one before: non-empty means stalled."""
        current = disagreements(listing, published)
        persistent, self._previous = current & self._previous, current
        return persistent

    def reset(self) -> None:
        self._previous = set()
