"""`make run`: the whole system on this machine, for development. Ctrl-C stops everything it started.

- Redis: REDIS_URL if set, else a redis-server on 127.0.0.1:6379 (reused if one already answers there).
- Docker: DOCKER_HOST (or /var/run/docker.sock) if it answers, else a private dockerd under .run/.
- Eureka: EUREKA_URL if set, else the dev Eureka server on 127.0.0.1:8761.
- Then the watcher, a registrar and a heartbeater, each a process with its output prefixed and its /metrics
  and /healthz on 127.0.0.1:9101, 9102 and 9103 (WATCHER_METRICS_PORT, REGISTRAR_METRICS_PORT,
  HEARTBEATER_METRICS_PORT to change them), and the RQ dashboard on 127.0.0.1:9181 (DASHBOARD_PORT).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from shared import defaults

import docker
import redis
import requests

REPO = Path(__file__).resolve().parent.parent
METRICS_PORTS = {"watcher": defaults.WATCHER_METRICS_PORT, "registrar": defaults.REGISTRAR_METRICS_PORT,
                 "heartbeater": defaults.HEARTBEATER_METRICS_PORT}
STATE = REPO / ".run"
DEFAULT_DOCKER = "unix:///var/run/docker.sock"


class Stack:
    def __init__(self) -> None:
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.temporary_dirs: list[Path] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, quiet: bool = False) -> None:
        """Start a process; its output is prefixed onto ours, or with `quiet` goes to .run/<name>.log."""
        if quiet:
            STATE.mkdir(exist_ok=True)
            with (STATE / f"{name}.log").open("ab") as log:
                process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                           env={**os.environ, **(env or {})}, start_new_session=True)
            print(f"started {name}; its log is {STATE / name}.log", flush=True)
        else:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO,
                                       env={**os.environ, **(env or {})}, start_new_session=True)
            threading.Thread(target=_prefix_output, args=(name, process), daemon=True).start()
        self.processes.append((name, process))

    def stop(self) -> None:
        for name, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
            print(f"stopped {name}", flush=True)
        for directory in self.temporary_dirs:
            _remove_with_mounts(directory)

    def wait(self) -> None:
        while all(process.poll() is None for _, process in self.processes):
            time.sleep(0.5)
        for name, process in self.processes:
            if process.poll() is not None:
                print(f"{name} exited with status {process.returncode}; stopping everything", flush=True)


def _remove_with_mounts(directory: Path) -> None:
    """Remove a folder, first unmounting what is mounted in it (dockerd leaves its network namespace)."""
    for line in reversed(Path("/proc/mounts").read_text().splitlines()):
        fields = line.split()
        if len(fields) > 1 and fields[1].startswith(f"{directory}/"):
            subprocess.run(["umount", fields[1]], capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


def _prefix_output(name: str, process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(f"{name:>11} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def _wait(check: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up within {timeout:.0f}s")
        time.sleep(0.2)


def _docker_answers(host: str) -> bool:
    try:
        docker.DockerClient(base_url=host, timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - unreachable for whatever reason
        return False


def start_redis(stack: Stack) -> str:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        print(f"using the Redis already answering at {url}", flush=True)
        return url
    except redis.RedisError:
        pass
    STATE.mkdir(exist_ok=True)
    stack.start("redis", ["redis-server", "--port", "6379", "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", str(STATE)], quiet=True)
    _wait(lambda: redis.Redis.from_url(url).ping(), "redis-server")
    return url


def start_docker(stack: Stack) -> str:
    host = os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER
    if _docker_answers(host):
        return host
    print(f"no Docker engine answers at {host}; starting a private dockerd", flush=True)
    # A unix socket path must be short (108 bytes), so the socket lives in a short temporary folder.
    runtime = Path(tempfile.mkdtemp(prefix="regrun-", dir="/tmp"))
    stack.temporary_dirs.append(runtime)
    host = f"unix://{runtime}/docker.sock"
    stack.start("dockerd", ["dockerd", "--data-root", str(STATE / "docker"), "--exec-root", str(runtime / "exec"),
                            "-H", host, "--pidfile", str(runtime / "pid")], quiet=True)
    _wait(lambda: _docker_answers(host), "dockerd")
    _import_busybox(host)
    return host


def _import_busybox(host: str) -> None:
    """A tiny local image to try the system with (nothing can be pulled without a registry)."""
    client = docker.DockerClient(base_url=host, timeout=60)
    if client.images.list(name="local/busybox"):
        return
    busybox = shutil.which("busybox")
    if busybox is None:
        return
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "bin").mkdir()
        shutil.copy(busybox, Path(root) / "bin" / "busybox")
        for applet in ("sh", "sleep", "httpd", "nc"):
            (Path(root) / "bin" / applet).symlink_to("busybox")
        archive = subprocess.run(["tar", "-C", root, "-c", "."], check=True, capture_output=True).stdout
    client.api.import_image_from_data(archive, repository="local/busybox", tag="latest")


def start_eureka(stack: Stack) -> str:
    if os.environ.get("EUREKA_URL"):
        return os.environ["EUREKA_URL"]
    url = "http://127.0.0.1:8761/eureka"
    stack.start("eureka", [sys.executable, "-m", "deveureka", "--host", "127.0.0.1", "--port", "8761"])
    _wait(lambda: requests.get(f"{url}/apps", timeout=1).ok, "the dev Eureka server")
    return url


def start_dashboard(stack: Stack, redis_url: str) -> str:
    """rq-dashboard on the system's Redis. The URL goes in its environment, not its command line (which `ps`
    shows); the page shows it with any password masked."""
    port = _free_port("DASHBOARD_PORT", 9181, "the RQ dashboard")
    url = f"http://127.0.0.1:{port}/"
    stack.start("dashboard", [sys.executable, "-m", "rq_dashboard", "--bind", "127.0.0.1", "--port", str(port)],
                {"RQ_DASHBOARD_REDIS_URL": redis_url})
    _wait(lambda: requests.get(url, timeout=1).ok, "the RQ dashboard")
    return url


def _free_port(variable: str, default: int, what: str) -> int:
    """The port in `variable` (else `default`), once it is known to be free on 127.0.0.1."""
    port = int(os.environ.get(variable) or default)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise SystemExit(f"port {port} for {what} is taken: set {variable} to a free one") from None
    return port


def start_components(stack: Stack, env: dict[str, str]) -> dict[str, str]:
    """The registrar, the heartbeater and the watcher, each with /metrics and /healthz on a port of its own on
    127.0.0.1; returns their endpoints' URLs."""
    urls = {}
    for component in ("registrar", "heartbeater", "watcher"):
        port = _free_port(f"{component.upper()}_METRICS_PORT", METRICS_PORTS[component], f"the {component}'s /metrics")
        stack.start(component, [sys.executable, "-m", component],
                    {**env, "METRICS_ADDRESS": "127.0.0.1", "METRICS_PORT": str(port)})
        urls[component] = f"http://127.0.0.1:{port}"
    return urls


def without_password(url: str) -> str:
    """`url` for printing: user and password replaced by `***`."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    stack = Stack()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        env = {"REDIS_URL": start_redis(stack), "DOCKER_HOST": start_docker(stack),
               "EUREKA_URL": start_eureka(stack)}
        endpoints = start_components(stack, env)
        dashboard = start_dashboard(stack, env["REDIS_URL"])
        eureka = [without_password(url.strip()) for url in env["EUREKA_URL"].split(",")]
        print(f"""
  Eureka:     {', '.join(eureka)}  (try {eureka[0]}/apps)
  Redis:      {without_password(env['REDIS_URL'])}
  Docker:     {env['DOCKER_HOST']}
  Dashboard:  {dashboard}  (RQ queues, workers and jobs)
  Metrics:    {', '.join(f"{name} {url}/metrics" for name, url in endpoints.items())}  (and /healthz)
  Status:     REDIS_URL={without_password(env['REDIS_URL'])} EUREKA_URL={','.join(eureka)} {sys.executable} -m status
  Try:        docker -H {env['DOCKER_HOST']} run -d -p 18080:80 -e SERVICE_NAME=web local/busybox httpd -f -p 80 -h /
  Ctrl-C stops everything started here.
""", flush=True)
        stack.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
