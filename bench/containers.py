"""Container scenarios: single containers started and killed one at a time, and storms of them at once.

Latency is measured from the Docker event's own timestamp (`timeNano`) to the arrival of the Eureka
request at the recording Eureka: `start` to the registration POST, `die` to the DELETE. Containers are
busybox `sleep` with a port published on 127.0.0.1 and a `SERVICE_NAME` of their own, so the Eureka app
in a request's path names the container. They are stopped with SIGKILL (`docker kill`): `kill` then
`die`, as when a process is killed or its host runs out of memory.

The single runs that give the latencies are not watched while they happen: on two cores, a bench
process woken by each Docker event or Redis notification competes with the system it measures. Their
event times are read from Docker's event log afterwards, and the bench first looks at Eureka a little
after each step. The breakdown of where the milliseconds go comes from separate runs that are watched
(`traced_runs`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable

import docker
import redis
from docker.models.containers import Container

from bench.parts import Parts, pid, rss_bytes
from shared import keys
from tests.support import wait_until

IMAGE = "local/busybox"
PARALLEL_DOCKER_CALLS = 32
WAIT_SECONDS = 30
# How long after a step of a single run the bench first asks Eureka for its records: well after a request
# normally arrives, so that the asking does not compete with the system for the cores.
FIRST_LOOK_SECONDS = 0.02


class DockerEvents:
    """The engine's container events, followed in a background thread: `timeNano` by container and action,
    and when each reached this client (a watcher cannot see an event sooner)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._times: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.delivery_ms: dict[str, list[float]] = defaultdict(list)
        self._stream = client.events(decode=True, filters={"type": "container"})
        threading.Thread(target=self._follow, name="docker-events", daemon=True).start()

    def _follow(self) -> None:
        try:
            for event in self._stream:
                received = time.time_ns()
                action = (event.get("Action") or "").split(":")[0]
                self._times[(event["Actor"]["ID"], action)].append(int(event["timeNano"]))
                self.delivery_ms[action].append((received - int(event["timeNano"])) / 1e6)
        except Exception:  # noqa: BLE001 - the stream is closed at the end of the bench
            return

    def first(self, container_id: str, action: str) -> int | None:
        times = self._times.get((container_id, action))
        return times[0] if times else None

    def wait_first(self, container_id: str, action: str) -> int:
        return wait_until(lambda: self.first(container_id, action), WAIT_SECONDS,
                          f"the {action} event of container {container_id[:12]}", interval=0.005)

    def close(self) -> None:
        self._stream.close()


class LaneWatch:
    """When changes went on the registrars' fast lane and when a registrar took them, from Redis keyspace
    notifications on the lane's list. Times are when this process heard of it, a fraction of a millisecond
    after it happened."""

    def __init__(self, parts: Parts) -> None:
        self.pushed: list[float] = []
        self.taken: list[float] = []
        self._redis = parts.redis
        self._redis.config_set("notify-keyspace-events", "Kl")
        # a client of its own: the listening thread must never read from a connection the pool hands out again
        self._listener = redis.Redis.from_url(parts.redis_server.url, decode_responses=True)
        self._pubsub = self._listener.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(f"__keyspace@0__:{keys.FAST_LANE}")
        threading.Thread(target=self._follow, name="lane-watch", daemon=True).start()

    def _follow(self) -> None:
        try:
            for message in self._pubsub.listen():
                heard = time.time()
                if message["data"] in ("rpush", "lpush"):
                    self.pushed.append(heard)
                elif message["data"] in ("lpop", "rpop"):
                    self.taken.append(heard)
        except Exception:  # noqa: BLE001 - closed at the end of the scenario
            return

    def change_between(self, event: float, arrival: float) -> tuple[float, float] | None:
        """(pushed, taken) of the last change pushed after `event` and taken by a registrar before `arrival`;
        None when the request came from an earlier change (which then read the newer state)."""
        taken = max((time_ for time_ in self.taken if time_ <= arrival), default=None)
        pushed = None if taken is None else max((time_ for time_ in self.pushed if time_ <= taken), default=None)
        return None if pushed is None or taken is None or pushed < event else (pushed, taken)

    def close(self) -> None:
        self._redis.config_set("notify-keyspace-events", "")
        self._pubsub.close()
        self._listener.close()


@dataclass
class Arrivals:
    """First arrival at Eureka (ns) of each app's registration and deletion."""

    posts: dict[str, int] = field(default_factory=dict)
    deletes: dict[str, int] = field(default_factory=dict)

    def add(self, records: Iterable[tuple[int, str, str]]) -> None:
        for arrival, method, path in records:
            parts = path.split("/")  # '', 'eureka', 'apps', APP[, instance id[, 'status']]
            if len(parts) < 4:
                continue
            if method == "POST":
                self.posts.setdefault(parts[3], arrival)
            elif method == "DELETE":
                self.deletes.setdefault(parts[3], arrival)


class Scenario:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.arrivals = Arrivals()
        self.client = docker.DockerClient(base_url=parts.engine.host, timeout=120,
                                          max_pool_size=PARALLEL_DOCKER_CALLS)

    def create(self, name: str) -> Container:
        return self.client.containers.create(IMAGE, ["sleep", "3600"], name=name,
                                             environment={"SERVICE_NAME": name},
                                             ports={"80/tcp": ("127.0.0.1", None)})

    def wait_arrivals(self, method: str, apps: list[str], timeout: float, first_look: float = 0.0) -> list[int]:
        found = self.arrivals.posts if method == "POST" else self.arrivals.deletes
        time.sleep(first_look)

        def all_arrived() -> bool:
            self.arrivals.add(self.parts.eureka.fetch())
            return all(app in found for app in apps)

        wait_until(all_arrived, timeout, f"{method} of {len(apps)} apps at Eureka", interval=0.01)
        return [found[app] for app in apps]

    def wait_gone(self, containers: list[Container]) -> None:
        """Until the watcher has published every container as removed and the registrars applied it."""
        states = [keys.state(self.source(container.id)) for container in containers]
        wait_until(lambda: not self.parts.any_exists(*states), WAIT_SECONDS, "removed containers' states to go",
                   interval=0.01)
        self.parts.wait_quiet()

    def event_time(self, container_id: str, action: str, since: float) -> int:
        """`timeNano` of the container's first `action` event since `since` (seconds), from Docker's event log."""
        stream = self.client.events(since=f"{since:.9f}", until=f"{time.time():.9f}", decode=True,
                                    filters={"type": "container", "container": container_id})
        for event in stream:
            if (event.get("Action") or "").split(":")[0] == action:
                stream.close()
                return int(event["timeNano"])
        raise RuntimeError(f"Docker's event log has no {action} event of container {container_id[:12]}")

    def source(self, container_id: str) -> str:
        return keys.source(self.parts.watcher_host, container_id)

    def close(self) -> None:
        self.client.close()


def single_runs(parts: Parts, runs: int) -> dict[str, Any]:
    """Start a container, wait for its registration, kill it, wait for its deletion, remove it: `runs` times,
    one container at a time, the system quiet before each step, nothing watching it meanwhile."""
    scenario = Scenario(parts)
    register, deregister = [], []
    commands: dict[str, Counter[str]] = {"start": Counter(), "kill": Counter(), "destroy": Counter()}
    cpu: dict[str, Counter[str]] = {phase: Counter() for phase in commands}
    seconds = {"start": 0.0, "kill": 0.0, "destroy": 0.0}
    try:
        for run in range(runs):
            app = f"bench-r{run}"
            container = scenario.create(app)
            parts.wait_quiet()
            for phase, act, method in (("start", container.start, "POST"), ("kill", container.kill, "DELETE"),
                                       ("destroy", container.remove, None)):
                before, cpu_before, started = parts.command_counts(), parts.cpu_seconds(), time.monotonic()
                since = time.time()
                act()
                if method is None:
                    scenario.wait_gone([container])
                else:
                    arrival = scenario.wait_arrivals(method, [app.upper()], WAIT_SECONDS, FIRST_LOOK_SECONDS)[0]
                    parts.wait_quiet()
                    event = scenario.event_time(container.id, "start" if method == "POST" else "die", since)
                    (register if method == "POST" else deregister).append((arrival - event) / 1e6)
                seconds[phase] += time.monotonic() - started
                commands[phase].update(_difference(parts.command_counts(), before))
                cpu[phase].update({name: used - cpu_before[name] for name, used in parts.cpu_seconds().items()})
    finally:
        scenario.close()
    idle_rate = parts.idle_command_rate
    per_phase = {phase: _net_per_run(commands[phase], idle_rate, seconds[phase], runs) for phase in commands}
    cpu_ms = {phase: {name: round(max(0.0, used - parts.idle_cpu_rate[name] * seconds[phase]) / runs * 1000, 2)
                      for name, used in cpu[phase].items()} for phase in cpu}
    return {"register_ms": register, "deregister_ms": deregister, "commands": per_phase, "cpu_ms": cpu_ms}


def traced_runs(parts: Parts, events: DockerEvents, runs: int) -> dict[str, dict[str, Any]]:
    """Single runs as above, watched as they happen (the Docker event stream, the fast lane's Redis
    notifications): where their milliseconds went (`_breakdown`)."""
    scenario = Scenario(parts)
    lane_watch = LaneWatch(parts)
    run_apps = []
    try:
        for run in range(runs):
            app = f"bench-t{run}"
            container = scenario.create(app)
            parts.wait_quiet()
            for act, method in ((container.start, "POST"), (container.kill, "DELETE")):
                act()
                scenario.wait_arrivals(method, [app.upper()], WAIT_SECONDS)
                parts.wait_quiet()
            container.remove()
            scenario.wait_gone([container])
            run_apps.append((app.upper(), container.id))
        return _breakdown(scenario, events, lane_watch, run_apps)
    finally:
        lane_watch.close()
        scenario.close()


def _difference(after: dict[str, int], before: dict[str, int]) -> Counter[str]:
    return Counter({name: calls - before.get(name, 0) for name, calls in after.items()
                    if calls - before.get(name, 0) > 0})


def _net_per_run(counts: Counter[str], idle_rate: dict[str, float], seconds: float, runs: int) -> dict[str, float]:
    """Commands per run of a phase, less what the idle system sends in the same time."""
    net = {name: (calls - idle_rate.get(name, 0.0) * seconds) / runs for name, calls in counts.items()}
    return {name: round(value, 2) for name, value in sorted(net.items()) if value >= 0.05}


def _breakdown(scenario: Scenario, events: DockerEvents, lane_watch: LaneWatch,
               run_apps: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Where each single run's milliseconds went: the watcher (event to the change on the fast lane), the
    lane (pushed to a registrar taking it), the registrar (taken to the request's arrival at Eureka). With
    how long Docker takes to hand an event to a client (this process's own event stream): part of the
    watcher's share that no watcher can save. A request made for an earlier change (the `kill` event's,
    which found the container dead when it was applied) is only counted."""
    result: dict[str, dict[str, Any]] = {
        step: {"docker_event_delivery": list(events.delivery_ms[action]), "watcher": [], "lane": [], "registrar": [],
               "by_an_earlier_change": 0}
        for step, action in (("register", "start"), ("deregister", "die"))}
    for app, container_id in run_apps:
        for step, action, arrival in (("register", "start", scenario.arrivals.posts[app]),
                                      ("deregister", "die", scenario.arrivals.deletes[app])):
            event = events.first(container_id, action)
            change = None if event is None else lane_watch.change_between(event / 1e9, arrival / 1e9)
            if change is None:
                result[step]["by_an_earlier_change"] += 1
                continue
            pushed, taken = change
            result[step]["watcher"].append((pushed - event / 1e9) * 1000)
            result[step]["lane"].append((taken - pushed) * 1000)
            result[step]["registrar"].append((arrival / 1e9 - taken) * 1000)
    return result


def storm(parts: Parts, events: DockerEvents, count: int) -> dict[str, Any]:
    """`count` containers started at once, then killed at once: time from the last `start` event until all
    are registered, and from the last `die` event until all are deleted; the watcher's memory meanwhile."""
    scenario = Scenario(parts)
    apps = [f"bench-s{index}" for index in range(count)]
    deadline = WAIT_SECONDS + count * 0.5
    try:
        with ThreadPoolExecutor(PARALLEL_DOCKER_CALLS) as pool:
            containers = list(pool.map(scenario.create, apps))
            parts.wait_quiet()
            list(pool.map(lambda container: container.start(), containers))
            posts = scenario.wait_arrivals("POST", [app.upper() for app in apps], deadline)
            starts = [events.wait_first(container.id, "start") for container in containers]
            parts.wait_quiet(deadline)
            watcher_rss = rss_bytes(pid(parts.watcher))
            registrar_rss = max(rss_bytes(pid(process)) for process in parts.registrars)
            list(pool.map(lambda container: container.kill(), containers))
            deletes = scenario.wait_arrivals("DELETE", [app.upper() for app in apps], deadline)
            dies = [events.wait_first(container.id, "die") for container in containers]
            parts.wait_quiet(deadline)
            list(pool.map(lambda container: container.remove(), containers))
            scenario.wait_gone(containers)
    finally:
        scenario.close()
    return {
        "containers": count,
        "start_spread_s": (max(starts) - min(starts)) / 1e9,
        "register_all_s": (max(posts) - max(starts)) / 1e9,
        "register_ms": [(post - start) / 1e6 for post, start in zip(posts, starts)],
        "die_spread_s": (max(dies) - min(dies)) / 1e9,
        "deregister_all_s": (max(deletes) - max(dies)) / 1e9,
        "deregister_ms": [(delete - die) / 1e6 for delete, die in zip(deletes, dies)],
        "watcher_rss_bytes": watcher_rss,
        "registrar_rss_bytes": registrar_rss,
    }
