"""`python -m bench` (`make bench`): the system's speed, scale and memory, measured on real parts.

Starts a private dockerd, a redis-server, the recording Eureka and the components (one watcher, two
registrar and two heartbeater workers), runs the scenarios, prints a table, writes `results.json` and
the charts. `--smoke` runs every scenario with small counts (a minute), for CI. Whatever happens,
everything it started is stopped and its containers removed.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from bench import containers, heartbeats, report
from bench.parts import Parts, loadavg, machine, pid, rss_bytes
from tests.support import python_module


@dataclass(frozen=True)
class Plan:
    runs: int
    traced_runs: int
    storm: int
    cycle_sizes: tuple[int, ...]
    interval: int
    window_cycles: int
    idle_seconds: float
    capacity_requests: int
    registrars: int = 2
    heartbeaters: int = 2

    @property
    def tolerance(self) -> float:
        """How late a renewal may be before it counts as missed: a tenth of the interval."""
        return self.interval / 10


FULL = Plan(runs=100, traced_runs=30, storm=200, cycle_sizes=(1000, 10000, 30000), interval=30, window_cycles=2,
            idle_seconds=5, capacity_requests=20000)
SMOKE = Plan(runs=3, traced_runs=2, storm=10, cycle_sizes=(100, 300, 1000), interval=5, window_cycles=2,
             idle_seconds=1, capacity_requests=2000)


def _interrupted(*_: object) -> NoReturn:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small counts, about a minute (CI)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="folder for results.json and the charts (default: bench/)")
    parser.add_argument("--runs", type=int, help="single-container runs (default 100, smoke 3)")
    parser.add_argument("--profile", action="store_true",
                        help="sample every component with py-spy; collapsed stacks in <out>/profiles/")
    args = parser.parse_args()
    plan = SMOKE if args.smoke else FULL
    if args.runs:
        plan = dataclasses.replace(plan, runs=args.runs)
    signal.signal(signal.SIGTERM, _interrupted)
    args.out.mkdir(parents=True, exist_ok=True)
    profile_dir = args.out / "profiles" if args.profile else None
    if profile_dir:
        shutil.rmtree(profile_dir, ignore_errors=True)
        profile_dir.mkdir()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        results = run(plan, workdir, profile_dir)
    except BaseException:
        print(f"bench failed; component logs are in {workdir}", file=sys.stderr)
        raise
    results["config"]["smoke"] = args.smoke
    print(report.table(report.write(results, args.out)))
    print(f"\nwrote {args.out / 'results.json'} and charts in {args.out / 'charts'}")
    if profile_dir:
        print(report.profiles(profile_dir))
    shutil.rmtree(workdir, ignore_errors=True)


def run(plan: Plan, workdir: Path, profile_dir: Path | None) -> dict[str, Any]:
    started = time.monotonic()
    load = {"start": loadavg()}
    results: dict[str, Any] = {"machine": machine(), "config": {**plan.__dict__, "tolerance_s": plan.tolerance},
                               "load": load}
    with Parts(workdir, registrars=plan.registrars, heartbeaters=plan.heartbeaters,
               profile_dir=profile_dir) as parts:
        results["machine"]["docker"] = parts.docker.version()["Version"]
        results["machine"]["redis"] = parts.redis.info("server")["redis_version"]
        results["eureka"] = eureka_capacity(parts, plan.capacity_requests)

        parts.start_system()
        parts.wait_quiet()
        time.sleep(plan.idle_seconds)
        footprint: dict[str, Any] = {"watcher_rss_idle_bytes": rss_bytes(pid(parts.watcher))}
        parts.measure_idle_commands(plan.idle_seconds)

        load["single"] = loadavg()
        results["single"] = containers.single_runs(parts, plan.runs)
        events = containers.DockerEvents(parts.docker)
        try:
            results["single"]["breakdown_ms"] = containers.traced_runs(parts, events, plan.traced_runs)
            load["storm"] = loadavg()
            results["storm"] = containers.storm(parts, events, plan.storm)
        finally:
            events.close()
        footprint["watcher_rss_storm_bytes"] = results["storm"].pop("watcher_rss_bytes")
        footprint["registrar_rss_bytes"] = results["storm"].pop("registrar_rss_bytes")

        load["heartbeats"] = loadavg()
        bench = heartbeats.HeartbeatBench(parts, max(plan.cycle_sizes), plan.interval)
        seeded = bench.seed()
        footprint["redis_bytes_per_instance"] = seeded.pop("redis_bytes_per_instance")
        cycles = [bench.cycle(size) for size in plan.cycle_sizes]
        steady = bench.steady(plan.window_cycles, plan.tolerance)
        footprint["heartbeater_rss_bytes"] = steady.pop("heartbeater_rss_bytes")
        results["heartbeats"] = {"seeding": seeded, "cycles": cycles, "steady": steady}
        results["footprint"] = footprint
        parts.eureka.fetch()
        results["eureka"]["service_us_whole_bench"] = [value / 1000 for value in parts.eureka.service_ns]
    load["end"] = loadavg()
    results["bench_seconds"] = round(time.monotonic() - started, 1)
    return results


def eureka_capacity(parts: Parts, requests: int) -> dict[str, Any]:
    """Requests a second the recording Eureka takes from a separate client process, and its own time per
    request: it must be far from what the bench asks of it."""
    done = subprocess.run(python_module("bench.loadgen", "--port", str(parts.eureka.port), "--requests",
                                        str(requests)), capture_output=True, text=True, timeout=300, check=True)
    load = report.json_line(done.stdout)
    parts.eureka.fetch()
    return {"server": "asyncio Protocol, one process (bench/recording_eureka.py)",
            "load_requests": load["requests"], "load_per_second": round(load["per_second"]),
            "service_us": [value / 1000 for value in parts.eureka.service_ns]}


if __name__ == "__main__":
    main()
