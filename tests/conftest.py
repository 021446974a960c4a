"""Fixtures: a real Redis, a real private Docker engine, the dev Eureka, and the components as processes."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import docker
import pytest
from docker.models.containers import Container
import redis
from rq import Worker

from registrar.reconcile import Reconciler
from shared import keys, queues
from shared.connection import connect
from shared.eureka import EurekaClient
from shared.models import ContainerState, InstanceStatus, Phase, ServiceRecord
from shared.store import Store
from tests.aws import CREDENTIALS as AWS_CREDENTIALS, REGION as AWS_REGION, AwsStandIn, AwsWorld, MotoServer
from tests.faults.proxies import DockerProxy, EurekaProxy
from tests.support import (DevEureka, DockerEngine, Process, RedisServer, SentinelGroup, python_module,
                           wait_until)

HOST = socket.gethostname()
HOST_IP = socket.gethostbyname(HOST)
# Labels for a lease short enough to watch it expire in a test.
FAST_LEASE = {
    "SERVICE_EUREKA_LEASEINFO_RENEWALINTERVALINSECS": "1",
    "SERVICE_EUREKA_LEASEINFO_DURATIONINSECS": "3",
}
WATCHER_ARGS = ("-ttl", "3", "-ttl-refresh", "1")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def sentinel_group(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SentinelGroup]:
    """A fresh Sentinel deployment per test (tests kill its primary), with passwords on the Redis servers
    and on the sentinels; an indirect parameter sets its down-after-milliseconds."""
    workdir = tmp_path / "sentinel"
    workdir.mkdir()
    group = SentinelGroup(workdir, password="redis-pass-7f3a", sentinel_password="sentinel-pass-91c2",
                          down_after_ms=getattr(request, "param", SentinelGroup.DOWN_AFTER_MS)).start()
    yield group
    group.stop()
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        print(group.logs())


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    engine = DockerEngine().start()
    yield engine
    engine.stop()


@pytest.fixture
def docker_client(docker_engine: DockerEngine) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=docker_engine.host, timeout=30)
    yield client
    for container in client.containers.list(all=True):
        container.remove(force=True)
    client.close()


@pytest.fixture
def eureka(tmp_path: Path) -> Iterator[DevEureka]:
    server = DevEureka(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def reconciler(redis_client: redis.Redis, eureka: DevEureka, redis_url: str) -> Reconciler:
    """A registrar's reconcile steps in the test's own process, for the test to call in the order it wants."""
    return Reconciler(Store(redis_client), EurekaClient([eureka.url]),
                      queues.registrar_queue(redis.Redis.from_url(redis_url)))


@pytest.fixture
def docker_proxy(docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerProxy]:
    """A proxy in front of the Docker engine that a test can stall or make fail."""
    proxy = DockerProxy(tmp_path_factory.mktemp("proxy", numbered=True), docker_engine.host).start()
    yield proxy
    proxy.close()


@pytest.fixture
def eureka_proxy(eureka: DevEureka) -> Iterator[EurekaProxy]:
    """A recording (and, when told, fault-injecting) proxy in front of the dev Eureka."""
    proxy = EurekaProxy(eureka.port).start()
    yield proxy
    proxy.close()


class Components:
    """Starts watcher / registrar / heartbeater processes and stops them all at the end of a test."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.started: list[Process] = []

    def start(self, component: str, *args: str, name: str | None = None, env: dict[str, str] | None = None) -> Process:
        process = Process(name or component, python_module(component, *args), self.log_dir,
                          {**self.env, **(env or {})}).start()
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"===== {p.name} =====\n{p.log()[-8000:]}" for p in self.started)


@pytest.fixture
def components(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Iterator[Components]:
    # FAST_LEASE renews every second: below the production minimum, allowed here to keep tests short. No
    # /metrics and /healthz unless a test asks (with free ports): tests run side by side on one machine.
    started = Components(tmp_path, {"REDIS_URL": redis_url, "LOG_LEVEL": "DEBUG",
                                    "REGISTRATOR_RETRY_INTERVAL": "200", "REGISTRATOR_MIN_RENEWAL_INTERVAL": "1",
                                    "METRICS_PORT": "0"})
    yield started
    started.stop_all()
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        print(started.logs())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "watcher_args(*args): extra flags for the system fixture's watcher")


def start_watcher(components: Components, env: dict[str, str], *args: str, name: str = "watcher") -> Process:
    """A watcher with the tests' short liveness TTL and `args`; `name` names its log (one per process)."""
    watcher = components.start("watcher", *WATCHER_ARGS, *args, name=name, env=env)
    wait_until(lambda: "re-synced" in watcher.log(), 20, "the watcher's first re-sync")
    return watcher


def start_system(components: Components, env: dict[str, str], redis_url: str, *watcher_args: str) -> Process:
    """A registrar, a heartbeater and a watcher (with `watcher_args`), all with `env`; returns the watcher."""
    components.start("registrar", env=env)
    components.start("heartbeater", env=env)
    sentinel_password = {**components.env, **env}.get("REDIS_SENTINEL_PASSWORD")
    rq_connection = connect(SimpleNamespace(redis_url=redis_url, redis_sentinel_password=sentinel_password),
                            decode=False)
    wait_until(lambda: len(Worker.all(connection=rq_connection)) == 2, 20, "registrar and heartbeater workers")
    return start_watcher(components, env, *watcher_args)


@pytest.fixture
def system(request: pytest.FixtureRequest, components: Components, eureka: DevEureka, docker_engine: DockerEngine,
           docker_client: docker.DockerClient, redis_client: redis.Redis, redis_url: str) -> SimpleNamespace:
    """The whole system; a test's `watcher_args` marker adds flags to the watcher."""
    env = {"EUREKA_URL": eureka.url, "DOCKER_HOST": docker_engine.host}
    marker = request.node.get_closest_marker("watcher_args")
    watcher = start_system(components, env, redis_url, *(marker.args if marker else ()))
    return SimpleNamespace(env=env, watcher=watcher, eureka=eureka, docker=docker_client, redis=redis_client,
                           components=components, docker_engine=docker_engine)


def run_web(docker_client: docker.DockerClient, name: str, port: int, **options: object) -> Container:
    """busybox httpd on container port 80, published on `port`; as PID 1 it ignores SIGTERM."""
    environment = {"SERVICE_NAME": "web", **options.pop("environment", {})}  # type: ignore[dict-item]
    return docker_client.containers.run("local/busybox", ["httpd", "-f", "-p", "80", "-h", "/"], name=name,
                                        detach=True, ports={"80/tcp": port}, environment=environment, **options)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """An empty moto behind a counting stand-in, and this process's AWS configuration pointing at the
    stand-in: `aws.stand_in` (what the code under test reached, by operation), `aws.world` (to make
    resources in moto)."""
    moto_server.reset()
    for name in ("AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    with AwsStandIn(moto_server.url) as stand_in:
        monkeypatch.setenv("AWS_ENDPOINT_URL", stand_in.url)
        monkeypatch.setenv("AWS_REGION", AWS_REGION)
        # Never the real instance metadata service, nor the files of whoever runs the tests.
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        for name, value in AWS_CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        yield SimpleNamespace(stand_in=stand_in, world=AwsWorld(moto_server.url))


def publish_running(store: Store, host: str, number: int, name: str, port: int, attrs: dict[str, str]) -> str:
    """What the watcher of `host` does for running container `number`, whose one service `name` is container port
    80 on host port `port`: publish its state (vouched for for 2 minutes; the change goes on the registrars'
    fast lane). Without Docker: for tests about the workers. Returns the source."""
    container_id = f"{number:064x}"
    record = ServiceRecord(service_id=f"{host}:{name}{number}:80", name=name, ip="10.0.0.5", port=port,
                           exposed_port=80, protocol="tcp", host_ip="10.0.0.5", container_id=container_id,
                           container_name=f"/{name}{number}", attrs=attrs)
    state = ContainerState(host=host, container_id=container_id, container_name=record.container_name,
                           phase=Phase.RUNNING, status=InstanceStatus.UP, services=(record,))
    source = keys.source(host, container_id)
    store.publish_state(source, state, ttl=120, sweep_after=5)
    return source
