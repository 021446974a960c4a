"""`make bench` cannot rot: its smoke run (small counts) goes end to end on real parts and reports every
figure. Benchmarks never fail on a number; this checks that each figure was measured, not how good it is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.report import FIGURES, figure
from tests.support import REPO


def test_smoke_bench_measures_every_figure(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    results = json.loads((tmp_path / "results.json").read_text())
    for path in FIGURES:
        value = figure(results, path)
        numbers = value if isinstance(value, list) else [value]
        assert numbers and all(isinstance(number, (int, float)) for number in numbers), f"{path}: {value!r}"
    assert results["config"]["smoke"] is True
    assert results["register_ms"]["n"] == results["deregister_ms"]["n"] == results["config"]["runs"]
    assert results["storm"]["containers"] == results["config"]["storm"]
    assert results["register_ms"]["p50"] > 0 and results["deregister_ms"]["p50"] > 0
    assert results["heartbeats"]["steady"]["renewals"] > 0
    assert [cycle["instances"] for cycle in results["heartbeats"]["cycles"]] == results["config"]["cycle_sizes"]
    for chart in ("latency.png", "heartbeat-cycles.png"):
        assert (tmp_path / "charts" / chart).read_bytes().startswith(b"\x89PNG")
    assert "register, start event -> POST" in done.stdout
