"""Fixtures that run the dev Eureka server as a real subprocess on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

STARTUP_TIMEOUT = 15.0
JSON = {"Accept": "application/json"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVEUREKA_")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def instance_doc(app: str, /, instance_port: int = 18080, **fields: Any) -> dict[str, Any]:
    """A registration body shaped like the product's; ``fields`` replace or (None) drop keys."""
    instance: dict[str, Any] = {
        "instanceId": f"127.0.0.1_{instance_port}",
        "hostName": "127.0.0.1",
        "app": app,
        "ipAddr": "127.0.0.1",
        "vipAddress": "127.0.0.1",
        "status": "UP",
        "port": {"$": instance_port, "@enabled": "true"},
        "securePort": {"$": 443, "@enabled": "false"},
        "dataCenterInfo": {
            "@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
            "name": "MyOwn",
        },
        "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
        "metadata": {"is-container": "true"},
    }
    for key, value in fields.items():
        if value is None:
            instance.pop(key, None)
        else:
            instance[key] = value
    return {"instance": instance}


class EurekaProcess:
    """A running server and a requests session that talks only to it."""

    def __init__(self, process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log_path = log_path
        self.http = requests.Session()
        self.http.trust_env = False

    doc = staticmethod(instance_doc)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        return self.http.request(method, self.url(path), **kwargs)

    def register(
        self, app: str, doc: dict[str, Any], url_app: str | None = None
    ) -> requests.Response:
        return self.request("POST", f"/apps/{url_app or app}", json=doc)

    def get_json(self, path: str) -> Any:
        response = self.request("GET", path, headers=JSON)
        assert response.status_code == 200, (path, response.status_code, response.text)
        assert response.headers["Content-Type"].startswith("application/json")
        return response.json()

    def instance(self, app: str, instance_id: str) -> dict[str, Any]:
        return self.get_json(f"/apps/{app}/{instance_id}")["instance"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Signal the server, wait for it, and return its exit code."""
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode


def start_server(log_path: Path, *args: str) -> EurekaProcess:
    port = free_port()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "deveureka", "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=server_env(),
        )
    server = EurekaProcess(process, f"http://127.0.0.1:{port}/eureka", log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dev Eureka exited with {process.returncode}:\n{server.log()}")
        try:
            if server.request("GET", "/apps", timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"dev Eureka did not answer within {STARTUP_TIMEOUT}s:\n{server.log()}")


@pytest.fixture(scope="session")
def dev_eureka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EurekaProcess]:
    """One server shared by the tests that use distinct app names, with Netflix's rules but no
    response cache (so a listing shows a registration at once) and an eviction run every 0.2 s.
    The cache and the real timings are tested on servers of their own."""
    server = start_server(
        tmp_path_factory.mktemp("deveureka") / "server.log",
        "--eviction-interval",
        "0.2",
        "--response-cache-seconds",
        "0",
    )
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="session")
def strict_eureka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EurekaProcess]:
    """Like dev_eureka, with --strict."""
    server = start_server(
        tmp_path_factory.mktemp("deveureka-strict") / "server.log",
        "--response-cache-seconds",
        "0",
        "--strict",
    )
    yield server
    assert server.stop() == 0, server.log()


@contextlib.contextmanager
def _launcher(directory: Path) -> Iterator[Callable[..., EurekaProcess]]:
    started: list[EurekaProcess] = []

    def start(*args: str) -> EurekaProcess:
        server = start_server(directory / f"server-{len(started)}.log", *args)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., EurekaProcess]]:
    """Start extra servers with their own flags; all are stopped at teardown."""
    with _launcher(tmp_path) as start:
        yield start


@pytest.fixture(scope="module")
def module_launch(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., EurekaProcess]]:
    """Like launch, for servers that serve a whole test module."""
    with _launcher(tmp_path_factory.mktemp("deveureka-module")) as start:
        yield start


@pytest.fixture
def app_name() -> str:
    """A fresh app name, so tests sharing the server never see each other's instances."""
    return f"APP-{uuid.uuid4().hex[:10].upper()}"
