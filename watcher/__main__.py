"""`python -m watcher`: the per-host watcher (one per Docker host)."""

from __future__ import annotations

import logging
import signal
from typing import Sequence

import docker

from shared import config, logs, queues
from shared.startup import wait_for
from shared.store import Store, connect
from watcher import hostip
from watcher.watcher import Watcher

log = logging.getLogger("watcher")

DOCKER_TIMEOUT_SECONDS = 10


def main(argv: Sequence[str] | None = None) -> None:
    settings = config.load_watcher(argv)
    logs.setup("watcher", settings.log_level)
    looked_up_ip = _looked_up_ip(settings)
    client = connect(settings.redis_url)
    wait_for("Redis", client.ping, settings)
    docker_client = wait_for("Docker", lambda: _docker(settings.docker_host), settings)

    watcher = Watcher(settings, docker_client, Store(client),
                      queues.registrar_queue(connect(settings.redis_url, decode=False)), looked_up_ip)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: watcher.stop.set())
    log.info("watcher started on host %s: Docker %s, liveness TTL %ss renewed every %ss",
             settings.hostname, settings.docker_host, settings.ttl, settings.ttl_refresh)
    watcher.run()
    log.info("watcher stopped")


def _looked_up_ip(settings: config.WatcherConfig) -> str | None:
    """This host's IP from -ip-lookup-source, if given. A failure ends the watcher with
    -exit-on-ip-lookup-failure; otherwise -ip or the hostname's IP serves until a later lookup works."""
    if not settings.ip_lookup_source:
        return None
    ip = hostip.look_up_with_retries(settings.ip_lookup_source, settings.ip_lookup_retries,
                                     settings.retry_interval_seconds)
    if ip is None:
        if settings.exit_on_ip_lookup_failure:
            log.critical("IP lookup from %s failed %d times; exiting (-exit-on-ip-lookup-failure)",
                         settings.ip_lookup_source, settings.ip_lookup_retries)
            raise SystemExit(1)
        log.error("IP lookup from %s failed %d times; using %s until a lookup works",
                  settings.ip_lookup_source, settings.ip_lookup_retries,
                  settings.ip or f"the IP of hostname {settings.hostname!r}")
    return ip


def _docker(base_url: str) -> docker.DockerClient:
    client = docker.DockerClient(base_url=base_url, timeout=DOCKER_TIMEOUT_SECONDS)
    client.ping()
    return client


if __name__ == "__main__":
    main()
