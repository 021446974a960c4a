"""The RQ dashboard as `make run` starts it, looked at in a real browser (headless Chromium): it shows the
queues, the workers and readable jobs of a system that just registered a container, and never the
password of the Redis it reads."""

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
from tests.conftest import FAST_LEASE, HOST_IP, run_web
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
def make_run(tmp_path: Path, redis_with_password: str, eureka: DevEureka,
             docker_engine: DockerEngine) -> Iterator[Process]:
    """scripts/run_local.py (what `make run` runs) on this test's Redis, Eureka and Docker engine."""
    run = Process("make-run", [sys.executable, "scripts/run_local.py"], tmp_path, {
        "REDIS_URL": redis_with_password, "EUREKA_URL": eureka.url, "DOCKER_HOST": docker_engine.host,
        "DASHBOARD_PORT": str(free_port())}).start()
    try:
        wait_until(lambda: "Ctrl-C stops everything" in run.log() or not run.running, 60, "make run's summary")
        assert run.running, run.log()
        yield run
    finally:
        run.stop(timeout=60)


def test_dashboard_shows_queues_workers_and_jobs(make_run: Process, docker_client: docker.DockerClient,
                                                 eureka: DevEureka, tmp_path: Path) -> None:
    dashboard = re.search(r"Dashboard:\s+(\S+)", make_run.log())
    assert dashboard, make_run.log()
    url = dashboard.group(1)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)

    port = free_port()
    # A short renewal interval, so that heartbeat jobs (and their queue) come at once.
    container = run_web(docker_client, "dashboard-web", port, environment=FAST_LEASE)
    wait_until(lambda: eureka.instance("WEB", f"{HOST_IP}_{port}"), 30, "the container in Eureka")

    queues_page = wait_until(lambda: _showing(rendered_dom(tmp_path, url), "queues", "registrar", "heartbeat"),
                             60, "the queues in the dashboard")
    queues = table_rows(queues_page, "queues")
    assert queues[0][:2] == ["Queue", "Queued jobs"]
    assert sorted(row[0] for row in queues[1:]) == ["heartbeat", "registrar"]

    workers_page = wait_until(lambda: _showing(rendered_dom(tmp_path, f"{url}0/view/workers"), "workers",
                                               "registrar.", "heartbeater."), 60, "the workers in the dashboard")
    workers = {row[0].split(".")[0]: row for row in table_rows(workers_page, "workers")[1:]}
    assert set(workers) == {"registrar", "heartbeater"}, workers
    assert workers["registrar"][2] == "registrar" and workers["heartbeater"][2] == "heartbeat"

    jobs_url = f"{url}0/view/jobs/registrar/finished/20/desc/1"
    jobs_page = wait_until(lambda: _showing(rendered_dom(tmp_path, jobs_url), "jobs", "reconcile "), 60,
                           "finished registrar jobs in the dashboard")
    descriptions = [row[0] for row in table_rows(jobs_page, "jobs")[1:]]
    # The container is named in its job's description (by name, or until then by id).
    assert any(description.startswith("reconcile ") and (container.name in description or container.id in description)
               for description in descriptions), descriptions

    # What the dashboard shows of its Redis: the address, with user and password masked.
    assert re.search(r"redis://\*+:\*+@127\.0\.0\.1:\d+/0", jobs_page)
    for page in (queues_page, workers_page, jobs_page, _data(url)):
        assert PASSWORD not in page
    assert PASSWORD not in make_run.log()

    artifacts = ARTIFACTS / "dashboard"
    artifacts.mkdir(parents=True, exist_ok=True)
    for name, page_url in (("queues", url), ("workers", f"{url}0/view/workers"), ("jobs", jobs_url)):
        shutil.copy(screenshot(tmp_path, page_url, tmp_path / f"dashboard-{name}.png"), artifacts)


def _showing(html: str, table_id: str, *first_cell_starts: str) -> str | None:
    """`html` once its table has, for each of `first_cell_starts`, a row whose first cell starts so."""
    first_cells = [row[0] for row in table_rows(html, table_id)[1:] if row]
    return html if all(any(cell.startswith(start) for cell in first_cells) for start in first_cell_starts) else None


def _data(url: str) -> str:
    """What the dashboard's scripts fetch: queues, workers, finished registrar jobs."""
    return "".join(requests.get(f"{url}0/data/{name}.json", timeout=10).text
                   for name in ("queues", "workers", "jobs/registrar/finished/20/desc/1"))
