"""The RQ dashboard as `make run` starts it, looked at in a real browser (headless Chromium): a backlog of
jobs named for a person while Eureka is down, then the queues and workers of the system once it registered
the container, and never the password of the Redis it reads."""

from __future__ import annotations

import re
import secrets
import shutil
import sys
from pathlib import Path
from typing import Iterator

import docker
import pytest
import redis
import requests

from tests.browser import ARTIFACTS, rendered_dom, screenshot, table_rows
from tests.conftest import FAST_LEASE, HOST, HOST_IP, run_web
from tests.support import DevEureka, DockerEngine, Process, free_port, require_program, wait_until

PASSWORD = f"dashboard-secret-{secrets.token_hex(6)}"


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = Process("redis-with-password", [
        require_program("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--requirepass", PASSWORD, "--dir", str(tmp_path)], tmp_path).start()
    wait_until(lambda: redis.Redis(port=port, password=PASSWORD).ping(), 10, "redis-server with a password")
    yield f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    server.stop()


@pytest.fixture
def eureka_not_yet_up(tmp_path: Path) -> Iterator[DevEureka]:
    """The dev Eureka with its port chosen, started by the test."""
    server = DevEureka(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def web_port(docker_client: docker.DockerClient) -> int:
    """The host port of a container already running when `make run` starts."""
    port = free_port()
    # A short renewal interval (allowed by REGISTRATOR_MIN_RENEWAL_INTERVAL below), so that heartbeat jobs,
    # and their queue, come as soon as it is registered.
    run_web(docker_client, "dashboard-web", port, environment=FAST_LEASE)
    return port


@pytest.fixture
def make_run(tmp_path: Path, redis_with_password: str, eureka_not_yet_up: DevEureka, docker_engine: DockerEngine,
             web_port: int) -> Iterator[Process]:
    """scripts/run_local.py (what `make run` runs) on this test's Redis, Eureka and Docker engine, started
    after the container of `web_port`; the worker pools wait for Eureka as long as it takes."""
    run = Process("make-run", [sys.executable, "scripts/run_local.py"], tmp_path, {
        "REDIS_URL": redis_with_password, "EUREKA_URL": eureka_not_yet_up.url, "DOCKER_HOST": docker_engine.host,
        "DASHBOARD_PORT": str(free_port()), "WATCHER_METRICS_PORT": str(free_port()),
        "REGISTRAR_METRICS_PORT": str(free_port()), "HEARTBEATER_METRICS_PORT": str(free_port()),
        "REGISTRATOR_RETRY_ATTEMPTS": "-1", "REGISTRATOR_RETRY_INTERVAL": "200",
        "REGISTRATOR_MIN_RENEWAL_INTERVAL": "1"}).start()
    try:
        wait_until(lambda: "Ctrl-C stops everything" in run.log() or not run.running, 60, "make run's summary")
        assert run.running, run.log()
        yield run
    finally:
        run.stop(timeout=60)


def test_dashboard_shows_backlog_queues_and_workers(make_run: Process, web_port: int,
                                                    eureka_not_yet_up: DevEureka, tmp_path: Path) -> None:
    dashboard = re.search(r"Dashboard:\s+(\S+)", make_run.log())
    assert dashboard, make_run.log()
    url = dashboard.group(1)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
    pages = {"queues": url, "workers": f"{url}0/view/workers",
             "jobs": f"{url}0/view/jobs/registrar/queued/20/asc/1"}
    artifacts = ARTIFACTS / "dashboard"
    artifacts.mkdir(parents=True, exist_ok=True)

    # Eureka is down, so no worker has started: the watcher's first re-sync re-registers the container that
    # was already running, and that job waits in the registrar queue. (A change after it would wait on the
    # registrars' fast lane, which is not an RQ queue.)
    wait_until(lambda: "re-synced" in make_run.log(), 60, "the watcher's first re-sync")
    port = web_port
    backlog = wait_until(lambda: _showing(rendered_dom(tmp_path, pages["jobs"]), "jobs", "re-register "), 60,
                         "the waiting registrar job in the dashboard")
    [job] = [row[0] for row in table_rows(backlog, "jobs")[1:]]
    assert re.fullmatch(f"re-register dashboard-web on {re.escape(HOST)} [0-9a-f]{{32}}", job), job  # and its id
    waiting = table_rows(wait_until(lambda: _showing(rendered_dom(tmp_path, url), "queues", "registrar"), 60,
                                    "the registrar queue in the dashboard"), "queues")
    assert waiting[0][:2] == ["Queue", "Queued jobs"]
    assert [row[:2] for row in waiting[1:]] == [["registrar", "1"]]
    backlog_data = _data(url)
    assert "re-register dashboard-web" in backlog_data
    shutil.copy(screenshot(tmp_path, pages["jobs"], tmp_path / "dashboard-jobs.png"), artifacts)

    eureka_not_yet_up.start()
    wait_until(lambda: eureka_not_yet_up.instance("WEB", f"{HOST_IP}_{port}"), 60, "the container in Eureka")
    queues_page = wait_until(lambda: _showing(rendered_dom(tmp_path, url), "queues", "registrar", "heartbeat"),
                             60, "the heartbeat queue in the dashboard")
    assert sorted(row[0] for row in table_rows(queues_page, "queues")[1:]) == ["heartbeat", "registrar"]
    workers_page = wait_until(lambda: _showing(rendered_dom(tmp_path, pages["workers"]), "workers",
                                               "registrar.", "heartbeater."), 60, "the workers in the dashboard")
    workers = {row[0].split(".")[0]: row for row in table_rows(workers_page, "workers")[1:]}
    assert set(workers) == {"registrar", "heartbeater"}, workers
    assert workers["registrar"][2] == "registrar" and workers["heartbeater"][2] == "heartbeat"
    for name in ("queues", "workers"):
        shutil.copy(screenshot(tmp_path, pages[name], tmp_path / f"dashboard-{name}.png"), artifacts)

    # What the dashboard shows of its Redis: the address, with user and password masked.
    assert re.search(r"redis://\*+:\*+@127\.0\.0\.1:\d+/0", backlog)
    for page in (backlog, backlog_data, queues_page, workers_page, _data(url)):
        assert PASSWORD not in page
    assert PASSWORD not in make_run.log()  # its own lines, the components' and the dashboard's


def _showing(html: str, table_id: str, *first_cell_starts: str) -> str | None:
    """`html` once its table has, for each of `first_cell_starts`, a row whose first cell starts so."""
    first_cells = [row[0] for row in table_rows(html, table_id)[1:] if row]
    return html if all(any(cell.startswith(start) for cell in first_cells) for start in first_cell_starts) else None


def _data(url: str) -> str:
    """What the dashboard's scripts fetch: queues, workers, the registrar's queued and failed jobs."""
    return "".join(requests.get(f"{url}0/data/{name}.json", timeout=10).text
                   for name in ("queues", "workers", "jobs/registrar/queued/20/asc/1",
                                "jobs/registrar/failed/20/asc/1"))
