"""No credential anywhere: the whole system as `make run` starts it (watcher, registrar, heartbeater, RQ
dashboard) on a password-protected Redis and a Eureka behind basic auth, logging at DEBUG as text and as JSON,
drives a container through registration, heartbeats and deregistration. Then every component's output, its
/metrics and /healthz, the dashboard's data, the status view (table and JSON), every process's command line and
everything in Redis are searched for both passwords (`tests/test_redis_credentials.py` does the same for the
components started one by one, and for a wrong Redis password). The JSON lines are checked to be one object
per line, naming the container, host and instance they are about."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import docker
import pytest
import requests

from tests.conftest import FAST_LEASE, HOST, HOST_IP, run_web
from tests.support import DevEureka, DockerEngine, Process, RedisServer, free_port, wait_until
from tests.test_redis_credentials import everything_in

REDIS_PASSWORD = f"redis-secret-{secrets.token_hex(6)}"
EUREKA_PASSWORD = f"eureka-secret-{secrets.token_hex(6)}"
COMPONENTS = ("watcher", "registrar", "heartbeater")
# A line as scripts/run_local.py prefixes a process's output: "   registrar | ...".
PREFIXED = re.compile(r"^\s*(\w+) \| (.*)$")


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, password=REDIS_PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def protected_eureka(tmp_path: Path) -> Iterator[DevEureka]:
    server = DevEureka(tmp_path, basic_auth=("registrator", EUREKA_PASSWORD)).start()
    yield server
    server.stop()


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        offspring = children.get(todo.pop(), [])
        found += offspring
        todo += offspring
    return found


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_output_shows_a_password(log_format: str, protected_redis: RedisServer, protected_eureka: DevEureka,
                                    docker_engine: DockerEngine, docker_client: docker.DockerClient,
                                    tmp_path: Path) -> None:
    assert REDIS_PASSWORD in protected_redis.url and EUREKA_PASSWORD in protected_eureka.url
    ports = {component: free_port() for component in (*COMPONENTS, "dashboard")}
    env = {"REDIS_URL": protected_redis.url, "EUREKA_URL": protected_eureka.url, "DOCKER_HOST": docker_engine.host,
           "LOG_LEVEL": "DEBUG", "LOG_FORMAT": log_format, "REGISTRATOR_RETRY_INTERVAL": "200",
           "REGISTRATOR_MIN_RENEWAL_INTERVAL": "1", "DASHBOARD_PORT": str(ports["dashboard"]),
           **{f"{component.upper()}_METRICS_PORT": str(ports[component]) for component in COMPONENTS}}
    run = Process("make-run", [sys.executable, "scripts/run_local.py"], tmp_path, env).start()
    seen: list[str] = []
    try:
        wait_until(lambda: "Ctrl-C stops everything" in run.log() or not run.running, 60, "make run's summary")
        assert run.running, run.log()
        wait_until(lambda: "re-synced" in run.log(), 30, "the watcher's first re-sync")

        port = free_port()
        container = run_web(docker_client, "secret-web", port, environment=FAST_LEASE)
        instance_id = f"{HOST_IP}_{port}"
        registered = wait_until(lambda: protected_eureka.instance("WEB", instance_id), 15, "the registration")
        wait_until(lambda: protected_eureka.instance("WEB", instance_id)["leaseInfo"]["lastRenewalTimestamp"]
                   > registered["leaseInfo"]["registrationTimestamp"], 15, "a heartbeat")

        for component in COMPONENTS:
            base = f"http://127.0.0.1:{ports[component]}"
            health = wait_until(lambda: answer if (answer := requests.get(f"{base}/healthz", timeout=5)).ok  # noqa: B023
                                else None, 15, f"{component} healthy")
            seen += [health.text, requests.get(f"{base}/metrics", timeout=5).text]
        dashboard = f"http://127.0.0.1:{ports['dashboard']}"
        seen += [requests.get(f"{dashboard}/{page}", timeout=10).text
                 for page in ("", "0/data/queues.json", "0/data/workers.json", "0/data/jobs/heartbeat/queued/20/asc/1",
                              "0/data/jobs/registrar/failed/20/asc/1")]
        status_env = {"PATH": "/usr/bin:/bin", "REDIS_URL": protected_redis.url, "EUREKA_URL": protected_eureka.url}
        for args in ((), ("--json",)):
            status = subprocess.run([sys.executable, "-m", "status", *args], cwd=tmp_path, env=status_env,
                                    capture_output=True, text=True, timeout=60)
            assert status.returncode == 0, status.stderr
            assert f"WEB/{instance_id}" in status.stdout and "secret-web" in status.stdout
            seen += [status.stdout, status.stderr]
        # A password in a process's command line shows in `ps`.
        seen += [Path(f"/proc/{pid}/cmdline").read_text(errors="replace") for pid in descendants(run.popen.pid)
                 if Path(f"/proc/{pid}/cmdline").exists()]

        container.stop(timeout=1)
        wait_until(lambda: protected_eureka.instance("WEB", instance_id) is None, 15, "the deregistration")
        wait_until(lambda: "deregistered WEB/" in run.log(), 10, "the registrar's line about it")
    finally:
        run.stop(timeout=60)
    output = run.log()
    assert "secret-web" in output
    with protected_redis.client() as client:
        seen.append(repr(list(everything_in(client))))
    assert "secret-web" in seen[-1]  # Redis holds the container's state: what was searched is not empty
    for text in (output, *seen):
        assert REDIS_PASSWORD not in text and EUREKA_PASSWORD not in text

    lines = [(match.group(1), match.group(2)) for line in output.splitlines() if (match := PREFIXED.match(line))]
    component_lines = [text for name, text in lines if name in COMPONENTS]
    assert component_lines
    if log_format == "json":
        records = [json.loads(text) for text in component_lines]  # every line is one JSON object
        assert {record["component"] for record in records} == set(COMPONENTS)
        assert all({"time", "level", "logger", "message"} <= set(record) for record in records)
        about = {"host": HOST, "container": "secret-web", "container_id": container.id[:12],
                 "instance": f"WEB/{instance_id}"}
        registration = next(r for r in records if r["message"].startswith(f"registered WEB/{instance_id}"))
        assert {name: registration.get(name) for name in about} == about
        deregistration = next(r for r in records if r["message"].startswith(f"deregistered WEB/{instance_id}"))
        assert {name: deregistration.get(name) for name in about} == about
        event = next(r for r in records if r["message"].startswith("event start secret-web"))
        assert {name: event.get(name) for name in ("host", "container", "container_id")} == \
            {name: about[name] for name in ("host", "container", "container_id")}
    else:
        registration = next(text for text in component_lines if f"registered WEB/{instance_id}" in text)
        assert f"for container secret-web ({container.id[:12]}) on host {HOST}" in registration
