"""The real parts the bench runs on, started and always stopped: a private dockerd, a redis-server, the
recording Eureka, and the components as processes (`python -m watcher` / `registrar` / `heartbeater`).

Starting and stopping reuse the test harness (`tests/support.py`). Everything started is registered on an
`ExitStack`, so a failure or Ctrl-C still stops it all. Also here: what the kernel and Redis say about
those processes (resident memory, CPU time, command counts).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import docker
import redis
import requests
from rq import Queue, Worker
from rq.registry import StartedJobRegistry

from shared import keys, queues
from tests.support import DockerEngine, Process, RedisServer, free_port, python_module, wait_until

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class RecordingEureka:
    """The recording Eureka (bench/recording_eureka.py) in a process of its own, and its records so far."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/eureka"
        self.process = Process("recording-eureka", python_module("bench.recording_eureka", "--port",
                                                                 str(self.port)), log_dir)
        self.session = requests.Session()
        self.session.trust_env = False
        self.records: list[tuple[int, str, str]] = []
        self.service_ns: list[int] = []

    def start(self) -> RecordingEureka:
        self.process.start()
        wait_until(lambda: self.fetch() is not None, 15, "the recording Eureka to answer")
        return self

    def fetch(self) -> list[tuple[int, str, str]]:
        """Records that arrived since the last fetch (also added to `records`)."""
        answer = self.session.get(f"http://127.0.0.1:{self.port}/bench/records",
                                  params={"from": len(self.records)}, timeout=10).json()
        new = [(arrival, method, path) for arrival, method, path in answer["records"]]
        self.records.extend(new)
        self.service_ns = answer["service_ns"]
        return new

    def stop(self) -> None:
        self.session.close()
        self.process.stop()


class Parts:
    """Everything the bench starts. Use as a context manager: leaving it stops all of it."""

    def __init__(self, workdir: Path, *, registrars: int, heartbeaters: int, profile_dir: Path | None) -> None:
        self.workdir = workdir
        self.registrar_count = registrars
        self.heartbeater_count = heartbeaters
        self.profile_dir = profile_dir
        self._stack = contextlib.ExitStack()
        self.engine: DockerEngine
        self.redis_server: RedisServer
        self.eureka: RecordingEureka
        self.docker: docker.DockerClient
        self.redis: redis.Redis
        self.watcher: Process
        self.registrars: list[Process] = []
        self.heartbeaters: list[Process] = []
        self._started = 0
        # The bench's own Redis commands, taken out of the counts of the system's.
        self._own_commands: Counter[str] = Counter()
        self._rq_connection: redis.Redis
        self.watcher_host = socket.gethostname()
        # Commands a second the system sends to Redis while nothing happens, and CPU seconds a second each
        # kind of process spends then (measure_idle_commands).
        self.idle_command_rate: dict[str, float] = {}
        self.idle_cpu_rate: dict[str, float] = {}

    def __enter__(self) -> Parts:
        try:
            self.engine = DockerEngine().start()
            self._stack.callback(self.engine.stop)
            self.docker = docker.DockerClient(base_url=self.engine.host, timeout=120)
            self._stack.callback(self._remove_containers)
            self.redis_server = RedisServer(self.workdir).start()
            self._stack.callback(self.redis_server.stop)
            self.redis = redis.Redis.from_url(self.redis_server.url, decode_responses=True)
            self._stack.callback(self.redis.close)
            self._rq_connection = redis.Redis.from_url(self.redis_server.url)
            self._stack.callback(self._rq_connection.close)
            self.eureka = RecordingEureka(self.workdir).start()
            self._stack.callback(self.eureka.stop)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.redis_server.url, "EUREKA_URL": self.eureka.url,
                "DOCKER_HOST": self.engine.host, "LOG_LEVEL": "INFO", "REGISTRATOR_RETRY_INTERVAL": "200"}

    def start_component(self, module: str, *args: str) -> Process:
        self._started += 1
        # /metrics and /healthz served as in production, each on a port of its own (several workers run here).
        env = {**self.env, "METRICS_ADDRESS": "127.0.0.1", "METRICS_PORT": str(free_port())}
        process = Process(f"{module}-{self._started}", python_module(module, *args), self.workdir, env).start()
        spy = self._profile(process) if self.profile_dir is not None else None
        self._stack.callback(_stop, process, spy)
        return process

    def start_system(self) -> None:
        """Registrar and heartbeater pools, then the watcher once their workers listen."""
        self.registrars = [self.start_component("registrar") for _ in range(self.registrar_count)]
        self.heartbeaters = [self.start_component("heartbeater") for _ in range(self.heartbeater_count)]
        wait_until(lambda: len(self.workers()) == self.registrar_count + self.heartbeater_count, 60,
                   "registrar and heartbeater workers to listen")
        self.watcher = self.start_component("watcher", "-hostname", self.watcher_host)
        wait_until(lambda: "re-synced" in self.watcher.log(), 60, "the watcher's first re-sync")

    def workers(self) -> list[Worker]:
        return Worker.all(connection=self._rq_connection)

    def queue(self, name: str) -> Queue:
        return Queue(name, connection=self._rq_connection)

    def quiet(self, queue_name: str = queues.REGISTRAR_QUEUE) -> bool:
        """True when no state waits for a registrar and no job of `queue_name` is queued or running."""
        queue = self.queue(queue_name)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(keys.PENDING)
        pipe.llen(queue.key)
        pipe.zcard(StartedJobRegistry(queue=queue).key)
        self._own_commands.update({"zcard": 2, "llen": 1})
        return not any(pipe.execute())

    def wait_quiet(self, timeout: float = 60) -> None:
        wait_until(self.quiet, timeout, "the registrars to apply every published state", interval=0.01)

    def any_exists(self, *names: str) -> bool:
        self._own_commands["exists"] += 1
        return bool(self.redis.exists(*names))

    def measure_idle_commands(self, seconds: float) -> None:
        """What the idle system sends to Redis per second (heartbeater ticks, sweeps, liveness renewals,
        RQ's own upkeep), and the CPU it spends, to be taken out of what is counted for an event."""
        before, cpu_before, started = self.command_counts(), self.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        after, cpu_after, elapsed = self.command_counts(), self.cpu_seconds(), time.monotonic() - started
        self.idle_command_rate = {name: (calls - before.get(name, 0)) / elapsed for name, calls in after.items()
                                  if calls > before.get(name, 0)}
        self.idle_cpu_rate = {name: (cpu_after[name] - cpu_before[name]) / elapsed for name in cpu_after}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time so far of the watcher, the registrars together, and Redis."""
        return {"watcher": cpu_seconds(pid(self.watcher)),
                "registrars": sum(cpu_seconds(pid(process)) for process in self.registrars),
                "redis": self.redis_cpu_seconds()}

    def command_counts(self) -> dict[str, int]:
        """Calls per Redis command so far, without the bench's own reads."""
        stats = self._info("commandstats")
        counts = Counter({name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()})
        counts.subtract(self._own_commands)
        return {name: calls for name, calls in counts.items() if calls > 0}

    def redis_cpu_seconds(self) -> float:
        cpu = self._info("cpu")
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    def redis_memory(self) -> int:
        return int(self._info("memory")["used_memory"])

    def _info(self, section: str) -> dict[str, Any]:
        self._own_commands["info"] += 1
        return self.redis.info(section)

    def _profile(self, process: Process) -> subprocess.Popen[bytes]:
        """py-spy sampling `process` until it exits, then writing its stacks (collapsed, one per line)."""
        assert self.profile_dir is not None and process.popen is not None
        output = self.profile_dir / f"{process.name}.txt"
        return subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                                 str(process.popen.pid), "--rate", "100", "--format", "raw", "--output",
                                 str(output)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    def _remove_containers(self) -> None:
        for container in self.docker.containers.list(all=True):
            container.remove(force=True)
        self.docker.close()


def _stop(process: Process, spy: subprocess.Popen[bytes] | None) -> None:
    process.stop()
    if spy is not None:  # it ends with its target, once it has written what it sampled
        try:
            spy.wait(15)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def pid(process: Process) -> int:
    assert process.popen is not None
    return process.popen.pid


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": os.uname().release,
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": sys.version.split()[0]}


def loadavg() -> list[float]:
    return [float(value) for value in Path("/proc/loadavg").read_text().split()[:3]]
