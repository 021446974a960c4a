"""The compose stack for real: images built with no registry on the test's private Docker engine, the stack
brought up by Debian's docker-compose, a labelled container registered in its Eureka, the registrar scaled
to three workers, the container stopped and deregistered, the stack taken down."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import docker
import pytest
import redis
import requests
from rq import Worker

from tests.support import REPO, DockerEngine, free_port, require_program, wait_until

pytestmark = pytest.mark.timeout(900)


class ComposeStack:
    """docker-compose for the repository's docker-compose.yml, as a project of its own on the test engine."""

    def __init__(self, engine: DockerEngine, log_dir: Path) -> None:
        self.project = f"regtest{os.getpid()}"
        self.redis_port, self.eureka_port, self.dashboard_port = free_port(), free_port(), free_port()
        self.log_path = log_dir / "docker-compose.log"
        # Only what is set here reaches the compose file's variables (not a developer's REDIS_URL, say).
        self.env = {
            "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
            "DOCKER_HOST": engine.host, "DOCKER_SOCKET": engine.host.removeprefix("unix://"),
            "REDIS_PORT": str(self.redis_port), "EUREKA_PORT": str(self.eureka_port),
            "DASHBOARD_PORT": str(self.dashboard_port), "LOG_LEVEL": "DEBUG",
        }

    def __call__(self, *args: str) -> str:
        command = [require_program("docker-compose"), "-f", str(REPO / "docker-compose.yml"), "-p", self.project,
                   *args]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=300)
        with self.log_path.open("a") as log:
            log.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
        if result.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result.stdout

    def containers(self, service: str) -> list[str]:
        return self("ps", "-q", service).split()

    def eureka_instance(self, app: str, instance_id: str) -> dict | None:
        response = requests.get(f"http://127.0.0.1:{self.eureka_port}/eureka/apps/{app}/{instance_id}",
                                headers={"Accept": "application/json"}, timeout=5)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()["instance"]

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port, socket_timeout=5)


@pytest.fixture(scope="module")
def images(docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`make images` on the test engine (the debootstrap base is made once and kept in build/)."""
    log = tmp_path_factory.mktemp("images") / "images.log"
    with log.open("w") as output:
        built = subprocess.run([sys.executable, "scripts/images.py"], cwd=REPO, stdout=output,
                               stderr=subprocess.STDOUT, env={**os.environ, "DOCKER_HOST": docker_engine.host},
                               timeout=600)
    assert built.returncode == 0, log.read_text()[-5000:]


@pytest.fixture
def stack(images: None, docker_engine: DockerEngine, docker_client: docker.DockerClient,
          request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ComposeStack]:
    """The stack's project; taken down at the end (before docker_client removes every container)."""
    compose = ComposeStack(docker_engine, tmp_path)
    try:
        yield compose
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            print(compose("logs", "--no-color", "--tail=200")[-20000:])
        compose("down", "--volumes", "--timeout", "5")


def _workers(stack: ComposeStack, queue: str) -> list[str]:
    with stack.redis() as connection:
        return sorted(worker.name for worker in Worker.all(connection=connection)
                      if queue in worker.queue_names())


def test_compose_stack_registers_scales_and_deregisters(stack: ComposeStack,
                                                        docker_client: docker.DockerClient) -> None:
    stack("up", "-d")
    wait_until(lambda: _workers(stack, "registrar") and _workers(stack, "heartbeat"), 90,
               "a registrar and a heartbeater connected to the stack's Redis")
    with stack.redis() as connection:
        assert connection.config_get("appendonly") == {"appendonly": "yes"}
        assert connection.config_get("appendfsync") == {"appendfsync": "everysec"}

    port = free_port()
    web = docker_client.containers.run("local/busybox", ["httpd", "-f", "-p", "80", "-h", "/"], name="compose-web",
                                       detach=True, ports={"80/tcp": ("127.0.0.1", port)},
                                       environment={"SERVICE_NAME": "compose-web"})
    instance = wait_until(lambda: stack.eureka_instance("COMPOSE-WEB", f"127.0.0.1_{port}"), 60,
                          "the container in the stack's Eureka")
    assert instance["status"] == "UP"
    assert instance["port"]["$"] == port
    assert instance["metadata"]["container-id"] == web.id
    assert instance["metadata"]["container-name"] == "/compose-web"
    # The watcher runs in a container, yet names its host as the engine does, not by the container's name.
    assert instance["metadata"]["docker-host"] == docker_client.info()["Name"]

    # Each component's health check (its /healthz, asked from inside the container) passes.
    for service in ("watcher", "registrar", "heartbeater"):
        [container_id] = stack.containers(service)
        wait_until(lambda: docker_client.api.inspect_container(container_id)["State"]["Health"]["Status"]  # noqa: B023
                   == "healthy", 60, f"the {service} container healthy")

    stack("up", "-d", "--scale", "registrar=3")
    assert len(stack.containers("registrar")) == 3
    registrars = wait_until(lambda: names if len(names := _workers(stack, "registrar")) == 3 else None, 60,
                            "three registrar workers")
    # One worker per container: the containers' host names are in the worker names.
    assert len({name.split(".")[1] for name in registrars}) == 3
    assert len(_workers(stack, "heartbeat")) == 1
    # The stack's dashboard shows them too.
    dashboard = requests.get(f"http://127.0.0.1:{stack.dashboard_port}/0/data/workers.json", timeout=10).json()
    shown = sorted(worker["name"] for worker in dashboard["workers"])
    assert shown == sorted(registrars + _workers(stack, "heartbeat"))

    web.stop(timeout=1)
    wait_until(lambda: stack.eureka_instance("COMPOSE-WEB", f"127.0.0.1_{port}") is None, 60,
               "the stopped container to leave the stack's Eureka")

    # Redis keeps its data across a restart (append-only file on the volume).
    with stack.redis() as connection:
        connection.set("compose-test:persisted", "yes")
    stack("restart", "redis")
    with stack.redis() as connection:
        assert wait_until(lambda: connection.get("compose-test:persisted"), 30, "Redis back") == b"yes"

    stack("down", "--volumes", "--timeout", "5")
    assert not stack("ps", "-q").split()
    client = docker.DockerClient(base_url=stack.env["DOCKER_HOST"])
    try:
        assert not [v.name for v in client.volumes.list() if v.name.startswith(stack.project)]
        assert not [n.name for n in client.networks.list() if n.name.startswith(stack.project)]
    finally:
        client.close()
