"""What the bench measured, as `results.json`, a table and charts."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from bench.stats import slope_through_origin, summary

MB = 2**20
# Every figure results.json holds (dotted paths); the smoke test checks they are all there.
FIGURES = (
    "register_ms.p50", "register_ms.p90", "register_ms.p99",
    "deregister_ms.p50", "deregister_ms.p90", "deregister_ms.p99",
    "storm.containers", "storm.register_all_s", "storm.deregister_all_s",
    "heartbeats.steady.instances", "heartbeats.steady.renewals_per_s", "heartbeats.steady.missed",
    "heartbeats.steady.heartbeater_cpu_ms_per_1000", "heartbeats.cycle_s_per_1000",
    "footprint.watcher_rss_idle_mb", "footprint.watcher_rss_storm_mb", "footprint.registrar_rss_mb",
    "footprint.heartbeater_rss_mb", "footprint.redis_bytes_per_instance",
    "redis_commands.per_docker_event", "redis_commands.per_heartbeat", "cpu_ms_per_run.start.registrars",
    "eureka.load_per_second", "load.end",
)
# The Go registrator this project replaces, measured on this kind of machine (issue 11).
GO_REGISTRATOR = {"register_p50_ms": 6.0, "deregister_p50_ms": 1.7, "rss_idle_mb": 10, "rss_60_containers_mb": 15}


def figure(results: dict[str, Any], path: str) -> Any:
    value: Any = results
    for part in path.split("."):
        value = value[part]
    return value


def json_line(text: str) -> dict[str, Any]:
    return json.loads(text.strip().splitlines()[-1])


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """The results as written: samples summarized (single-run latencies kept whole for the charts)."""
    single, storm, hb = raw["single"], raw["storm"], raw["heartbeats"]
    commands = single["commands"]
    per_phase = {phase: round(sum(counts.values()), 1) for phase, counts in commands.items()}
    steady = {**hb["steady"], "lateness_s": summary(hb["steady"]["lateness_s"], 3)}
    cycles = hb["cycles"]
    sizes = [cycle["instances"] for cycle in cycles]
    cycle_slope = slope_through_origin(sizes, [cycle["cycle_s"] for cycle in cycles])
    footprint = {name.replace("_bytes", "_mb"): round(value / MB, 1)
                 for name, value in raw["footprint"].items() if "_rss_" in name}
    footprint["redis_bytes_per_instance"] = round(raw["footprint"]["redis_bytes_per_instance"])
    return {
        "machine": raw["machine"], "config": raw["config"], "load": raw["load"], "bench_seconds": raw["bench_seconds"],
        "eureka": raw["eureka"],
        "register_ms": summary(single["register_ms"]),
        "deregister_ms": summary(single["deregister_ms"]),
        "breakdown_ms": {step: {part: summary(values) if isinstance(values, list) else values
                                for part, values in parts.items()}
                         for step, parts in single["breakdown_ms"].items()},
        "storm": {**{name: value for name, value in storm.items() if not name.endswith("_ms")},
                  "register_ms": summary(storm["register_ms"]), "deregister_ms": summary(storm["deregister_ms"])},
        "heartbeats": {"seeding": hb["seeding"], "cycles": cycles, "steady": steady,
                       "cycle_s_per_1000": round(cycle_slope * 1000, 3)},
        "footprint": footprint,
        "redis_commands": {
            "per_docker_event": round(sum(per_phase.values()) / 4, 1),
            "per_start": per_phase["start"], "per_kill_and_die": per_phase["kill"],
            "per_destroy": per_phase["destroy"],
            "per_heartbeat": round(steady["redis_commands_per_renewal"], 2),
            "by_command_per_run": commands,
        },
        # CPU per single run (less what the idle system spends in the same time), by step: `start`, `kill`
        # (the kill and die events), `destroy`; per process kind.
        "cpu_ms_per_run": single["cpu_ms"],
        "samples": {"register_ms": single["register_ms"], "deregister_ms": single["deregister_ms"],
                    "storm_register_ms": storm["register_ms"], "storm_deregister_ms": storm["deregister_ms"]},
    }


def write(raw: dict[str, Any], out: Path) -> dict[str, Any]:
    results = summarize(raw)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    charts(results, out / "charts")
    return results


def _ms(stats: dict[str, float]) -> str:
    return f"{stats['p50']:.1f} / {stats['p90']:.1f} / {stats['p99']:.1f}"


def _cpu(per_run: dict[str, dict[str, float]]) -> str:
    return ", ".join(" / ".join(f"{per_run[phase][name]:.1f}" for name in ("watcher", "registrars", "redis"))
                     for phase in ("start", "kill"))


def table(results: dict[str, Any]) -> str:
    storm, steady, foot = results["storm"], results["heartbeats"]["steady"], results["footprint"]
    cycles = " / ".join(f"{cycle['cycle_s']:.1f}" for cycle in results["heartbeats"]["cycles"])
    sizes = " / ".join(f"{cycle['instances'] // 1000 or cycle['instances']}"
                       + ("k" if cycle["instances"] >= 1000 else "") for cycle in results["heartbeats"]["cycles"])
    commands = results["redis_commands"]
    rows = [
        ("figure", "measured", "target", "Go registrator"),
        ("register, start event -> POST, p50 / p90 / p99 ms", _ms(results["register_ms"]), "<= 5 / - / <= 20",
         f"{GO_REGISTRATOR['register_p50_ms']} (median)"),
        ("deregister, die event -> DELETE, p50 / p90 / p99 ms", _ms(results["deregister_ms"]), "<= 5 / - / <= 20",
         f"{GO_REGISTRATOR['deregister_p50_ms']} (median)"),
        (f"storm: {storm['containers']} started, last start -> all registered, s", f"{storm['register_all_s']:.2f}",
         "<= 1", ""),
        (f"storm: {storm['containers']} killed, last die -> all deleted, s", f"{storm['deregister_all_s']:.2f}",
         "<= 1", ""),
        ("storm: Docker took, first to last start / die, s",
         f"{storm['start_spread_s']:.1f} / {storm['die_spread_s']:.1f}", "", ""),
        ("storm: each container, register / deregister p50 / p99 ms",
         f"{storm['register_ms']['p50']:.0f} / {storm['register_ms']['p99']:.0f}, "
         f"{storm['deregister_ms']['p50']:.0f} / {storm['deregister_ms']['p99']:.0f}", "", ""),
        (f"heartbeats: {steady['instances']} due every {steady['interval_s']} s, renewals/s",
         f"{steady['renewals_per_s']:.0f} (needed {steady['needed_per_s']:.0f})", f"{steady['needed_per_s']:.0f}", ""),
        (f"heartbeats: missed (later than interval + {steady['tolerance_s']:g} s)",
         f"{steady['missed']} ({steady['renewals']} renewals)", "0", ""),
        ("heartbeater CPU per 1,000 renewals, ms", f"{steady['heartbeater_cpu_ms_per_1000']:.0f}", "<= 300", ""),
        (f"heartbeat cycle, all due at once, {sizes} instances, s", cycles, "linear", ""),
        ("watcher RSS idle / with storm containers, MB",
         f"{foot['watcher_rss_idle_mb']} / {foot['watcher_rss_storm_mb']}", "- / <= 40",
         f"{GO_REGISTRATOR['rss_idle_mb']} / {GO_REGISTRATOR['rss_60_containers_mb']} (60)"),
        ("registrar / heartbeater RSS, MB", f"{foot['registrar_rss_mb']} / {foot['heartbeater_rss_mb']}", "", ""),
        ("Redis bytes per instance", f"{foot['redis_bytes_per_instance']}", "", ""),
        ("Redis commands per Docker event / per heartbeat",
         f"{commands['per_docker_event']} / {commands['per_heartbeat']}", "", ""),
        ("CPU per start, kill+die: watcher / registrars / Redis, ms", _cpu(results["cpu_ms_per_run"]), "", ""),
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    eureka = results["eureka"]
    lines.append(f"\nrecording Eureka: {eureka['load_per_second']} requests/s from a separate load process; "
                 f"its own time per request p50 / p99 / max {' / '.join(f'{v:.0f}' for v in eureka['service_us'])} us; "
                 f"busy {steady['eureka_busy_fraction']:.0%} of a core during the heartbeats")
    lines.append(f"load average: start {results['load']['start']}, end {results['load']['end']}; "
                 f"{results['machine']['cpus']} CPUs; bench took {results['bench_seconds']} s")
    return "\n".join(lines)


def charts(results: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    folder.mkdir(parents=True, exist_ok=True)
    samples = results["samples"]
    figure_, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for axis, title, pairs in (
            (axes[0], f"single containers ({results['register_ms']['n']} runs)",
             (("register: start -> POST", samples["register_ms"]),
              ("deregister: die -> DELETE", samples["deregister_ms"]))),
            (axes[1], f"storm of {results['storm']['containers']} containers",
             (("register: start -> POST", samples["storm_register_ms"]),
              ("deregister: die -> DELETE", samples["storm_deregister_ms"])))):
        for label, values in pairs:
            ordered = sorted(values)
            axis.step(ordered, [(index + 1) / len(ordered) for index in range(len(ordered))], where="post", label=label)
        for target, style, label in ((5, ":", "target p50: 5 ms"), (20, "--", "target p99: 20 ms")):
            axis.axvline(target, color="grey", linestyle=style, linewidth=1, label=label)
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(_two_and_five))
        axis.set_xlabel("ms from the Docker event to the request at Eureka (log scale)")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel("share of containers")
    figure_.tight_layout()
    figure_.savefig(folder / "latency.png", dpi=90)
    plt.close(figure_)

    cycles = results["heartbeats"]["cycles"]
    sizes = [cycle["instances"] for cycle in cycles]
    figure_, axis = plt.subplots(figsize=(6.5, 4.2))
    axis.plot(sizes, [cycle["cycle_s"] for cycle in cycles], "o-", label="measured: N due at once, 2 workers")
    slope = results["heartbeats"]["cycle_s_per_1000"] / 1000
    axis.plot([0, max(sizes)], [0, slope * max(sizes)], ":", label=f"linear fit: {slope * 1000:.2f} s per 1,000")
    axis.plot([0, max(sizes)], [0, max(sizes) / 1000], "--", color="grey", label="target: 1,000 renewals/s")
    axis.set_xlabel("instances N")
    axis.set_ylabel("seconds for N renewals")
    axis.set_title("heartbeat cycle time against instance count")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure_.tight_layout()
    figure_.savefig(folder / "heartbeat-cycles.png", dpi=90)
    plt.close(figure_)


def profiles(folder: Path, top: int = 20) -> str:
    """The functions py-spy saw most often on the CPU, per component: by share of samples with the function
    anywhere on the stack (inclusive) and at the top of it (self). Files hold collapsed stacks:
    `frame;frame;... count`."""
    lines = []
    by_component: dict[str, tuple[Counter[str], Counter[str]]] = {}
    for path in sorted(folder.glob("*.txt")):
        inclusive, own = by_component.setdefault(path.stem.rsplit("-", 1)[0], (Counter(), Counter()))
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue  # a frame name with a line break in it
            frames = stack.split(";")
            for frame in set(frames):
                inclusive[frame] += int(count)
            own[frames[-1]] += int(count)
            inclusive["<all>"] += int(count)
    for component, (inclusive, own) in by_component.items():
        total = inclusive.pop("<all>", 0) or 1
        lines.append(f"\n== {component}: {total} samples on the CPU")
        for title, counts in (("inclusive", inclusive), ("self", own)):
            lines.append(f"-- {title}")
            lines.extend(f"{count / total:6.1%}  {frame}" for frame, count in counts.most_common(top))
    return "\n".join(lines)


def _two_and_five(value: float, _: int) -> str:
    """Labels for the minor ticks of a log axis: 2, 5, 20, 50... (the others would crowd it)."""
    leading = round(value / 10 ** math.floor(math.log10(value)))
    return f"{value:g}" if leading in (2, 5) else ""
