"""Real parts for the tests: processes, a private Docker engine, a Redis server, polling with deadlines."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_bridge_address() -> str:
    """A gateway address on a 172.31.x.0/24 that no interface of this machine uses yet."""
    shown = subprocess.run(["ip", "-o", "-4", "addr", "show"], check=True, capture_output=True, text=True).stdout
    for third in range(250, 0, -1):
        if f" 172.31.{third}." not in shown:
            return f"172.31.{third}.1/24"
    raise RuntimeError("no free 172.31.x.0/24 for the test Docker engine's bridge")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; fail with `what` when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception as err:  # noqa: BLE001 - keep polling, report the last error
            last_error = err
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


def holds_for(check: Callable[[], object], seconds: float, what: str, interval: float = 0.1) -> None:
    """Poll `check` for `seconds`; fail as soon as it is falsy: `what` must stay true all along."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not check():
            raise AssertionError(f"{what} stopped holding")
        time.sleep(interval)


def configuration_error(load: Callable[[list[str], dict[str, str]], object], argv: list[str],
                        environ: dict[str, str], capsys: Any) -> str:
    """The error a configuration loader prints before it exits with status 2: checked to be one line."""
    with pytest.raises(SystemExit) as exit_info:
        load(argv, environ)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    return error


def require_program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: run the tests with `make test`, which installs it")
    return path


class Process:
    """A component or server run as a real subprocess, its output kept in a log file."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log_file = self.log_path.open("ab")
        self.popen = subprocess.Popen(self.argv, stdout=log_file, stderr=subprocess.STDOUT, env=self.env,
                                      cwd=REPO, start_new_session=True)
        log_file.close()
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 10) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def kill9(self) -> None:
        assert self.popen is not None
        self.popen.kill()
        self.popen.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


class RedisServer:
    """A redis-server on a free loopback port; with `password`, clients must authenticate (requirepass)."""

    def __init__(self, workdir: Path, *, password: str | None = None, name: str = "redis",
                 args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        credentials = f":{password}@" if password else ""
        self.url = f"redis://{credentials}127.0.0.1:{self.port}/0"
        auth = ("--requirepass", password, "--masterauth", password) if password else ()
        self.process = Process(name, [require_program("redis-server"), "--port", str(self.port), "--bind",
                                      "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir),
                                      *auth, *args], workdir)

    def client(self, **options: Any) -> Any:
        import redis

        return redis.Redis(port=self.port, password=self.password, **options)

    def start(self) -> RedisServer:
        self.process.start()
        client = self.client()
        wait_until(client.ping, 10, f"{self.process.name} to answer")
        client.close()
        return self

    def stop(self) -> None:
        self.process.stop()


class SentinelGroup:
    """A Redis primary, one replica and three redis-sentinel processes on loopback ports: a real Sentinel
    deployment that fails over within a few seconds of losing its primary (`DOWN_AFTER_MS`)."""

    SERVICE = "regtest"
    DOWN_AFTER_MS = 1000
    FAILOVER_TIMEOUT_MS = 5000

    def __init__(self, workdir: Path, *, password: str | None = None, sentinel_password: str | None = None,
                 down_after_ms: int = DOWN_AFTER_MS) -> None:
        self.workdir = workdir
        self.down_after_ms = down_after_ms
        self.password = password
        self.sentinel_password = sentinel_password
        # No diskless-sync delay: a replica's first full sync would wait 5 s for other replicas.
        no_delay = ("--repl-diskless-sync-delay", "0")
        # A folder each: a replica's full sync writes the RDB file a primary would write.
        (workdir / "primary").mkdir()
        (workdir / "replica").mkdir()
        self.servers = [RedisServer(workdir / "primary", password=password, name="redis-primary", args=no_delay)]
        self.servers.append(RedisServer(workdir / "replica", password=password, name="redis-replica",
                                        args=(*no_delay, "--replicaof", "127.0.0.1", str(self.servers[0].port))))
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels = [Process(f"sentinel-{index}", [require_program("redis-sentinel"),
                                                        str(self._sentinel_config(index, port))], workdir)
                          for index, port in enumerate(self.sentinel_ports, 1)]
        credentials = f":{password}@" if password else ""
        members = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        self.url = f"redis+sentinel://{credentials}{members}/{self.SERVICE}/0"

    def _sentinel_config(self, index: int, port: int) -> Path:
        lines = [f"port {port}", "bind 127.0.0.1", f"dir {self.workdir}",
                 f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.servers[0].port} 2",
                 f"sentinel down-after-milliseconds {self.SERVICE} {self.down_after_ms}",
                 f"sentinel failover-timeout {self.SERVICE} {self.FAILOVER_TIMEOUT_MS}",
                 f"sentinel parallel-syncs {self.SERVICE} 1"]
        if self.password:
            lines.append(f"sentinel auth-pass {self.SERVICE} {self.password}")
        if self.sentinel_password:
            lines += [f"requirepass {self.sentinel_password}", f"sentinel sentinel-pass {self.sentinel_password}"]
        # Sentinel rewrites its configuration file, so each one gets a writable copy of its own.
        path = self.workdir / f"sentinel-{index}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def sentinel_client(self, index: int = 0) -> Any:
        import redis

        return redis.Redis(port=self.sentinel_ports[index], password=self.sentinel_password, decode_responses=True,
                           socket_timeout=2)

    def start(self) -> SentinelGroup:
        try:
            for server in self.servers:
                server.start()
            wait_until(lambda: self.servers[1].client().info("replication")["master_link_status"] == "up", 20,
                       "the replica to follow the primary")
            for sentinel in self.sentinels:
                sentinel.start()
            wait_until(self._all_sentinels_see_everyone, 30, "every sentinel to see the replica and the others")
        except BaseException:
            self.stop()
            raise
        return self

    def _all_sentinels_see_everyone(self) -> bool:
        for index in range(len(self.sentinels)):
            with self.sentinel_client(index) as client:
                master = client.sentinel_master(self.SERVICE)
            if master["num-slaves"] < 1 or master["num-other-sentinels"] < len(self.sentinels) - 1:
                return False
        return True

    def primary_port(self) -> int:
        """The primary's port as the sentinels report it now."""
        with self.sentinel_client() as client:
            return int(client.sentinel_get_master_addr_by_name(self.SERVICE)[1])

    def server(self, port: int) -> RedisServer:
        return next(server for server in self.servers if server.port == port)

    def kill_primary(self) -> RedisServer:
        """SIGKILL the current primary (no chance to say goodbye) and return it."""
        primary = self.server(self.primary_port())
        primary.process.kill9()
        return primary

    def wait_for_new_primary(self, old: RedisServer, timeout: float) -> RedisServer:
        """Wait until every sentinel names another primary and that one accepts writes; return it."""
        def promoted() -> RedisServer | None:
            ports = set()
            for index in range(len(self.sentinels)):
                with self.sentinel_client(index) as client:
                    ports.add(int(client.sentinel_get_master_addr_by_name(self.SERVICE)[1]))
            if len(ports) != 1 or old.port in ports:
                return None
            server = self.server(ports.pop())
            with server.client() as client:
                return server if client.info("replication")["role"] == "master" else None

        return wait_until(promoted, timeout, "the sentinels to promote the replica")

    def logs(self) -> str:
        processes = [server.process for server in self.servers] + self.sentinels
        return "\n".join(f"===== {p.name} =====\n{p.log()[-4000:]}" for p in processes)

    def stop(self) -> None:
        for process in self.sentinels + [server.process for server in self.servers]:
            process.stop()


class DockerEngine:
    """A private dockerd (own data root, socket and bridge), with the busybox image the tests run."""

    def __init__(self) -> None:
        # Short path: a unix socket path must fit in 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="regd-", dir="/tmp"))
        self.host = f"unix://{self.dir}/docker.sock"
        # A bridge of its own (not docker0) and no iptables rules: it never fights another engine or test run.
        self.bridge = f"regt{os.getpid() % 10**8}"
        self.process = Process("dockerd", [
            require_program("dockerd"), "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
            "-H", self.host, "--pidfile", str(self.dir / "pid"), "--bridge", self.bridge,
            "--iptables=false", "--ip-masq=false",
        ], self.dir)

    def start(self) -> DockerEngine:
        for command in (["ip", "link", "add", self.bridge, "type", "bridge"],
                        ["ip", "addr", "add", free_bridge_address(), "dev", self.bridge],
                        ["ip", "link", "set", self.bridge, "up"]):
            subprocess.run(command, check=True, capture_output=True)
        try:
            self._import_busybox(self.start_daemon())
        except BaseException:
            self.stop()
            raise
        return self

    def start_daemon(self) -> Any:
        """Start dockerd (again, keeping its data) and return a client once it answers."""
        import docker

        self.process.start()
        return wait_until(lambda: docker.DockerClient(base_url=self.host, timeout=30), 60,
                          "the private dockerd to answer")

    def stop_daemon(self) -> None:
        self.process.stop(timeout=30)

    def _import_busybox(self, client: Any) -> None:
        busybox = require_program("busybox")
        root = self.dir / "image"
        (root / "bin").mkdir(parents=True)
        shutil.copy(busybox, root / "bin" / "busybox")
        for applet in ("sh", "sleep", "httpd", "nc", "true", "false", "kill", "test", "touch", "rm"):
            (root / "bin" / applet).symlink_to("busybox")
        archive = subprocess.run(["tar", "-C", str(root), "-c", "."], check=True, capture_output=True).stdout
        client.api.import_image_from_data(archive, repository="local/busybox", tag="latest")
        client.close()

    def stop(self) -> None:
        self.stop_daemon()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        # dockerd leaves its network namespace mounted under its exec root.
        for mount_point in reversed(Path("/proc/mounts").read_text().split("\n")):
            fields = mount_point.split()
            if len(fields) > 1 and fields[1].startswith(f"{self.dir}/"):
                subprocess.run(["umount", fields[1]], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def image_exposing(client: Any, port: int) -> str:
    """The busybox image with `EXPOSE <port>` (made once per engine): Docker takes a container's exposed
    ports from its image when it shares another's network, and refuses them on `docker run` then."""
    import docker

    repository = f"local/busybox-expose-{port}"
    try:
        client.images.get(repository)
    except docker.errors.ImageNotFound:
        container = client.containers.create("local/busybox", ["sleep", "3600"])
        container.commit(repository=repository, tag="latest", changes=[f"EXPOSE {port}"])
        container.remove()
    return f"{repository}:latest"


def create_raw_container(client: Any, name: str, body: bytes) -> str:
    """Create a container from a raw Engine API body (e.g. one holding bytes that are not UTF-8, which
    the Docker SDK cannot send) and start it; returns its id."""
    api = client.api
    response = api._post(api._url("/containers/create"), params={"name": name}, data=body,
                         headers={"Content-Type": "application/json"})
    container_id = api._result(response, json=True)["Id"]
    api.start(container_id)
    return container_id


class DevEureka:
    """The project's development Eureka server on a fixed port, so it can be restarted in place.

    It runs with --strict, so a registration Netflix would silently alter (a metadata key that is not
    an XML name, an unknown status, a bad port) fails the product's tests with a 400 naming it.
    `tls` (certificate, key) serves https; `basic_auth` (user, password) requires those credentials. `url`
    is what a client is configured with (credentials included); the helpers below read with them.

    The other parameters are the server's options (deveureka/README.md). The defaults are Netflix's
    behaviour on shorter timings, where its semantics still hold: renewed leases last 2 x `durationInSecs`,
    an expired one answers 404 at once, listings come from a response cache (refreshed every second
    rather than every 30 s), eviction runs every 0.2 s (not 60 s) and removes at most 15 % of the registry
    per run. So nothing in the product may rely on `/apps` being fresh, and tests read single instances.
    """

    def __init__(self, log_dir: Path, eviction_interval: float = 0.2, *, tls: tuple[Path, Path] | None = None,
                 basic_auth: tuple[str, str] | None = None, response_cache_seconds: float = 1,
                 lease_expiry: str = "netflix", self_preservation: bool = False) -> None:
        self.port = free_port()
        self.address = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/eureka"
        self.url = self.address.replace("://", f"://{basic_auth[0]}:{basic_auth[1]}@") if basic_auth else self.address
        self.log_dir = log_dir
        self.args = ["--host", "127.0.0.1", "--port", str(self.port), "--eviction-interval", str(eviction_interval),
                     "--response-cache-seconds", str(response_cache_seconds), "--lease-expiry", lease_expiry,
                     "--strict"]
        if self_preservation:
            self.args.append("--self-preservation")
        if tls:
            self.args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        if basic_auth:
            self.args += ["--basic-auth", ":".join(basic_auth)]
        self.session = requests.Session()
        self.session.auth = basic_auth
        self.session.trust_env = False  # else REQUESTS_CA_BUNDLE would override the certificate below
        self.session.verify = str(tls[0]) if tls else True
        self.process: Process | None = None

    def start(self) -> DevEureka:
        self.process = Process("eureka", python_module("deveureka", *self.args), self.log_dir).start()
        wait_until(lambda: self.session.get(f"{self.address}/apps", timeout=1).ok, 15, "the dev Eureka to answer")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def instance(self, app: str, instance_id: str) -> dict[str, Any] | None:
        response = self.session.get(f"{self.address}/apps/{app}/{instance_id}",
                                    headers={"Accept": "application/json"}, timeout=5)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()["instance"]

    def app_instances(self, app: str) -> list[dict[str, Any]]:
        response = self.session.get(f"{self.address}/apps/{app}", headers={"Accept": "application/json"},
                                    timeout=5)
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return response.json()["application"]["instance"]

    def apps_xml(self) -> str:
        response = self.session.get(f"{self.address}/apps", headers={"Accept": "application/xml"}, timeout=5)
        response.raise_for_status()
        return response.text

    def apps_xml_listing(self, *instance_ids: str, timeout: float = 5) -> str:
        """`GET /apps` in XML once it lists every one of `instance_ids` (it comes from the response cache)."""
        def listing() -> str | None:
            document = self.apps_xml()
            return document if all(f"<instanceId>{i}</instanceId>" in document for i in instance_ids) else None

        return wait_until(listing, timeout, f"/apps to list {', '.join(instance_ids)}")


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files made by openssl)."""
    cert, key = directory / "eureka.crt", directory / "eureka.key"
    subprocess.run([require_program("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def stubborn_job(seconds: float) -> None:
    """An RQ job that outlives its timeout: RQ's timeout (an exception raised into the job) is swallowed, and
    the job ends only after `seconds`. For a worker whose job is stuck."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.1)
        except BaseException:  # noqa: BLE001 - being stuck is the point
            pass
